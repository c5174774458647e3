"""Convolutional pieces shared by the IRIS, Δ-IRIS and REM autoencoders."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

NORMS = ("group", "none")  # "group": taming's GroupNorm; "none": identity (no statistics across positions)


def norm_layer(kind: str, channels: int, groups: int) -> nn.Module:
    """The autoencoders' normalisation: GroupNorm(groups, eps 1e-6, affine) for "group", identity for "none"."""
    if kind == "none":
        return nn.Identity()
    if kind == "group":
        return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)
    raise ValueError(f"norm: expected one of {', '.join(NORMS)}, got {kind!r}")


class Upsample(nn.Module):
    """Nearest-neighbour x2 upsampling, then a 3x3 convolution (taming-transformers' `Upsample`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
