"""Sliding-window SAT inference on a prepared volume, with memory that stays bounded.

The backbone runs once per tile; queries are decoded in chunks against that tile's tokens.
Probabilities (not logits) are Gaussian-weighted and accumulated per class: on the GPU when
that fits a fixed budget, else on the CPU in float32 or, when that would be large, float16.
The weight sum is shared by all classes.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .model import SatModel
from .tiling import gaussian_weights, tiles

# Above this many bytes of float32 accumulators, accumulate in float16 (values stay <= ~100).
FLOAT32_ACCUMULATOR_LIMIT = 2 << 30
# On a GPU, accumulators up to this size stay on the device (no per-tile copies to the host).
GPU_ACCUMULATOR_LIMIT = 2 << 30
# cuDNN autotuning: faster convs for the fixed tile shape, at the price of trial workspaces.
CUDNN_BENCHMARK = True
# Logit elements decoded at once per tile: bounds the (chunk, H, W, D) probability block.
LOGIT_ELEMENTS_PER_CHUNK = 96 * 2**20


def choose_device(requested: str = "auto") -> torch.device:
    if requested in ("auto", None, ""):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        from prosector.errors import InputError

        raise InputError("--device cuda was asked for, but no CUDA GPU is visible to torch")
    return torch.device(requested)


def autocast_for(device: torch.device):
    """bf16 autocast on GPUs that support it (fp16 otherwise); plain float32 on the CPU."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


@dataclass
class Accumulated:
    """Gaussian-weighted probability sums per class and the shared weight sum."""

    weighted: np.ndarray   # (N, H, W, D), float32 or float16 (a torch tensor if kept on the GPU)
    weight: np.ndarray     # (H, W, D), float32 (likewise)
    tiles: int = 0

    def probability(self, index: int):
        """Class `index`'s probability map: numpy, or a torch tensor where the sums stayed on the GPU."""
        if isinstance(self.weighted, torch.Tensor):
            return self.weighted[index] / self.weight
        return self.weighted[index].astype(np.float32) / self.weight


def sliding_window(
    model: SatModel,
    volume: np.ndarray,
    queries: torch.Tensor,
    *,
    device: torch.device | str = "cpu",
    progress: Callable[[float, str], None] | None = None,
    max_queries: int | None = None,
) -> Accumulated:
    """Run `model` over every tile of `volume` (H, W, D) for the (N, d) `queries`."""
    device = torch.device(device)
    patch = tuple(model.config.image_size)
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    else:
        torch.backends.cudnn.benchmark = CUDNN_BENCHMARK  # every tile has the same shape: tune once
    model = model.to(device).eval()
    n = int(queries.shape[0])
    voxels = int(np.prod(volume.shape))
    g_full = torch.from_numpy(gaussian_weights(patch).astype(np.float32)).to(device)
    on_device = device.type == "cuda" and n * voxels * 4 <= min(GPU_ACCUMULATOR_LIMIT, torch.cuda.mem_get_info(device)[0] // 4)
    if on_device:
        weighted = torch.zeros((n,) + tuple(volume.shape), dtype=torch.float32, device=device)
        weight = torch.zeros(volume.shape, dtype=torch.float32, device=device)
    else:
        acc_dtype = np.float32 if n * voxels * 4 <= FLOAT32_ACCUMULATOR_LIMIT else np.float16
        if acc_dtype == np.float16:
            # prob * weight must stay a normal float16 number: a tile corner's 6e-8 would underflow
            # to 0 and read as probability 0 where only tile edges reach (floor at 2^-14).
            g_full = g_full.clamp(min=2.0**-14)
        weighted = np.zeros((n,) + tuple(volume.shape), dtype=acc_dtype)
        weight = np.zeros(volume.shape, dtype=np.float32)
    chunk = max_queries or max(1, LOGIT_ELEMENTS_PER_CHUNK // int(np.prod(patch)))
    queries = queries.to(device=device, dtype=torch.float32)
    boxes = tiles(volume.shape, patch)
    for t, box in enumerate(boxes):
        valid = tuple(s.stop - s.start for s in box)
        block = np.zeros(patch, dtype=np.float32)
        block[tuple(slice(0, v) for v in valid)] = volume[box]  # far-end zero padding, as the reference
        image = torch.from_numpy(block).to(device)[None, None].expand(1, 3, *patch).contiguous()
        inside = (slice(None), slice(None)) + tuple(slice(0, v) for v in valid)
        g = g_full[inside[2:]]
        with torch.inference_mode(), autocast_for(device):
            per_pixel, tokens = model.encode_image(image)
            del image
            per_pixel = per_pixel[inside]  # drop the padding before the per-class products
            for start in range(0, n, chunk):
                kernels = model.mask_kernels(queries[start : start + chunk], tokens)
                prob = torch.sigmoid(model.logits(per_pixel, kernels)[0].float()).mul_(g)
                if on_device:
                    weighted[(slice(start, start + chunk),) + box] += prob
                else:
                    weighted[(slice(start, start + chunk),) + box] += prob.cpu().numpy().astype(acc_dtype, copy=False)
                del prob
            del per_pixel, tokens
        weight[box] += g if on_device else g.cpu().numpy()
        if progress is not None:
            progress((t + 1) / len(boxes), f"SAT tile {t + 1}/{len(boxes)}")
    return Accumulated(weighted, weight, len(boxes))
