"""Deterministic SAT weights from the parity fixture's recipe (no checkpoint needs to be stored).

For each canonical key k (no `module.` prefix): u = default_rng(crc32(k)).random(shape);
matrices and conv kernels (2u-1)/sqrt(fan_in), 1-D '...weight' 1+0.2(u-0.5), other 1-D 0.2(u-0.5).
"""
from __future__ import annotations

import zlib

import numpy as np
import torch


def recipe_tensor(key: str, shape: tuple[int, ...]) -> np.ndarray:
    u = np.random.default_rng(zlib.crc32(key.encode("utf-8"))).random(size=shape)
    if len(shape) >= 2:
        w = (2 * u - 1) / np.sqrt(np.prod(shape[1:]))
    elif key.endswith("weight"):
        w = 1 + 0.2 * (u - 0.5)
    else:
        w = 0.2 * (u - 0.5)
    return w.astype(np.float32)


def recipe_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The recipe's tensor for every key of `module.state_dict()` (canonical names)."""
    return {k: torch.from_numpy(recipe_tensor(k, tuple(v.shape))) for k, v in module.state_dict().items()}
