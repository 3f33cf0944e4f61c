"""Strict loading of official-format SAT files: every wrong file gets a one-line explanation."""
from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from prosector.errors import InputError  # noqa: E402
from prosector.models.sat.checkpoint import (  # noqa: E402
    load_segmentation_model,
    load_text_encoder,
    read_state_dict,
)

from conftest import SHARED  # noqa: E402

FIX = SHARED / "fixtures" / "sat_parity"
MINI = FIX / "checkpoint.pth"
TEXT = FIX / "text_tower" / "text_encoder_checkpoint.pth"
TOKENIZER = FIX / "text_tower" / "tiny_biolord"


def official(path) -> dict:
    return dict(torch.load(path, map_location="cpu", weights_only=True)["model_state_dict"])


def save(tmp_path, state: dict, name="edited.pth"):
    path = tmp_path / name
    torch.save({"model_state_dict": state}, path)
    return path


def load_error(fn, *args, **kw) -> str:
    with pytest.raises(InputError) as err:
        fn(*args, **kw)
    message = err.value.user_message()
    assert "\n" not in message
    return message


def test_official_file_loads_and_reports_aliases_and_ignored_heads():
    _, report = load_segmentation_model(MINI, image_size=(128, 96, 64))
    assert (report.used, report.aliases) == (192, 88)
    assert report.ignored == {"deep-supervision heads, used only in training": 12}


def test_truncated_file(tmp_path):
    data = MINI.read_bytes()
    path = tmp_path / "SAT_Nano.pth"
    path.write_bytes(data[: len(data) // 3])
    message = load_error(load_segmentation_model, path)
    assert str(path) in message and "truncated" in message


def test_not_a_checkpoint_and_missing_file(tmp_path):
    junk = tmp_path / "notes.pth"
    junk.write_text("hello")
    assert str(junk) in load_error(load_segmentation_model, junk)
    assert "not found" in load_error(load_segmentation_model, tmp_path / "absent.pth")
    assert "no 'model_state_dict'" in load_error(read_state_dict, save(tmp_path, {}, "empty.pth"))


def test_unexpected_key_is_named(tmp_path):
    state = official(MINI)
    state["module.some_new_head.weight"] = torch.zeros(3)
    message = load_error(load_segmentation_model, save(tmp_path, state), image_size=(128, 96, 64))
    assert "1 unexpected keys: some_new_head.weight" in message


def test_missing_key_is_named(tmp_path):
    state = official(MINI)
    del state["module.transformer_decoder.norm.bias"]
    message = load_error(load_segmentation_model, save(tmp_path, state), image_size=(128, 96, 64))
    assert "missing keys: transformer_decoder.norm.bias" in message


def test_alias_that_disagrees_with_its_tensor_is_an_error(tmp_path):
    state = official(MINI)
    key = "module.backbone.encoder.stages.0.0.convs.0.all_modules.0.weight"
    state[key] = state[key].clone() + 1
    message = load_error(load_segmentation_model, save(tmp_path, state), image_size=(128, 96, 64))
    assert "all_modules.0.weight differs from its canonical key" in message


def test_swapped_files_are_explained():
    assert "text-encoder checkpoint, not the segmentation model" in load_error(load_segmentation_model, TEXT)
    assert "segmentation checkpoint, not the text encoder" in load_error(load_text_encoder, MINI, TOKENIZER)


def _meta_sized_file(tmp_path, variant: str):
    """An official-format file with the real Nano/Pro shapes; zero-stride tensors keep it tiny."""
    keys = json.loads((FIX / f"key_manifest_{variant}.json").read_text())["segmentation_model"]["keys"]
    state = {k: torch.zeros(1).expand(v["shape"]) if v["shape"] else torch.zeros(()) for k, v in keys.items()}
    return save(tmp_path, state, f"{variant}.pth")


def test_pro_weights_given_for_nano_are_detected(tmp_path):
    path = _meta_sized_file(tmp_path, "pro")
    message = load_error(load_segmentation_model, path, expect="nano")
    assert "SAT-Pro (U-Net widths 128/128/256/512/1024/1536)" in message and "SAT-Nano" in message
    from prosector.models.sat.checkpoint import infer_config

    assert infer_config(read_state_dict(_meta_sized_file(tmp_path, "nano"))).name == "nano"


def test_text_file_leftovers_are_ignored_and_five_modalities_load(tmp_path):
    state = official(TEXT)
    state["module.atlas_tower.proj.weight"] = torch.zeros(2, 2)
    state["module.temperature"] = torch.tensor(0.07)
    # The 2025 checkpoints add a fifth modality (microscopy) to the embedding.
    state["module.modality_embed.weight"] = torch.cat([state["module.modality_embed.weight"], torch.ones(1, 96)])
    encoder, tokenizer, report = load_text_encoder(save(tmp_path, state), TOKENIZER)
    assert sum(report.ignored.values()) == 3
    ids, mask = tokenizer(["liver"])
    with torch.no_grad():
        assert encoder(ids, mask, "microscopy").shape == (1, 96)
    assert "no modality 'microscopy'" in load_error(lambda: load_text_encoder(TEXT, TOKENIZER)[0](ids, mask, "microscopy"))


def test_tokenizer_directory_of_another_model(tmp_path):
    other = tmp_path / "biolord"
    shutil.copytree(TOKENIZER, other)
    config = json.loads((other / "config.json").read_text())
    config.update(hidden_size=768, vocab_size=30527, num_hidden_layers=12, num_attention_heads=12)
    (other / "config.json").write_text(json.dumps(config))
    message = load_error(load_text_encoder, TEXT, other)
    assert "does not belong to this text encoder" in message
    (other / "vocab.txt").unlink()
    assert "missing vocab.txt" in load_error(load_text_encoder, TEXT, other)
