"""Strict loading of SAT's official checkpoint files (segmentation model and text encoder).

Official files are `torch.save({'model_state_dict': ...})` of DDP-wrapped models, so every key
starts with `module.`. Each key must be used, be an alias of a used key (nnU-Net registers each
conv and norm twice, the second time under `.all_modules.{0,1}`), or be on the short ignore list
below; anything else, or anything missing, is an error naming the file and the first keys.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from prosector.errors import InputError

from .config import NANO, PRO, SatConfig

# Keys an official segmentation file may hold that inference does not use, and why.
SEGMENTATION_IGNORED = {
    r"^mid_mask_embed_proj\.": "deep-supervision heads, used only in training",
}
# Same for the text-encoder file.
TEXT_IGNORED = {
    r"^text_tower\.biolord\.embeddings\.position_ids$": "buffer saved by transformers < 4.31; always arange",
    r"atlas_tower": "SAT-Pretrain leftover, dropped by the reference loader too",
    r"temperature": "SAT-Pretrain leftover, dropped by the reference loader too",
}
_ALIAS = re.compile(r"\.all_modules\.([01])\.")
_ALIAS_TARGET = {"0": ".conv.", "1": ".norm."}
SHOW = 5  # how many offending keys an error names


@dataclass
class LoadReport:
    """What a strict load did with each key of the file."""

    path: str
    used: int = 0
    aliases: int = 0
    ignored: dict[str, int] = field(default_factory=dict)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The file's tensors with the DDP `module.` prefix removed; unreadable files are InputErrors."""
    path = Path(path)
    if not path.is_file():
        raise InputError("SAT checkpoint not found", path=path)
    try:
        try:  # mmap keeps a 2 GB file out of RAM until its tensors are copied into the model
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as err:  # truncated zip, pickle garbage, not a torch file at all
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"cannot read as a torch checkpoint (truncated or not a .pth file?): {reason}", path=path) from err
    state = obj.get("model_state_dict", obj.get("state_dict", obj)) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError("not a SAT checkpoint: no 'model_state_dict' of tensors inside", path=path)
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}


def checkpoint_kind(state: dict[str, torch.Tensor]) -> str:
    """'segmentation', 'text' or 'unknown', from the key names alone."""
    keys = state.keys()
    if any(k.startswith("text_tower.") for k in keys) or "modality_embed.weight" in keys:
        return "text"
    if any(k.startswith("backbone.encoder.") for k in keys) and any(k.startswith("transformer_decoder.") for k in keys):
        return "segmentation"
    return "unknown"


def infer_config(state: dict[str, torch.Tensor], path: str | Path = "") -> SatConfig:
    """Read the widths off the tensors, so Nano, Pro and smaller test models all load."""

    def get(key: str) -> torch.Tensor:
        if key not in state:
            raise InputError(f"SAT segmentation checkpoint lacks '{key}'", path=path)
        return state[key]

    feats, n_convs, s = [], [], 0
    while f"backbone.encoder.stages.{s}.0.convs.0.conv.weight" in state:
        feats.append(int(state[f"backbone.encoder.stages.{s}.0.convs.0.conv.weight"].shape[0]))
        n = 0
        while f"backbone.encoder.stages.{s}.0.convs.{n}.conv.weight" in state:
            n += 1
        n_convs.append(n)
        s += 1
    if len(feats) != 6:
        raise InputError(f"expected a 6-stage SAT U-Net, found {len(feats)} encoder stages", path=path)
    n_dec = []
    for d in range(5):
        n = 0
        while f"backbone.decoder.stages.{d}.convs.{n}.conv.weight" in state:
            n += 1
        n_dec.append(n)
    layers = 0
    while f"transformer_decoder.layers.{layers}.linear1.weight" in state:
        layers += 1
    mid_hidden = tuple(int(state[f"mid_mask_embed_proj.{i}.0.weight"].shape[0]) for i in range(3) if f"mid_mask_embed_proj.{i}.0.weight" in state)
    mid_pp = tuple(int(state[f"mid_mask_embed_proj.{i}.2.weight"].shape[0]) for i in range(3) if f"mid_mask_embed_proj.{i}.2.weight" in state)
    cfg = SatConfig(
        name="custom",
        features_per_stage=tuple(feats),
        n_conv_per_stage=tuple(n_convs),
        n_conv_per_stage_decoder=tuple(n_dec),
        input_channels=int(get("backbone.encoder.stages.0.0.convs.0.conv.weight").shape[1]),
        query_dim=int(get("projection_layer.2.weight").shape[0]),
        dim_feedforward=int(get("transformer_decoder.layers.0.linear1.weight").shape[0]),
        num_decoder_layers=layers,
        projection_hidden=int(get("projection_layer.0.weight").shape[0]),
        mask_embed_hidden=int(get("mask_embed_proj.0.weight").shape[0]),
        **({"mid_mask_hidden": mid_hidden, "mid_per_pixel": mid_pp} if len(mid_hidden) == 3 else {}),
    )
    for known in (NANO, PRO):
        if replace(cfg, name=known.name, mid_mask_hidden=known.mid_mask_hidden, mid_per_pixel=known.mid_per_pixel) == known:
            return known
    return cfg


