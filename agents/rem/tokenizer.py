"""REM's VQ tokenizer (spec §4): conv encoder -> 1x1 -> codebook -> 1x1 -> conv decoder, no discriminator."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from agents.common.conv import norm_layer
from agents.common.vq import VectorQuantizer
from agents.rem.config import TokenizerConfig


class EncoderBlock(nn.Module):
    """GN -> SiLU -> pad right/bottom by 1 -> conv3x3 s2 (c->2c) -> conv3x3 s1 (2c->2c)."""

    def __init__(self, channels: int, cfg: TokenizerConfig):
        super().__init__()
        self.norm = norm_layer(cfg.norm, channels, cfg.norm_groups)
        self.down = nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=0)
        self.conv = nn.Conv2d(2 * channels, 2 * channels, cfg.inner_kernel, padding=cfg.inner_kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.down(F.pad(F.silu(self.norm(x)), (0, 1, 0, 1))))


class DecoderBlock(nn.Module):
    """GN -> SiLU -> nearest-exact x2 -> conv3x3 (c->c/2) -> conv3x3 (c/2->c/2)."""

    def __init__(self, channels: int, cfg: TokenizerConfig):
        super().__init__()
        self.norm = norm_layer(cfg.norm, channels, cfg.norm_groups)
        self.conv1 = nn.Conv2d(channels, channels // 2, 3, padding=1)
        self.conv2 = nn.Conv2d(channels // 2, channels // 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(F.silu(self.norm(x)), scale_factor=2.0, mode="nearest-exact")
        return self.conv2(self.conv1(x))


def encoder(cfg: TokenizerConfig) -> nn.Sequential:
    widths = [cfg.base_channels * 2 ** i for i in range(cfg.num_down + 1)]
    if widths[-1] != cfg.embed_dim:
        raise ValueError(f"tokenizer config: base_channels*2^num_down = {widths[-1]} must equal embed_dim {cfg.embed_dim}")
    return nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1),
                         *(EncoderBlock(w, cfg) for w in widths[:-1]),
                         norm_layer(cfg.norm, widths[-1], cfg.norm_groups), nn.SiLU(),
                         nn.Conv2d(widths[-1], widths[-1], cfg.inner_kernel, padding=cfg.inner_kernel // 2))


def decoder(cfg: TokenizerConfig) -> nn.Sequential:
    widths = [cfg.embed_dim // 2 ** i for i in range(cfg.num_down + 1)]
    return nn.Sequential(nn.Conv2d(widths[0], widths[0], 3, padding=1),
                         *(DecoderBlock(w, cfg) for w in widths[:-1]),
                         norm_layer(cfg.norm, widths[-1], cfg.norm_groups), nn.SiLU(),
                         nn.Conv2d(widths[-1], 3, 3, padding=1))


@dataclass
class TokenizerOutput:
    tokens: torch.Tensor  # [B, K] int64, row-major over the grid
    reconstruction: torch.Tensor  # [B, 3, 64, 64] in [-1, 1] space
    latents: torch.Tensor  # pre-quantisation h [B, dim, g, g]
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor


class Tokenizer(nn.Module):
    """Frames [B, 3, 64, 64] in [0, 1] <-> K = (64 / 2^num_down)^2 tokens over a vocab of N codes."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder, self.decoder = encoder(cfg), decoder(cfg)
        self.pre_quant = nn.Conv2d(cfg.embed_dim, cfg.embed_dim, 1)
        self.post_quant = nn.Conv2d(cfg.embed_dim, cfg.embed_dim, 1)
        self.quantizer = VectorQuantizer(cfg.vocab_size, cfg.embed_dim, beta=cfg.commitment_beta)
        self.grid = 64 // 2 ** cfg.num_down

    @property
    def tokens_per_frame(self) -> int:
        return self.grid * self.grid

    @property
    def codebook(self) -> torch.Tensor:
        return self.quantizer.codebook.weight

    def encode_latents(self, frames: torch.Tensor) -> torch.Tensor:
        return self.pre_quant(self.encoder(frames * 2 - 1))

    def forward(self, frames: torch.Tensor) -> TokenizerOutput:
        latents = self.encode_latents(frames)
        quantized = self.quantizer.forward_grid(latents)
        reconstruction = self.decoder(self.post_quant(quantized.quantized))
        return TokenizerOutput(quantized.tokens, reconstruction, latents, quantized.codebook_loss,
                               quantized.commitment_loss)

    @torch.no_grad()
    def tokenize(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [..., 3, 64, 64] in [0, 1] -> tokens [..., K]."""
        lead = frames.shape[:-3]
        latents = self.encode_latents(frames.reshape(-1, *frames.shape[-3:]))
        return self.quantizer.tokenize(latents.permute(0, 2, 3, 1)).reshape(*lead, self.tokens_per_frame)

    def code_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens [..., K] -> codebook-vector grids [..., dim, g, g] (detached: no gradient to V)."""
        lead = tokens.shape[:-1]
        grid = self.quantizer.embed_grid(tokens.reshape(-1, self.tokens_per_frame), self.grid, self.grid)
        return grid.detach().reshape(*lead, *grid.shape[1:])

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens [B, K] -> frames [B, 3, 64, 64] in [0, 1]."""
        return ((self.decoder(self.post_quant(self.code_grid(tokens))) + 1) / 2).clamp(0, 1)

    def loss(self, frames: torch.Tensor, perceptual: nn.Module | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_V = MSE(x, x^) + MSE(e, sg h) + beta MSE(h, sg e) + w * LPIPS(x, x^), x in [-1, 1]."""
        out = self(frames)
        target = frames * 2 - 1
        reconstruction = F.mse_loss(out.reconstruction, target)
        total = self.cfg.reconstruction_weight * reconstruction + out.codebook_loss + out.commitment_loss
        metrics = {"tokenizer/reconstruction": reconstruction, "tokenizer/codebook": out.codebook_loss,
                   "tokenizer/commitment": out.commitment_loss}
        if perceptual is not None and self.cfg.perceptual_weight > 0:
            perceptual_loss = perceptual(target, out.reconstruction).mean()
            total = total + self.cfg.perceptual_weight * perceptual_loss
            metrics["tokenizer/perceptual"] = perceptual_loss
        metrics["tokenizer/loss"] = total
        return total, {k: v.detach() for k, v in metrics.items()}
