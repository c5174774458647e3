"""Nearest-neighbour vector quantiser (VQ-VAE codebook), shared by IRIS and REM.

Euclidean nearest neighbour, no EMA, no dead-code restarts; codebook initialised U(-1/N, 1/N)
(IRIS and REM official code). Straight-through estimator: quantised = z + sg(e_z - z).
Losses (means over elements): codebook `mean((sg(z) - e)^2)` and commitment `β mean((z - sg(e))^2)`;
the commitment term returned already includes β.

Layout: `forward` takes latents with the code dimension last ([..., dim]);
`forward_grid` takes a conv feature map [B, dim, H, W] and returns tokens [B, H*W] in raster order.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class Quantized:
    """Output of the quantiser. `quantized` carries the straight-through gradient to the latents."""

    quantized: torch.Tensor  # same shape as the input latents
    tokens: torch.Tensor  # int64 indices, input shape without the code dimension
    codebook_loss: torch.Tensor  # mean((sg(z) - e)^2)
    commitment_loss: torch.Tensor  # beta * mean((z - sg(e))^2)


class VectorQuantizer(nn.Module):
    def __init__(self, num_codes: int, dim: int, beta: float = 1.0):
        super().__init__()
        self.num_codes, self.dim, self.beta = num_codes, dim, beta
        self.codebook = nn.Embedding(num_codes, dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / num_codes, 1.0 / num_codes)

    @torch.no_grad()
    def tokenize(self, z: torch.Tensor) -> torch.Tensor:
        """Indices of the nearest codes for latents [..., dim]."""
        if z.size(-1) != self.dim:
            raise ValueError(f"VectorQuantizer: latents must end with dim {self.dim}, got shape {tuple(z.shape)}")
        flat = z.reshape(-1, self.dim).float()
        codes = self.codebook.weight.float()
        distances = flat.pow(2).sum(1, keepdim=True) + codes.pow(2).sum(1) - 2.0 * flat @ codes.t()
        return distances.argmin(dim=1).reshape(z.shape[:-1])

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Code vectors [..., dim] for token indices [...]."""
        return self.codebook(tokens)

    def forward(self, z: torch.Tensor) -> Quantized:
        tokens = self.tokenize(z)
        codes = self.embed(tokens)
        codebook_loss = (z.detach() - codes).pow(2).mean()
        commitment_loss = self.beta * (z - codes.detach()).pow(2).mean()
        quantized = z + (codes - z).detach()
        return Quantized(quantized, tokens, codebook_loss, commitment_loss)

    def forward_grid(self, z: torch.Tensor) -> Quantized:
        """Quantises a feature map [B, dim, H, W]; tokens [B, H*W] row-major, quantized [B, dim, H, W]."""
        if z.dim() != 4:
            raise ValueError(f"VectorQuantizer.forward_grid: expected [B, dim, H, W], got {tuple(z.shape)}")
        b, _, h, w = z.shape
        out = self.forward(z.permute(0, 2, 3, 1))
        return Quantized(out.quantized.permute(0, 3, 1, 2), out.tokens.reshape(b, h * w),
                         out.codebook_loss, out.commitment_loss)

    def embed_grid(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Feature map [B, dim, H, W] from raster-order tokens [B, H*W]."""
        return self.embed(tokens).reshape(tokens.size(0), height, width, self.dim).permute(0, 3, 1, 2)