def _describe(cfg: SatConfig) -> str:
    label = {"nano": "SAT-Nano", "pro": "SAT-Pro"}.get(cfg.name, "a non-standard SAT model")
    return f"{label} (U-Net widths {'/'.join(map(str, cfg.features_per_stage))})"


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], ignored: dict[str, str], path: Path, what: str) -> LoadReport:
    expected = module.state_dict()
    report = LoadReport(str(path))
    to_load, unexpected, mismatched = {}, [], []
    for key, tensor in state.items():
        if key in expected:
            if tuple(tensor.shape) != tuple(expected[key].shape):
                mismatched.append(f"{key} {tuple(tensor.shape)} != {tuple(expected[key].shape)}")
            to_load[key] = tensor
            continue
        canonical = _ALIAS.sub(lambda m: _ALIAS_TARGET[m.group(1)], key)
        if canonical != key and canonical in state and canonical in expected:
            # An alias must hold the same tensor as its canonical name, or the file is inconsistent.
            if tuple(state[canonical].shape) != tuple(tensor.shape) or not torch.equal(state[canonical], tensor):
                mismatched.append(f"{key} differs from its canonical key {canonical}")
            report.aliases += 1
            continue
        reason = next((why for pattern, why in ignored.items() if re.search(pattern, key)), None)
        if reason is not None:
            report.ignored[reason] = report.ignored.get(reason, 0) + 1
            continue
        unexpected.append(key)
    missing = [k for k in expected if k not in state]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape/alias mismatches: {'; '.join(mismatched[:SHOW])}")
    if missing:
        problems.append(f"{len(missing)} missing keys: {', '.join(missing[:SHOW])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {', '.join(unexpected[:SHOW])}")
    if problems:
        raise InputError(f"{what} checkpoint does not match the model: " + " | ".join(problems), path=path)
    module.load_state_dict(to_load, strict=True)
    report.used = len(to_load)
    return report


def load_segmentation_model(path: str | Path, expect: str | None = None, image_size=None):
    """(SatModel in eval mode, LoadReport). `expect` ('nano'|'pro') guards against swapped files."""
    from .model import SatModel

    path = Path(path)
    state = read_state_dict(path)
    kind = checkpoint_kind(state)
    if kind == "text":
        raise InputError(
            "this is a SAT text-encoder checkpoint, not the segmentation model.",
            path=path,
            hint="Pass it as the text encoder and give the segmentation file (e.g. SAT_Nano.pth) as the model.",
        )
    if kind != "segmentation":
        raise InputError("not a SAT segmentation checkpoint (no backbone/transformer_decoder keys)", path=path)
    cfg = infer_config(state, path)
    if expect is not None and cfg.name != expect:
        want = {"nano": NANO, "pro": PRO}[expect]
        raise InputError(f"holds {_describe(cfg)} weights, but {_describe(want)} was asked for", path=path)
    if image_size is not None:
        cfg = cfg.with_image_size(image_size)
    model = SatModel(cfg)
    report = _load_strict(model, state, SEGMENTATION_IGNORED, path, "SAT segmentation")
    return model.eval(), report


