"""Semantic nearest neighbours over every name and synonym of the tree (faiss, cosine similarity).

The index is built once and cached on disk under PROSECTOR_HOME (default ~/.prosector), in a
folder named by a hash of the tree data, the model and this index format, so a changed tree or
model never reads a stale index. Used only for words no rule, name or fuzzy match understood.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .embedding import MODEL_ID, MiniLMEncoder, model_dir
from .lexicon import Lexicon
from .tree import Tree

INDEX_FORMAT = 1


def prosector_home() -> Path:
    return Path(os.environ.get("PROSECTOR_HOME") or Path.home() / ".prosector").expanduser()


@contextlib.contextmanager
def _one_blas_thread():
    # one short phrase per query: BLAS threads only fight each other (and everyone else) on small CPUs
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1):
        yield


class SemanticIndex:
    def __init__(self, index, concept_ids: list[str], texts: list[str], origin: str, encoder: MiniLMEncoder | None = None):
        self.index = index
        self.concept_ids = concept_ids
        self.texts = texts
        self.origin = origin
        self._encoder = encoder

    @property
    def encoder(self) -> MiniLMEncoder:
        if self._encoder is None:
            self._encoder = MiniLMEncoder()
        return self._encoder

    @staticmethod
    def cache_key(tree: Tree) -> str:
        weights = model_dir() / "model.safetensors"
        digest = hashlib.sha256(f"{tree.data_hash}|{MODEL_ID}|{weights.stat().st_size}|{INDEX_FORMAT}".encode())
        return digest.hexdigest()[:16]

    @classmethod
    def cache_dir(cls, tree: Tree) -> Path:
        return prosector_home() / "cache" / "knowledge" / f"semantic-{cls.cache_key(tree)}"

    @classmethod
    def load_or_build(cls, tree: Tree, lex: Lexicon) -> "SemanticIndex":
        import faiss

        folder = cls.cache_dir(tree)
        meta = folder / "entries.json"
        if meta.exists() and (folder / "index.faiss").exists():
            entries = json.loads(meta.read_text(encoding="utf-8"))
            index = faiss.read_index(str(folder / "index.faiss"))
            return cls(index, entries["concept_ids"], entries["texts"], f"index loaded from cache {folder}")
        start = time.perf_counter()
        pairs = sorted(set(lex.embed_texts))
        texts = [t for t, _ in pairs]
        ids = [c for _, c in pairs]
        encoder = MiniLMEncoder()
        with _one_blas_thread():
            vectors = encoder.encode(texts, batch_size=128)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
        try:
            faiss.write_index(index, str(tmp / "index.faiss"))
            (tmp / "entries.json").write_text(json.dumps({"concept_ids": ids, "texts": texts, "model": MODEL_ID}), encoding="utf-8")
            try:
                tmp.rename(folder)   # atomic: a concurrent builder may have won the race, which is fine
            except OSError:
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        took = time.perf_counter() - start
        return cls(index, ids, texts, f"index built in {took:.1f} s and cached at {folder}", encoder)

    def search(self, text: str, k: int = 8) -> list[tuple[str, float]]:
        """Concepts nearest to `text`, best first, one score (the best of its names) per concept."""
        with _one_blas_thread():
            query = self.encoder.encode([text])
        scores, rows = self.index.search(np.ascontiguousarray(query, dtype=np.float32), min(len(self.texts), k * 4))
        best: dict[str, float] = {}
        for score, row in zip(scores[0], rows[0]):
            if row < 0:
                continue
            cid = self.concept_ids[row]
            best[cid] = max(best.get(cid, -1.0), float(score))
        return sorted(best.items(), key=lambda kv: -kv[1])[:k]
