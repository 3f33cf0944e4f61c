"""The SAT segmentation model: U-Net backbone, multi-scale visual tokens, query decoder, mask heads.

Text queries (one vector per term, from `text.SatTextEncoder`) attend to the image's visual
tokens; each decoded query becomes a dynamic 1x1 kernel applied to the per-pixel map, giving
one pre-sigmoid logit volume per term. Key names match the official checkpoints (see
`checkpoint.py`); the mathematics follows ../shared/fixtures/sat_parity/config.json.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import POOL_KERNELS, SatConfig
from .unet import UNetBackbone


def sinusoidal_encoding_3d(grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    """Fixed 3D sinusoidal positional encoding, (h*w*d, 1, dim), flattened h slowest.

    Per axis `ch` channels of interleaved [sin(p f0), cos(p f0), sin(p f1), ...]; channel blocks
    [0:ch) from h, [ch:2ch) from w, [2ch:3ch) from d, truncated to `dim`.
    """
    ch = int(math.ceil(dim / 6) * 2)
    if ch % 2:
        ch += 1
    inv_freq = 1.0 / (10000 ** (torch.arange(0, ch, 2, dtype=torch.float32) / ch))

    def axis(n: int) -> torch.Tensor:
        angles = torch.arange(n, dtype=torch.float32)[:, None] * inv_freq[None, :]
        return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # (n, ch) interleaved

    h, w, d = grid
    emb = torch.zeros(h, w, d, 3 * ch)
    emb[..., :ch] = axis(h)[:, None, None, :]
    emb[..., ch : 2 * ch] = axis(w)[None, :, None, :]
    emb[..., 2 * ch :] = axis(d)[None, None, :, :]
    return emb[..., :dim].reshape(h * w * d, 1, dim)


class QueryDecoderLayer(nn.Module):
    """Pre-norm, cross-attention only: the queries never attend to each other."""

    def __init__(self, dim: int, nhead: int, ffn: int):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, nhead, dropout=0.1)
        self.linear1 = nn.Linear(dim, ffn)
        self.linear2 = nn.Linear(ffn, dim)
        # norm1 exists in the official weights but the pre-norm path never applies it.
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        t = self.norm2(tgt)
        # Position is added to the keys only: values and queries carry none.
        attended = self.multihead_attn(t, memory + pos, memory, need_weights=False)[0]
        tgt = tgt + attended
        t = self.norm3(tgt)
        return tgt + self.linear2(F.relu(self.linear1(t)))


class QueryDecoder(nn.Module):
    def __init__(self, cfg: SatConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            QueryDecoderLayer(cfg.query_dim, cfg.nhead, cfg.dim_feedforward) for _ in range(cfg.num_decoder_layers)
        )
        self.norm = nn.LayerNorm(cfg.query_dim)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            queries = layer(queries, memory, pos)
        return self.norm(queries)


def _mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    # Linear-GELU-Linear-GELU: SAT keeps the GELU on the output too.
    return nn.Sequential(nn.Linear(cin, hidden), nn.GELU(), nn.Linear(hidden, cout), nn.GELU())


class SatModel(nn.Module):
    """Text-prompted 3D segmentation: image patch (B,3,H,W,D) + queries (N,d) -> logits (B,N,H,W,D)."""

    def __init__(self, cfg: SatConfig):
        super().__init__()
        self.config = cfg
        self.backbone = UNetBackbone(cfg)
        self.projection_layer = _mlp(sum(cfg.features_per_stage), cfg.projection_hidden, cfg.query_dim)
        self.transformer_decoder = QueryDecoder(cfg)
        self.mask_embed_proj = _mlp(cfg.query_dim, cfg.mask_embed_hidden, cfg.per_pixel_dim)
        if cfg.deep_supervision_heads:
            # Training-only heads; built only to write files in the official layout.
            self.mid_mask_embed_proj = nn.ModuleList(
                _mlp(cfg.query_dim, h, c) for h, c in zip(cfg.mid_mask_hidden, cfg.mid_per_pixel)
            )
        # Not a parameter and not in checkpoints: recomputed for the patch size.
        self.register_buffer("pos_embedding", sinusoidal_encoding_3d(cfg.token_grid, cfg.query_dim), persistent=False)

    # -- image side -----------------------------------------------------------------------------
    def visual_tokens(self, skips: list[torch.Tensor]) -> torch.Tensor:
        """Every encoder stage pooled to the /32 grid, concatenated, projected: (T, B, d)."""
        pooled = [F.avg_pool3d(s, k, k) for s, k in zip(skips[: len(POOL_KERNELS)], POOL_KERNELS)]
        pooled += list(skips[len(POOL_KERNELS) :])
        x = torch.cat(pooled, dim=1)                      # (B, C, h, w, d)
        b, c = x.shape[:2]
        x = self.projection_layer(x.permute(0, 2, 3, 4, 1))  # channels last
        return x.reshape(b, -1, x.shape[-1]).transpose(0, 1)  # h slowest, then w, then d

    def encode_image(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The query-independent part: (per-pixel map (B,C,H,W,D), visual tokens (T,B,d))."""
        grid = tuple(s // 32 for s in image.shape[2:])
        if grid != tuple(self.config.token_grid):
            raise ValueError(
                f"SAT patch {tuple(image.shape[2:])} does not match the model's patch size {self.config.image_size}"
            )
        skips = self.backbone.encoder(image)
        tokens = self.visual_tokens(skips)
        per_pixel = self.backbone.decoder(skips)
        return per_pixel, tokens

    # -- query side -----------------------------------------------------------------------------
    def mask_kernels(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(N, d) queries, broadcast over the batch -> dynamic kernels (B, N, C)."""
        b = tokens.shape[1]
        tgt = queries.to(tokens.dtype)[:, None, :].expand(-1, b, -1)   # (N, B, d)
        pos = self.pos_embedding.to(tokens.dtype)
        decoded = self.transformer_decoder(tgt, tokens, pos)            # (N, B, d)
        return self.mask_embed_proj(decoded.transpose(0, 1))            # (B, N, C)

    @staticmethod
    def logits(per_pixel: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        """Per-class dot product of the per-pixel map with each kernel: no bias, no scaling."""
        return torch.einsum("bchwd,bnc->bnhwd", per_pixel, kernels.to(per_pixel.dtype))

    def forward(self, image: torch.Tensor, queries) -> torch.Tensor:
        """Logits (B, N, H, W, D). `queries` is (N, d) or a list of such chunks (decoded separately)."""
        per_pixel, tokens = self.encode_image(image)
        chunks = queries if isinstance(queries, (list, tuple)) else [queries]
        return torch.cat([self.logits(per_pixel, self.mask_kernels(q, tokens)) for q in chunks], dim=1)
