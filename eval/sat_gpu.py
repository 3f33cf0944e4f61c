"""SAT on a GPU: parity under bf16 autocast, cost per tile, and a whole 512x512x300 CT.

    python eval/sat_gpu.py [--fixture DIR] [--queries 16] [--skip-pro]

--fixture: a folder with the parity files (mini: checkpoint.pth, input.npy, queries.npy,
expected_logits.npy; full size: ct_preprocessed.npy, full_size_queries.npy and the two
expected_logits_{subsampled_s4,crop}.npy), flat, as copied into .gpu_fixture/ for a GPU machine.

SAT-Nano widths with random init (the real weights cannot be had offline; cost does not depend
on their values). The goal (issue 5): a 512x512x300 CT within 8 GB of GPU memory; the reference
needs 24 GB for Nano. Prints one JSON object per measurement and writes all to $OUT/sat_gpu.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sat_common import REPO, ensure_prosector, peak_rss_gb, synthetic_ct  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ensure_prosector()
from prosector.models.sat.config import CONFIGS  # noqa: E402
from prosector.models.sat.inference import autocast_for  # noqa: E402
from prosector.models.sat.model import SatModel  # noqa: E402
from prosector.models.sat.pipeline import run_sat  # noqa: E402

RESULTS: list[dict] = []


def report(entry: dict) -> None:
    RESULTS.append(entry)
    print(json.dumps(entry), flush=True)


def gib(n: int) -> float:
    return round(n / 2**30, 2)


def parity(fixture: Path, dev: torch.device) -> None:
    """The mini checkpoint on the GPU: fp32 and bf16 autocast against the reference's CPU fp32 logits."""
    from prosector.models.sat.checkpoint import load_segmentation_model

    model, _ = load_segmentation_model(fixture / "checkpoint.pth", image_size=(128, 96, 64))
    model = model.to(dev)
    x = torch.from_numpy(np.load(fixture / "input.npy")).to(dev)
    q = torch.from_numpy(np.load(fixture / "queries.npy")).to(dev)
    expected = np.load(fixture / "expected_logits.npy")
    for label, ctx, tf32 in (("fp32", None, False), ("fp32+tf32", None, True), ("bf16 autocast", autocast_for(dev), False)):
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        with torch.inference_mode(), (ctx or torch.autocast("cuda", enabled=False)):
            logits = model(x, q).float().cpu().numpy()
        diff = np.abs(logits - expected)
        report({"measure": "parity_mini", "precision": label, "max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
                "mask_agreement": float(((logits > 0) == (expected > 0)).mean())})
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = False


def full_size_parity(fixture: Path, dev: torch.device) -> None:
    """Real Nano widths at 288x288x96 with the fixture's recipe weights (the reference took 212 s on CPU)."""
    from prosector.models.sat.recipe import recipe_state_dict

    model = SatModel(CONFIGS["nano"]).eval()
    model.load_state_dict(recipe_state_dict(model))
    model = model.to(dev)
    raw = np.load(fixture / "ct_preprocessed.npy")
    x = np.zeros((1, 1, 288, 288, 96), np.float32)
    x[0, :, : raw.shape[1], : raw.shape[2], : raw.shape[3]] = raw
    x = torch.from_numpy(np.repeat(x, 3, axis=1)).to(dev)
    q = torch.from_numpy(np.load(fixture / "full_size_queries.npy")).to(dev)
    sub, crop = np.load(fixture / "expected_logits_subsampled_s4.npy"), np.load(fixture / "expected_logits_crop.npy")
    for label, ctx in (("fp32", torch.autocast("cuda", enabled=False)), ("bf16 autocast", autocast_for(dev))):
        torch.backends.cudnn.allow_tf32 = False
        with torch.inference_mode(), ctx:
            logits = model(x, q).float()
        ours_sub = logits[:, :, ::4, ::4, ::4].cpu().numpy()
        ours_crop = logits[:, :, 64:96, 48:80, 24:40].cpu().numpy()
        report({"measure": "parity_full_size_nano", "precision": label,
                "max_abs_subsampled": float(np.abs(ours_sub - sub).max()), "mean_abs_subsampled": float(np.abs(ours_sub - sub).mean()),
                "max_abs_crop": float(np.abs(ours_crop - crop).max()), "mask_agreement": float(((ours_sub > 0) == (sub > 0)).mean())})
        del logits
    torch.backends.cudnn.allow_tf32 = True
    del model
    torch.cuda.empty_cache()


def tile_cost(variant: str, dev: torch.device, n_queries: int, precision: str) -> None:
    torch.manual_seed(0)
    model = SatModel(CONFIGS[variant]).eval().to(dev)
    q = torch.randn(n_queries, model.config.query_dim, device=dev)
    x = torch.randn(1, 3, 288, 288, 96, device=dev)
    ctx = autocast_for(dev) if precision == "bf16" else torch.autocast("cuda", enabled=False)
    torch.backends.cudnn.benchmark = True
    times = []
    torch.cuda.reset_peak_memory_stats()
    for _ in range(4):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.inference_mode(), ctx:
            per_pixel, tokens = model.encode_image(x)
            prob = torch.sigmoid(model.logits(per_pixel, model.mask_kernels(q, tokens)).float())
            del per_pixel, tokens, prob
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    report({"measure": "tile_288x288x96", "variant": variant, "precision": precision, "queries": n_queries,
            "first_s": round(times[0], 3), "steady_s": round(float(np.median(times[1:])), 3),
            "peak_gpu_gib": gib(torch.cuda.max_memory_allocated()), "weights_gib": gib(sum(p.numel() * p.element_size() for p in model.parameters()))})
    del model, q, x
    torch.cuda.empty_cache()