def load_text_encoder(path: str | Path, tokenizer_dir: str | Path):
    """(SatTextEncoder in eval mode, SatTokenizer, LoadReport), checked against each other."""
    from transformers import MPNetConfig

    from .text import SatTextEncoder, SatTokenizer

    path = Path(path)
    tokenizer = SatTokenizer(tokenizer_dir)
    state = read_state_dict(path)
    kind = checkpoint_kind(state)
    if kind == "segmentation":
        raise InputError(
            "this is a SAT segmentation checkpoint, not the text encoder.",
            path=path,
            hint="Pass the text-encoder file (e.g. text_encoder.pth) that came with the model.",
        )
    if kind != "text" or "text_tower.biolord.embeddings.word_embeddings.weight" not in state:
        raise InputError("not a SAT text-encoder checkpoint (no text_tower.biolord weights)", path=path)
    try:
        mpnet_cfg = MPNetConfig(**tokenizer.model_config())
    except Exception as err:
        raise InputError(f"unreadable MPNet config.json: {err}", path=Path(tokenizer_dir) / "config.json") from err
    words = state["text_tower.biolord.embeddings.word_embeddings.weight"]
    n_layers = len({k.split(".")[4] for k in state if k.startswith("text_tower.biolord.encoder.layer.")})
    found = (int(words.shape[0]), int(words.shape[1]), n_layers)
    described = (mpnet_cfg.vocab_size, mpnet_cfg.hidden_size, mpnet_cfg.num_hidden_layers)
    if found != described or tokenizer.vocab_size > words.shape[0]:
        raise InputError(
            f"tokenizer directory {tokenizer_dir} does not belong to this text encoder: it describes vocab/hidden/layers "
            f"{described} with {tokenizer.vocab_size} vocabulary entries, the checkpoint holds {found}",
            path=path,
        )
    encoder = SatTextEncoder(
        mpnet_cfg,
        query_dim=int(state["projection_layer.2.weight"].shape[0]) if "projection_layer.2.weight" in state else mpnet_cfg.hidden_size,
        n_modalities=int(state["modality_embed.weight"].shape[0]) if "modality_embed.weight" in state else 4,
    )
    report = _load_strict(encoder, state, TEXT_IGNORED, path, "SAT text-encoder")
    return encoder.eval(), tokenizer, report


def official_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`module.state_dict()` in the official layout: `module.` prefixes and the all_modules aliases."""
    out = {}
    for key, tensor in module.state_dict().items():
        out["module." + key] = tensor
        m = re.search(r"\.(conv|norm)\.(weight|bias)$", key)
        if m and key.startswith("backbone."):
            index = "0" if m.group(1) == "conv" else "1"
            out["module." + key[: m.start()] + f".all_modules.{index}.{m.group(2)}"] = tensor
    return out


def file_sha256(path: str | Path, memo_dir: str | Path | None = None) -> str:
    """sha256 of a (large) file, remembered in `memo_dir` (never beside the file) by path, size and mtime."""
    path = Path(path).resolve()
    stat = path.stat()
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    memo = Path(memo_dir) / f"sha256-{hashlib.sha256(str(path).encode()).hexdigest()[:16]}.json" if memo_dir else None
    if memo is not None:
        try:
            cached = json.loads(memo.read_text())
            if {k: cached.get(k) for k in stamp} == stamp:
                return cached["sha256"]
        except (OSError, ValueError, KeyError):
            pass
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    value = digest.hexdigest()
    if memo is not None:
        try:  # a read-only home still works, it just hashes again next time
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({**stamp, "sha256": value, "path": str(path)}))
            tmp.replace(memo)
        except OSError:
            pass
    return value
