"""Factorised, L2-normalised vector quantiser with an EMA codebook and gated dead-code revival (spec §4.3)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class QuantizerOutput:
    q: torch.Tensor  # [..., K, input_dim] straight-through quantised vectors, projected back
    tokens: torch.Tensor  # [..., K] int64 code indices
    commitment_loss: torch.Tensor  # scalar, already weighted
    metrics: dict[str, float]


class Quantizer(nn.Module):
    """Linear(input_dim -> code_dim) + L2 norm; nearest code by cosine; Linear(code_dim -> input_dim).

    The codebook is a buffer updated by EMA in training mode only (no gradient).
    """

    def __init__(self, codebook_size: int, code_dim: int, input_dim: int, max_updates_with_revival: int,
                 commitment_weight: float = 0.02, codebook_ema: float = 0.99, usage_ema: float = 0.98,
                 revival: bool = True):
        super().__init__()
        if not math.log2(codebook_size).is_integer():
            raise ValueError(f"codebook_size must be a power of 2, got {codebook_size}")
        self.revival_entropy_threshold = math.log2(codebook_size) - 2  # bits
        self.max_updates_with_revival = max_updates_with_revival
        self.revival = revival  # False: never re-seed dead codes (not an official option)
        self.commitment_weight = commitment_weight
        self.codebook_ema = codebook_ema
        self.usage_ema = usage_ema
        self.pre_proj = nn.Linear(input_dim, code_dim)
        self.post_proj = nn.Linear(code_dim, input_dim)
        self.register_buffer("codebook", torch.empty(codebook_size, code_dim).uniform_(-1 / codebook_size, 1 / codebook_size))
        self.register_buffer("usage", torch.full((codebook_size,), 1.0 / codebook_size))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> QuantizerOutput:
        u = F.normalize(self.pre_proj(z).float(), dim=-1)
        flat = u.reshape(-1, u.shape[-1])
        tokens = (flat @ self.codebook.t()).argmax(dim=-1)
        code = self.codebook[tokens]
        commitment = self.commitment_weight * (flat - code).pow(2).mean()
        metrics: dict[str, float] = {}
        if self.training:
            metrics["codewords_revived"] = float(self._update_codebook(flat.detach(), tokens, generator))
            metrics["codebook_entropy_bits"] = self.usage_entropy()
        q = self.post_proj(flat + (code - flat).detach())
        return QuantizerOutput(q.reshape(*z.shape[:-1], -1), tokens.reshape(z.shape[:-1]), commitment, metrics)

    def usage_entropy(self) -> float:
        probs = self.usage[self.usage > 0]
        return float(-(probs * probs.log2()).sum())

    @torch.no_grad()
    def _update_codebook(self, u: torch.Tensor, tokens: torch.Tensor, generator: torch.Generator | None) -> int:
        size = self.codebook.shape[0]
        one_hot = F.one_hot(tokens, size).to(u.dtype)
        counts = one_hot.sum(0)
        sums = (one_hot.t() @ u).to(self.codebook.dtype)  # autocast may have run the matmul in bf16
        means = F.normalize(sums / counts.clamp(min=1).unsqueeze(-1), dim=-1)  # unused code: 0
        self.codebook.lerp_(means, 1 - self.codebook_ema)
        self.usage.lerp_((counts / len(tokens)).to(self.usage.dtype), 1 - self.usage_ema)
        entropy = self.usage_entropy()
        can_revive = self.revival and (entropy < 1 or int(self.num_updates) < self.max_updates_with_revival)
        revived = 0
        if can_revive and entropy < self.revival_entropy_threshold:
            expired = torch.where(self.usage < 1 / (10 * size))[0]
            perm = torch.randperm(len(expired), generator=generator, device="cpu").to(expired.device)
            expired = expired[perm[: len(u)]]
            sources = torch.randperm(len(u), generator=generator, device="cpu").to(u.device)[: len(expired)]
            self.codebook[expired] = u[sources].to(self.codebook.dtype)
            self.usage[expired] = 1.0 / size
            revived = len(expired)
        self.codebook.copy_(F.normalize(self.codebook, dim=-1))
        self.num_updates += 1
        return revived

    @torch.no_grad()
    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token indices [..., K] -> projected code vectors [..., K, input_dim] (imagination decoding)."""
        return self.post_proj(self.codebook[tokens])
