"""Installing SAT's official files into PROSECTOR_HOME/sat/: from the Hugging Face hub or a folder.

Hub layout (repository zzh99/SAT): one folder per variant (`Nano/`, `Pro/`) holding the
segmentation file and its `text_encoder.pth`; the tokenizer is FremyCompany/BioLORD-2023-C's.
Every file is checked after it lands: its size against the hub's, then a strict load, so a
half-downloaded or swapped file is reported now rather than at the first segmentation.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from prosector.errors import InputError, RuntimeFailure

from .weights import VARIANTS, SatFiles, locate

SAT_REPO = "zzh99/SAT"
HUB_FOLDER = {"nano": "Nano", "pro": "Pro"}
BIOLORD_REPO = "FremyCompany/BioLORD-2023-C"
BIOLORD_FILES = ("vocab.txt", "config.json", "tokenizer_config.json", "special_tokens_map.json")
# Below these sizes a file cannot hold the model (fp16 Nano is ~220 MB; text tower ~220 MB fp16).
MIN_BYTES = {"nano": 200_000_000, "pro": 900_000_000, "text": 200_000_000}


@dataclass
class Installed:
    files: SatFiles
    sources: dict[str, str]


def _hub_listing(repo: str) -> dict[str, int | None]:
    """{path: size} of a hub repository, or a RuntimeFailure that says the network is the problem."""
    try:
        from huggingface_hub import HfApi
    except ImportError as err:
        raise RuntimeFailure("downloading needs huggingface_hub (pip install huggingface_hub)") from err
    try:
        entries = HfApi().list_repo_tree(repo, recursive=True)
        return {e.path: getattr(e, "size", None) for e in entries if hasattr(e, "size")}
    except Exception as err:  # offline, DNS, proxy, rate limit: all the same to the user
        raise RuntimeFailure(
            f"cannot reach the Hugging Face hub for {repo} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})",
            hint="Download the files on a connected machine and run `prosector weights install sat-nano --from DIR`.",
        ) from err


def pick_hub_files(listing: dict[str, int | None], variant: str) -> tuple[str, str]:
    """(segmentation file, text-encoder file) of a variant's hub folder."""
    folder = HUB_FOLDER[variant] + "/"
    pths = [p for p in listing if p.startswith(folder) and p.endswith(".pth")]
    if not pths:  # no variant folder: fall back to file paths that name the variant
        pths = [p for p in listing if p.endswith(".pth") and variant in p.lower()]
    text = [p for p in pths if "text" in Path(p).name.lower()]
    seg = [p for p in pths if p not in text]
    if len(text) != 1 or len(seg) != 1:
        raise RuntimeFailure(f"unexpected file layout in {SAT_REPO}/{folder}: {', '.join(sorted(pths)) or 'no .pth files'}")
    return seg[0], text[0]


def _download(repo: str, path: str, size: int | None, target: Path, say: Callable[[str], None]) -> None:
    from huggingface_hub import hf_hub_download

    say(f"downloading {repo}/{path} -> {target}")
    try:
        fetched = Path(hf_hub_download(repo, path))
    except Exception as err:
        raise RuntimeFailure(f"download of {repo}/{path} failed: {err}") from err
    if size is not None and fetched.stat().st_size != size:
        raise RuntimeFailure(f"{repo}/{path}: got {fetched.stat().st_size} bytes, the hub lists {size}", path=fetched)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fetched, target)


def verify(files: SatFiles, variant: str) -> None:
    """Sizes, then strict loads: the file pair and the tokenizer must fit together."""
    from .checkpoint import load_segmentation_model, load_text_encoder

    for path, kind in ((files.model, variant), (files.text_encoder, "text")):
        if path.stat().st_size < MIN_BYTES[kind]:
            raise InputError(f"only {path.stat().st_size} bytes: too small for SAT's {kind} weights (truncated?)", path=path)
    load_segmentation_model(files.model, expect=variant)
    load_text_encoder(files.text_encoder, files.tokenizer_dir)


def install(variant: str, source: str | Path | None = None, say: Callable[[str], None] = print,
            check_sizes: bool = True) -> Installed:
    """Put the variant's files in place (downloading unless `source` is a local folder) and verify."""
    if variant not in VARIANTS:
        raise InputError(f"unknown SAT variant '{variant}' (choose {' or '.join(VARIANTS)})")
    files = locate(variant)
    sources: dict[str, str] = {}
    if source is not None:
        sources = _copy_from_folder(Path(source), variant, files, say)
    else:
        listing = _hub_listing(SAT_REPO)
        seg, text = pick_hub_files(listing, variant)
        _download(SAT_REPO, seg, listing.get(seg), files.model, say)
        _download(SAT_REPO, text, listing.get(text), files.text_encoder, say)
        sources = {"model": f"hf://{SAT_REPO}/{seg}", "text_encoder": f"hf://{SAT_REPO}/{text}"}
        if not (files.tokenizer_dir / "vocab.txt").is_file():
            tok_listing = _hub_listing(BIOLORD_REPO)
            for name in BIOLORD_FILES:
                if name in tok_listing:
                    _download(BIOLORD_REPO, name, tok_listing[name], files.tokenizer_dir / name, say)
            sources["tokenizer"] = f"hf://{BIOLORD_REPO}"
    if check_sizes:
        verify(files, variant)
    else:  # tests with small stand-in models: strict loads only
        from .checkpoint import load_segmentation_model, load_text_encoder

        load_segmentation_model(files.model, expect=variant)
        load_text_encoder(files.text_encoder, files.tokenizer_dir)
    return Installed(files, sources)


def _copy_from_folder(folder: Path, variant: str, files: SatFiles, say: Callable[[str], None]) -> dict[str, str]:
    """Accept the hub's layout (Nano/..., BioLORD files anywhere below) or a flat folder."""
    if not folder.is_dir():
        raise InputError("not a folder", path=folder)
    listing = {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
    candidates = {p: s for p, s in listing.items() if p.endswith(".pth")}
    sub = HUB_FOLDER[variant] + "/"
    if any(p.startswith(sub) for p in candidates):
        seg, text = pick_hub_files(candidates, variant)
    else:
        text_files = [p for p in candidates if "text" in Path(p).name.lower()]
        seg_files = [p for p in candidates if p not in text_files]
        if len(text_files) != 1 or len(seg_files) != 1:
            raise InputError(
                f"expected one segmentation .pth and one text-encoder .pth, found {', '.join(sorted(candidates)) or 'none'}",
                path=folder,
            )
        seg, text = seg_files[0], text_files[0]
    for src, dst in ((seg, files.model), (text, files.text_encoder)):
        say(f"copying {folder / src} -> {dst}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / src, dst)
    vocab = [p for p in listing if Path(p).name == "vocab.txt"]
    if vocab:
        tok_src = (folder / vocab[0]).parent
        files.tokenizer_dir.mkdir(parents=True, exist_ok=True)
        for name in BIOLORD_FILES + ("tokenizer.json",):
            if (tok_src / name).is_file():
                shutil.copyfile(tok_src / name, files.tokenizer_dir / name)
    elif not (files.tokenizer_dir / "vocab.txt").is_file():
        raise InputError(f"no BioLORD tokenizer (vocab.txt + config.json) in the folder or in {files.tokenizer_dir}", path=folder)
    return {"model": str(folder / seg), "text_encoder": str(folder / text), "tokenizer": str(files.tokenizer_dir)}

