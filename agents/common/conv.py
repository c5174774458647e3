"""Convolutional pieces shared by the IRIS and Δ-IRIS autoencoders."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Upsample(nn.Module):
    """Nearest-neighbour x2 upsampling, then a 3x3 convolution (taming-transformers' `Upsample`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
