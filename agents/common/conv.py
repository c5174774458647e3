"""Convolutional pieces shared by the IRIS, Δ-IRIS and REM autoencoders."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

NORMS = ("group", "channel", "none")  # "group": taming's GroupNorm (statistics over the whole frame);
# "channel": each position normalised over its own channels; "none": identity


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of each position of [B, C, H, W] (eps 1e-6, affine): no statistic is
    shared between positions, so a position's output depends only on its own receptive field."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, 1e-6).permute(0, 3, 1, 2)


def norm_layer(kind: str, channels: int, groups: int) -> nn.Module:
    """The autoencoders' normalisation: GroupNorm(groups, eps 1e-6, affine) for "group", ChannelNorm for
    "channel", identity for "none"."""
    if kind == "none":
        return nn.Identity()
    if kind == "channel":
        return ChannelNorm(channels)
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
