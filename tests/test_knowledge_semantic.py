"""The semantic layer: numpy MiniLM equals sentence-transformers; the faiss index is cached by data hash;
embeddings only answer what rules could not, and never decide a side."""
from __future__ import annotations

import numpy as np
import pytest

from prosector.knowledge import load_tree
from prosector.knowledge.embedding import MiniLMEncoder, model_dir
from prosector.knowledge.lexicon import Lexicon, lexicon
from prosector.knowledge.resolver import Resolver
from prosector.knowledge.semantic import SemanticIndex
from prosector.knowledge.tree import DATA_DIR, load_tree_from

SMALL = {"aorta", "inferior_vena_cava", "iliopsoas", "kidney", "adrenal_gland", "thyroid_gland", "spleen", "heart",
         "pulmonary_trunk", "coronary_arteries", "hip_muscles", "liver"}


@pytest.fixture(scope="module")
def encoder():
    return MiniLMEncoder()


# descriptions the index may hold beside names (a richer tree could carry such glosses)
GLOSSES = [("bean shaped organ", "kidney"), ("largest artery of the body", "aorta")]


@pytest.fixture()
def small_lexicon():
    full = lexicon()
    return Lexicon(keys=full.keys, phrases=full.phrases, words=full.words, words_by_initial=full.words_by_initial,
                   embed_texts=[(t, c) for t, c in full.embed_texts if c in SMALL] + GLOSSES)


def test_numpy_encoder_equals_sentence_transformers(encoder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(model_dir()), device="cpu")
    texts = ["left adrenal gland", "the big artery coming out of the heart", "WMH", "kidneys and spleen for volumetry"]
    ours = encoder.encode(texts)
    theirs = reference.encode(texts, normalize_embeddings=True)
    assert ours.shape == (4, 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert (ours * theirs).sum(1).min() > 0.9999


def test_index_is_built_once_and_cached_under_prosector_home(tmp_path, monkeypatch, small_lexicon):
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path))
    tree = load_tree()
    built = SemanticIndex.load_or_build(tree, small_lexicon)
    folder = SemanticIndex.cache_dir(tree)
    assert "built" in built.origin and folder.is_relative_to(tmp_path)
    assert (folder / "index.faiss").exists() and (folder / "entries.json").exists()
    again = SemanticIndex.load_or_build(tree, small_lexicon)
    assert "loaded from cache" in again.origin
    hits = again.search("main artery of the body")
    assert hits[0][0] == "aorta" and hits[0][1] > 0.8
    assert all(not tree.get(cid).is_sided for cid, _ in again.search("left adrenal gland"))


def test_cache_key_follows_the_tree_data(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path / "home"))
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    before = SemanticIndex.cache_dir(load_tree_from(data))
    with open(data / "tree_groups.yaml", "a") as fh:
        fh.write("- id: extra_group\n  name: extra group\n  parts: [kidney, spleen]\n  kind: group\n")
    assert SemanticIndex.cache_dir(load_tree_from(data)) != before


def test_embeddings_answer_leftovers_and_rules_decide_the_side(tmp_path, monkeypatch, small_lexicon):
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path))
    tree = load_tree()
    resolver = Resolver(tree, lexicon(), semantic=SemanticIndex.load_or_build(tree, small_lexicon))
    res = resolver.resolve("bean-shaped organs", modality="ct", scope="main")
    assert res.ids == ["kidney"] and res.concepts[0].match == "embedding" and res.concepts[0].score > 0.85
    # the side comes from the words, by rule; the index holds no sided names at all
    left = resolver.resolve("the bean shaped organ on the left", modality="ct", scope="main")
    assert left.leaves() == ["kidney_left"] and left.concepts[0].side_rule
    # names and synonyms never reach the embedding
    assert resolver.resolve("left kidney").concepts[0].match in ("exact", "synonym")
    # unrelated text is not anatomy, however near its nearest neighbour
    assert resolver.resolve("flux capacitor", modality="ct", scope="main").status == "unknown"