def whole_ct(dev: torch.device, n_queries: int, spacing, cudnn_benchmark: bool = True) -> None:
    torch.manual_seed(0)
    model = SatModel(CONFIGS["nano"]).eval()
    queries = torch.randn(n_queries, model.config.query_dim)
    t = time.perf_counter()
    scan = synthetic_ct((512, 512, 300), spacing)
    made = time.perf_counter() - t
    import prosector.models.sat.inference as inference

    inference.CUDNN_BENCHMARK = cudnn_benchmark
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    ticks = []
    t = time.perf_counter()
    run = run_sat(model, scan, queries, device=str(dev), progress=lambda f, m: ticks.append(time.perf_counter()))
    total = time.perf_counter() - t
    assert all(m.shape == scan.data.shape for m in run.masks)
    report({"measure": "ct_512x512x300", "spacing_mm": list(spacing), "queries": n_queries, "tiles": run.tiles,
            "cudnn_benchmark": cudnn_benchmark,
            "seconds_total": round(total, 1), "stages_s": {k: round(v, 1) for k, v in run.seconds.items()},
            "seconds_per_tile": round(run.seconds["infer"] / run.tiles, 3),
            "peak_gpu_gib": gib(torch.cuda.max_memory_allocated()), "peak_gpu_reserved_gib": gib(torch.cuda.max_memory_reserved()),
            "peak_rss_gib": round(peak_rss_gb(), 1), "phantom_build_s": round(made, 1)})
    del model
    torch.cuda.empty_cache()


def real_ct(path: Path, dev: torch.device, n_queries: int, on_cpu: bool) -> None:
    """A real CT through the whole pipeline, on the GPU and (optionally) on this machine's CPU."""
    import nibabel as nib

    from prosector.scan import Provenance, Scan

    image = nib.load(str(path))  # nibabel directly: the GPU image lacks pydicom/SimpleITK for prosector.io
    scan = Scan(np.asarray(image.dataobj), image.affine, "ct", Provenance(path=str(path), format="nifti"))
    torch.manual_seed(0)
    model = SatModel(CONFIGS["nano"]).eval()
    queries = torch.randn(n_queries, model.config.query_dim)
    for where in ([str(dev), "cpu"] if on_cpu else [str(dev)]):
        if where != "cpu":
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        run = run_sat(model, scan, queries, device=where)
        entry = {"measure": "real_ct", "file": path.name, "shape": list(scan.data.shape), "device": where,
                 "threads": torch.get_num_threads(), "queries": n_queries, "tiles": run.tiles,
                 "seconds_total": round(time.perf_counter() - t, 1), "stages_s": {k: round(v, 1) for k, v in run.seconds.items()},
                 "peak_rss_gib": round(peak_rss_gb(), 1)}
        if where != "cpu":
            entry["peak_gpu_gib"] = gib(torch.cuda.max_memory_allocated())
        report(entry)
        model = model.cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_fixture = next((p for p in (REPO / ".gpu_fixture", REPO.parent / "shared" / "fixtures" / "sat_parity") if p.is_dir()), None)
    parser.add_argument("--fixture", type=Path, default=default_fixture)
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--skip-pro", action="store_true")
    parser.add_argument("--only-ct", type=Path, metavar="NIFTI", help="only run this real CT (GPU, then --ct-cpu)")
    parser.add_argument("--ct-cpu", action="store_true", help="with --only-ct: also on the machine's CPU (float32, all threads)")
    parser.add_argument("--only-memory", action="store_true", help="only the 512x512x300 CT, with and without cuDNN autotuning")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("sat_gpu.py: no CUDA GPU visible to torch")
    dev = torch.device("cuda")
    report({"measure": "environment", "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
            "bf16": torch.cuda.is_bf16_supported(), "cpus": os.cpu_count()})
    if args.only_memory:
        for bench in (False, True):
            whole_ct(dev, args.queries, (0.8, 0.8, 1.5), cudnn_benchmark=bench)
        return
    if args.only_ct is not None:
        real_ct(args.only_ct, dev, 4, args.ct_cpu)
        return
    if args.fixture is not None and (args.fixture / "checkpoint.pth").is_file():
        parity(args.fixture, dev)
    if args.fixture is not None and (args.fixture / "full_size_queries.npy").is_file():
        full_size_parity(args.fixture, dev)
    tile_cost("nano", dev, args.queries, "bf16")
    tile_cost("nano", dev, args.queries, "fp32")
    whole_ct(dev, args.queries, (0.8, 0.8, 1.5))
    whole_ct(dev, args.queries, (1.0, 1.0, 3.0))
    if not args.skip_pro:
        tile_cost("pro", dev, args.queries, "bf16")
    out = os.environ.get("OUT")
    if out:
        Path(out, "sat_gpu.json").write_text(json.dumps(RESULTS, indent=1))


if __name__ == "__main__":
    main()
