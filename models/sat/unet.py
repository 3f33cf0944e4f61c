"""SAT's vision backbone: a plain 3D U-Net that returns its encoder skips and its full-resolution map.

Module names follow the official checkpoints (nnU-Net's PlainConvUNet as SAT customised it):
`encoder.stages.{s}.0.convs.{i}.{conv,norm}`, `decoder.stages.{s}.convs.{i}.{conv,norm}`,
`decoder.transpconvs.{s}`. There are no segmentation layers: SAT's mask head does that job.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import SatConfig

# Decoder levels whose upsampled map has at least this many elements skip the channel concat.
SLAB_THRESHOLD = 1 << 27
SLAB_DEPTH = 16


class ConvNormAct(nn.Module):
    """Conv3d(k=3, pad=1) -> InstanceNorm3d(affine) -> LeakyReLU(0.01), nnU-Net's order."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=True)
        # track_running_stats=False: instance statistics in eval() too, as in training.
        self.norm = nn.InstanceNorm3d(cout, eps=1e-5, affine=True, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_act(self.conv(x))

    def norm_act(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            x = self.norm(x)
        else:
            x = instance_norm_(x, self.norm.weight, self.norm.bias, self.norm.eps)
        return F.leaky_relu(x, 0.01, inplace=True)

    def forward_concat(self, parts: list[torch.Tensor], slab: int) -> torch.Tensor:
        """This block on torch.cat(parts, 1) without building the concatenation.

        The conv runs slab by slab along the last axis (with a one-voxel halo), so the
        full-resolution decoder level never holds the 2x-channel tensor: ~2 GB less per tile.
        """
        conv = self.conv
        depth = parts[0].shape[-1]
        out = None
        for d0 in range(0, depth, slab):
            d1 = min(d0 + slab, depth)
            lo, hi = max(d0 - 1, 0), min(d1 + 1, depth)
            x = torch.cat([p[..., lo:hi] for p in parts], dim=1)
            x = F.pad(x, (1 if d0 == 0 else 0, 1 if d1 == depth else 0))  # zero padding only at true borders
            y = F.conv3d(x, conv.weight, conv.bias, stride=1, padding=(1, 1, 0))
            if out is None:
                out = y.new_empty(y.shape[:-1] + (depth,))
            out[..., d0:d1] = y
            del x, y
        return self.norm_act(out)


def instance_norm_(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """InstanceNorm3d (affine, per-instance statistics) in place: no second full-size tensor."""
    if x.dtype == torch.float32:
        var, mean = torch.var_mean(x, dim=(2, 3, 4), keepdim=True, correction=0)
    else:  # bf16/fp16 statistics lose digits: take them in float32, a few channels at a time
        parts = [torch.var_mean(x[:, c : c + 8].float(), dim=(2, 3, 4), keepdim=True, correction=0) for c in range(0, x.shape[1], 8)]
        var, mean = torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)
    scale = weight.float().view(1, -1, 1, 1, 1) * torch.rsqrt(var + eps)
    shift = bias.float().view(1, -1, 1, 1, 1) - mean * scale
    return x.mul_(scale.to(x.dtype)).add_(shift.to(x.dtype))


class ConvStack(nn.Module):
    """n ConvNormAct blocks; the first carries the stage's stride."""

    def __init__(self, n: int, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.convs = nn.Sequential(*[ConvNormAct(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


class Encoder(nn.Module):
    def __init__(self, cfg: SatConfig):
        super().__init__()
        stages, cin = [], cfg.input_channels
        for cout, n, stride in zip(cfg.features_per_stage, cfg.n_conv_per_stage, cfg.strides):
            # The extra Sequential level reproduces the official key path `stages.{s}.0.convs`.
            stages.append(nn.Sequential(ConvStack(n, cin, cout, stride)))
            cin = cout
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class Decoder(nn.Module):
    """From the bottleneck up: transposed conv, concat [upsampled, skip], conv stack."""

    def __init__(self, cfg: SatConfig):
        super().__init__()
        feats = cfg.features_per_stage
        n_up = len(feats) - 1
        self.transpconvs = nn.ModuleList(
            nn.ConvTranspose3d(feats[n_up - s], feats[n_up - s - 1], kernel_size=2, stride=2, bias=True) for s in range(n_up)
        )
        self.stages = nn.ModuleList(
            ConvStack(cfg.n_conv_per_stage_decoder[s], 2 * feats[n_up - s - 1], feats[n_up - s - 1]) for s in range(n_up)
        )

    def forward(self, skips: list) -> torch.Tensor:
        """The full-resolution output only: SAT's inference uses no deeper decoder level.

        Consumes `skips`: each entry is set to None once used, so a caller that drops its own
        references lets the largest maps be freed as early as possible.
        """
        n_up = len(self.stages)
        x, skips[-1] = skips[-1], None
        for s in range(n_up):
            up = self.transpconvs[s](x)
            del x  # free the lower level before the concat doubles the channels
            skip, skips[n_up - s - 1] = skips[n_up - s - 1], None
            first, *rest = self.stages[s].convs
            if up.numel() >= SLAB_THRESHOLD and not torch.is_grad_enabled():
                x = first.forward_concat([up, skip], slab=SLAB_DEPTH)
            else:
                x = first(torch.cat([up, skip], dim=1))
            del up, skip
            for block in rest:
                x = block(x)
        return x


class UNetBackbone(nn.Module):
    def __init__(self, cfg: SatConfig):
        super().__init__()
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The full-resolution per-pixel map (callers that need the skips call encoder/decoder)."""
        return self.decoder(self.encoder(x))
