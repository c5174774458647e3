"""IRIS discrete autoencoder (spec §4): taming-style CNN encoder/decoder around a VQ codebook."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from agents.common.conv import Upsample, norm_layer
from agents.common.lpips import LPIPS
from agents.common.vq import VectorQuantizer
from agents.iris.config import TokenizerConfig


def _norm(channels: int, cfg: TokenizerConfig) -> nn.Module:
    return norm_layer(cfg.norm, channels, cfg.norm_groups)


class ResBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, cfg: TokenizerConfig):
        super().__init__()
        self.norm1, self.conv1 = _norm(channels_in, cfg), nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.norm2, self.conv2 = _norm(channels_out, cfg), nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.skip = nn.Identity() if channels_in == channels_out else nn.Conv2d(channels_in, channels_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H·W positions with 1x1-conv q/k/v/out."""

    def __init__(self, channels: int, cfg: TokenizerConfig):
        super().__init__()
        self.norm = _norm(channels, cfg)
        self.q, self.k, self.v = (nn.Conv2d(channels, channels, 1) for _ in range(3))
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q = self.q(y).flatten(2).transpose(1, 2)  # [B, HW, C]
        k = self.k(y).flatten(2).transpose(1, 2)
        v = self.v(y).flatten(2).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / sqrt(C)) v
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


def _level(c_in: int, c_out: int, blocks: int, attention: bool, cfg: TokenizerConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(blocks):
        layers.append(ResBlock(c_in if i == 0 else c_out, c_out, cfg))
        if attention:
            layers.append(AttnBlock(c_out, cfg))
    return nn.Sequential(*layers)


def _middle(channels: int, cfg: TokenizerConfig) -> nn.Sequential:
    if not cfg.middle_blocks:
        return nn.Sequential()
    attention = [AttnBlock(channels, cfg)] if cfg.mid_attention else []
    return nn.Sequential(ResBlock(channels, channels, cfg), *attention, ResBlock(channels, channels, cfg))


class Encoder(nn.Module):
    """[B, 3, 64, 64] in [-1, 1] → [B, z_channels, 4, 4] (spec §4.2)."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        widths = [cfg.ch * m for m in cfg.ch_mult]
        self.conv_in = nn.Conv2d(3, cfg.ch, 3, padding=1)
        stages: list[nn.Module] = []
        resolution, previous = cfg.resolution, cfg.ch
        for index, width in enumerate(widths):
            stages.append(_level(previous, width, cfg.num_res_blocks, resolution in cfg.attn_resolutions, cfg))
            previous = width
            if index != len(widths) - 1:
                stages.append(Downsample(width))
                resolution //= 2
        self.down = nn.Sequential(*stages)
        self.mid = _middle(previous, cfg)
        self.norm_out = _norm(previous, cfg)
        self.conv_out = nn.Conv2d(previous, cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.down(self.conv_in(x)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """[B, z_channels, 4, 4] → [B, 3, 64, 64] in [-1, 1] space, no output activation (spec §4.2)."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        widths = [cfg.ch * m for m in cfg.ch_mult]
        resolution = cfg.resolution // 2 ** (len(widths) - 1)
        previous = widths[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, previous, 3, padding=1)
        self.mid = _middle(previous, cfg)
        stages: list[nn.Module] = []
        for index in reversed(range(len(widths))):
            width = widths[index]
            stages.append(_level(previous, width, cfg.num_res_blocks + 1, resolution in cfg.attn_resolutions, cfg))
            previous = width
            if index != 0:
                stages.append(Upsample(width))
                resolution *= 2
        self.up = nn.Sequential(*stages)
        self.norm_out = _norm(previous, cfg)
        self.conv_out = nn.Conv2d(previous, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.up(self.mid(self.conv_in(z)))
        return self.conv_out(F.silu(self.norm_out(h)))


@dataclass
class TokenizerLosses:
    codebook: torch.Tensor
    commitment: torch.Tensor
    reconstruction: torch.Tensor  # L1 in [-1, 1] space
    perceptual: torch.Tensor  # LPIPS (0 when off)
    squared: torch.Tensor  # squared_error_weight x MSE in [-1, 1] space (0 in the paper profiles)

    @property
    def total(self) -> torch.Tensor:
        return self.codebook + self.commitment + self.reconstruction + self.perceptual + self.squared


class Tokenizer(nn.Module):
    """Frames in [0, 1] ↔ grid x grid tokens (16 in the paper). `lpips` is optional (perceptual term off when None)."""

    def __init__(self, cfg: TokenizerConfig, lpips: LPIPS | None = None):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.pre_quant_conv = nn.Conv2d(cfg.z_channels, cfg.embed_dim, 1)
        self.quantizer = VectorQuantizer(cfg.vocab_size, cfg.embed_dim, cfg.beta)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)
        self.decoder = Decoder(cfg)
        self.grid = cfg.resolution // 2 ** (len(cfg.ch_mult) - 1)
        self.lpips = lpips  # frozen; registered as a submodule so .to(device) moves it, excluded from state_dict

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("lpips.")]

    def state_dict(self, *args, **kwargs):  # the frozen LPIPS weights come from their own files
        state = super().state_dict(*args, **kwargs)
        return type(state)((k, v) for k, v in state.items() if not k.startswith("lpips."))

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        missing, unexpected = super().load_state_dict(state, strict=False, assign=assign)
        missing = [k for k in missing if not k.startswith("lpips.")]
        if strict and (missing or unexpected):
            raise RuntimeError(f"Tokenizer.load_state_dict: missing {missing}, unexpected {unexpected}")

    def encode(self, frames: torch.Tensor):
        """frames [B, 3, H, W] in [0, 1] → Quantized (tokens [B, K], straight-through grid)."""
        z = self.pre_quant_conv(self.encoder(frames.mul(2).sub(1)))
        return self.quantizer.forward_grid(z)

    def decode_grid(self, grid: torch.Tensor) -> torch.Tensor:
        """Quantised grid [B, d, h, w] → reconstruction in [-1, 1] space (unclamped)."""
        return self.decoder(self.post_quant_conv(grid))

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, K] → frames [B, 3, H, W] in [0, 1] (clamped)."""
        grid = self.quantizer.embed_grid(tokens, self.grid, self.grid)
        return self.decode_grid(grid).add(1).div(2).clamp(0, 1)

    @torch.no_grad()
    def reconstruct(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode → decode, as the policy sees real frames; [0, 1] in and out."""
        return self.decode_tokens(self.encode(frames).tokens)

    def loss(self, frames: torch.Tensor) -> TokenizerLosses:
        quantized = self.encode(frames)
        target = frames.mul(2).sub(1)
        recon = self.decode_grid(quantized.quantized)
        error = target - recon
        reconstruction = error.abs().mean()
        squared = (self.cfg.squared_error_weight * error.pow(2).mean() if self.cfg.squared_error_weight
                   else torch.zeros((), device=frames.device))
        if self.lpips is not None and self.cfg.perceptual_weight > 0:
            self.lpips.train(self.training and self.cfg.lpips_dropout_in_train)
            perceptual = self.cfg.perceptual_weight * self.lpips(target, recon).mean()
        else:
            perceptual = torch.zeros((), device=frames.device)
        return TokenizerLosses(quantized.codebook_loss, quantized.commitment_loss, reconstruction, perceptual, squared)
