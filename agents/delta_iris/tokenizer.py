"""Context-aware discrete autoencoder (spec §4).

Encoder E(x_{t-1}, a_{t-1}, x_t) -> K Δ-tokens; decoder D(x_{t-1}, a_{t-1}, z_t) -> x̂_t. Frames are
floats in [0, 1], shaped [B, T, C, H, W]; actions [B, T] int64.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from agents.delta_iris.config import TokenizerConfig
from agents.delta_iris.nets import FrameDecoder, FrameEncoder, init_linear_embedding, latent_resolution
from agents.delta_iris.quantizer import Quantizer, QuantizerOutput


class Tokenizer(nn.Module):
    def __init__(self, config: TokenizerConfig, num_actions: int, image_channels: int = 3, image_size: int = 64):
        super().__init__()
        self.config = config
        self.image_size = image_size
        self.latent_res = latent_resolution(image_size, config.encoder)
        self.grid = math.isqrt(config.num_tokens)
        if self.grid ** 2 != config.num_tokens or self.latent_res % self.grid:
            raise ValueError(f"tokenizer.num_tokens={config.num_tokens} must be a square dividing the "
                             f"{self.latent_res}x{self.latent_res} latent grid")
        self.patch = self.latent_res // self.grid
        self.encoder_action = nn.Embedding(num_actions, image_size * image_size)
        self.decoder_action = nn.Embedding(num_actions, config.decoder_action_channels * self.latent_res ** 2)
        self.quantizer = Quantizer(config.codebook_size, config.codebook_dim,
                                   input_dim=config.encoder.latent_dim * self.patch ** 2,
                                   max_updates_with_revival=config.max_codebook_updates_with_revival,
                                   commitment_weight=config.commitment_weight, codebook_ema=config.codebook_ema,
                                   usage_ema=config.usage_ema, revival=config.dead_code_revival)
        self.encoder = FrameEncoder(2 * image_channels + 1, config.encoder)
        self.decoder = FrameDecoder(config.decoder_input_channels, image_channels, config.decoder)
        self.frame_embedder = FrameEncoder(image_channels, config.frame_embedder)
        self.apply(init_linear_embedding)

    # ---- layout: [N, C, h, w] latent map <-> [N, K, patch*patch*C] token vectors ((k, l, c) order) ----
    def to_patches(self, z: torch.Tensor) -> torch.Tensor:
        n, c = z.shape[:2]
        z = z.reshape(n, c, self.grid, self.patch, self.grid, self.patch)
        return z.permute(0, 2, 4, 3, 5, 1).reshape(n, self.grid * self.grid, self.patch * self.patch * c)

    def from_patches(self, q: torch.Tensor) -> torch.Tensor:
        n = q.shape[0]
        q = q.reshape(n, self.grid, self.grid, self.patch, self.patch, -1)
        return q.permute(0, 5, 1, 3, 2, 4).reshape(n, -1, self.latent_res, self.latent_res)

    # ---- model ----------------------------------------------------------------------------
    def encode(self, x1: torch.Tensor, a: torch.Tensor, x2: torch.Tensor,
               generator: torch.Generator | None = None) -> QuantizerOutput:
        """Δ-tokens of the transitions (x1, a, x2): tokens [B, T, K], q [B, T, K, D]."""
        b, t = a.shape
        plane = self.encoder_action(a).reshape(b * t, 1, self.image_size, self.image_size)
        inputs = torch.cat((x1.flatten(0, 1), plane.to(x1.dtype), x2.flatten(0, 1)), dim=1)
        out = self.quantizer(self.to_patches(self.encoder(inputs)), generator)
        out.q = out.q.reshape(b, t, *out.q.shape[1:])
        out.tokens = out.tokens.reshape(b, t, -1)
        return out

    def decode(self, x1: torch.Tensor, a: torch.Tensor, q: torch.Tensor, clamp: bool = False) -> torch.Tensor:
        """x̂_t from (x_{t-1} [B,T,C,H,W], a_{t-1} [B,T], projected codes q [B,T,K,D])."""
        b, t = a.shape
        frame = self.frame_embedder(x1.flatten(0, 1))
        action = self.decoder_action(a).reshape(b * t, -1, self.latent_res, self.latent_res)
        latent = self.from_patches(q.flatten(0, 1))
        out = self.decoder(torch.cat((frame, action.to(frame.dtype), latent.to(frame.dtype)), dim=1))
        out = out.float().reshape(b, t, *out.shape[1:])
        return out.clamp(0, 1).mul(255).round().div(255) if clamp else out

    def decode_tokens(self, x1: torch.Tensor, a: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Imagination: x̂_t from the previous frame, action and Δ-token indices [B, T, K], 8-bit rounded."""
        return self.decode(x1, a, self.quantizer.embed_tokens(tokens), clamp=True)

    def compute_loss(self, obs: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """Losses on the T-1 pairs of a segment (obs [B,T,C,H,W] in [0,1], actions [B,T], mask [B,T] real frames)."""
        x1, a, x2 = obs[:, :-1], actions[:, :-1], obs[:, 1:]
        quantized = self.encode(x1, a, x2, generator)
        recon = self.decode(x1, a, quantized.q)
        # Pairs whose two frames are real. The harness replay keeps an episode's final observation, which
        # the official episode files drop, so the last transition of a finished episode is trained on too.
        both_real = mask[:, :-1] & mask[:, 1:]
        delta = (x2 - recon.float())[both_real]
        cfg = self.config
        losses = {
            "commitment_loss": quantized.commitment_loss,
            "l1_loss": cfg.l1_weight * delta.abs().mean(),
            "l2_loss": cfg.l2_weight * delta.pow(2).mean(),
            "max_pixel_loss": cfg.max_pixel_weight * delta.flatten(1).pow(2).max(dim=-1)[0].mean(),
        }
        total = sum(losses.values())
        metrics = {k: v.detach() for k, v in losses.items()} | quantized.metrics
        return total, metrics
