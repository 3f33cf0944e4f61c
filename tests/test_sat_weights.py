"""`prosector weights` without a network: installing from a folder, and the errors users meet."""
from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from prosector.cli import main  # noqa: E402
from prosector.models.sat.engine import SatEngine  # noqa: E402
from prosector.models.sat.install import install, pick_hub_files  # noqa: E402

from conftest import SHARED  # noqa: E402

FIX = SHARED / "fixtures" / "sat_parity"


def hub_like_folder(tmp_path, variant="nano"):
    """The hub's layout: Nano/<model>.pth with real Nano shapes (zero-stride, tiny on disk) + text file + tokenizer."""
    keys = json.loads((FIX / f"key_manifest_{variant}.json").read_text())["segmentation_model"]["keys"]
    state = {k: torch.zeros(1).expand(v["shape"]) for k, v in keys.items()}
    folder = tmp_path / "download"
    (folder / "Nano").mkdir(parents=True)
    torch.save({"model_state_dict": state}, folder / "Nano" / "SAT_Nano.pth")
    shutil.copyfile(FIX / "text_tower" / "text_encoder_checkpoint.pth", folder / "Nano" / "text_encoder.pth")
    shutil.copytree(FIX / "text_tower" / "tiny_biolord", folder / "BioLORD-2023-C")
    return folder


def test_install_from_folder_puts_files_where_the_engine_looks(tmp_path, monkeypatch):
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path / "home"))
    assert not SatEngine("nano").readiness().ready
    done = install("nano", source=hub_like_folder(tmp_path), say=lambda _: None, check_sizes=False)
    assert done.files.model == tmp_path / "home" / "sat" / "nano" / "SAT_Nano.pth"
    assert SatEngine("nano").readiness().ready


def test_cli_refuses_undersized_or_wrong_files_with_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path / "home"))
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copyfile(FIX / "checkpoint.pth", folder / "SAT_Nano.pth")
    shutil.copyfile(FIX / "text_tower" / "text_encoder_checkpoint.pth", folder / "text_encoder.pth")
    shutil.copytree(FIX / "text_tower" / "tiny_biolord", folder / "biolord")
    assert main(["weights", "install", "sat-nano", "--from", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "too small" in err[0]
    with pytest.raises(Exception, match="SAT-Nano"):
        install("nano", source=folder, say=lambda _: None, check_sizes=False)


def test_cli_list_names_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path))
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "prosector weights install sat-nano" in out and "prosector weights install sat-pro" in out


def test_hub_listing_is_read_by_folder():
    listing = {"Nano/SAT_Nano.pth": 1, "Nano/text_encoder.pth": 2, "Pro/SAT_Pro.pth": 3, "Pro/text_encoder.pth": 4, "README.md": 5}
    assert pick_hub_files(listing, "pro") == ("Pro/SAT_Pro.pth", "Pro/text_encoder.pth")
    flat = {"sat_nano.pth": 1, "nano_text_encoder.pth": 2, "sat_pro.pth": 3}
    assert pick_hub_files(flat, "nano") == ("sat_nano.pth", "nano_text_encoder.pth")
    with pytest.raises(Exception, match="unexpected file layout"):
        pick_hub_files({"README.md": 1}, "nano")
