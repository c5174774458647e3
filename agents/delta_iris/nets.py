"""Convolutional blocks shared by Δ-IRIS's tokenizer, world model and actor-critic (spec §4.1).

Tensors here are [N, C, H, W]; callers flatten time into the batch.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from agents.common.conv import Upsample
from agents.delta_iris.config import FrameCnnConfig


def group_norm(channels: int) -> nn.GroupNorm:
    # Official: GroupNorm(32, C), eps 1e-5. The tiny profile's widths are < 32, so it uses one group per
    # channel there; every paper width is a multiple of 32, where this is exactly GroupNorm(32).
    return nn.GroupNorm(min(32, channels), channels)


class ResidualBlock(nn.Module):
    """GN -> SiLU -> Conv3x3 -> GN -> SiLU -> Conv3x3, plus identity or 1x1 skip."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.f = nn.Sequential(
            group_norm(in_channels), nn.SiLU(),
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            group_norm(out_channels), nn.SiLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.f(x)


class FrameEncoder(nn.Module):
    """Conv3x3 -> [ResidualBlock (+ 2x2 stride-2 conv)] per level -> GN -> SiLU -> Conv3x3 to latent_dim."""

    def __init__(self, in_channels: int, config: FrameCnnConfig):
        super().__init__()
        if len(config.mult) != len(config.down):
            raise ValueError(f"FrameCnnConfig: mult {config.mult} and down {config.down} differ in length")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, config.channels, 3, padding=1)]
        width = config.channels
        for mult, down in zip(config.mult, config.down):
            layers.append(ResidualBlock(width, mult * config.channels))
            width = mult * config.channels
            if down:
                layers.append(nn.Conv2d(width, width, 2, stride=2))
        layers += [group_norm(width), nn.SiLU(), nn.Conv2d(width, config.latent_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FrameDecoder(nn.Module):
    """Mirror of FrameEncoder: Conv3x3 latent -> residual levels with nearest-x2 upsampling -> Conv3x3 to image."""

    def __init__(self, latent_dim: int, out_channels: int, config: FrameCnnConfig):
        super().__init__()
        layers: list[nn.Module] = []
        width_out = config.channels
        for mult, down in zip(config.mult, config.down):  # built from the output side, then reversed
            width_in = mult * config.channels
            layers.append(ResidualBlock(width_in, width_out))
            width_out = width_in
            if down:
                layers.append(Upsample(width_in))
        layers.reverse()
        layers.insert(0, nn.Conv2d(latent_dim, width_out, 3, padding=1))
        layers += [group_norm(config.channels), nn.SiLU(), nn.Conv2d(config.channels, out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def latent_resolution(image_size: int, config: FrameCnnConfig) -> int:
    return image_size // 2 ** sum(config.down)


def init_linear_embedding(module: nn.Module) -> None:
    """Official init: Linear & Embedding N(0, 0.02), zero biases, LayerNorm (1, 0); convs keep PyTorch's."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
    elif isinstance(module, nn.LayerNorm):
        module.weight.data.fill_(1.0)
        module.bias.data.zero_()

