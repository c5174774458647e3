"""symlog / symexp and two-hot encoding over a given support (Δ-IRIS Crafter rewards and values).

Δ-IRIS (delta_iris.md §5): support = 255 evenly spaced points on [-20, 20] in symlog space
(`uniform_support(-20, 20, 255)`); a target is clamped to [low, high - 1e-5] and split linearly
between its two neighbouring support points; prediction = symexp(Σ softmax(logits) · support).
`SymlogTwoHot` bundles that recipe; the free functions work on any increasing support.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


def uniform_support(low: float, high: float, num_bins: int) -> torch.Tensor:
    """`num_bins` evenly spaced support points on [low, high] (float32)."""
    if num_bins < 2 or not high > low:
        raise ValueError(f"uniform_support: need num_bins >= 2 and high > low, got {num_bins}, [{low}, {high}]")
    # float64 arithmetic so a symmetric support holds an exact 0 (linspace in float32 misses it).
    steps = torch.arange(num_bins, dtype=torch.float64)
    return (low + (high - low) * steps / (num_bins - 1)).float()


def twohot_encode(x: torch.Tensor, support: torch.Tensor, clamp_eps: float = 1e-5) -> torch.Tensor:
    """Two-hot distribution [..., len(support)] of values x [...] (no transform applied to x)."""
    support = support.to(x.device, torch.float32)
    x = x.float().clamp(support[0].item(), support[-1].item() - clamp_eps)
    upper = torch.searchsorted(support, x.contiguous(), right=True).clamp(1, len(support) - 1)
    lower = upper - 1
    low_value, high_value = support[lower], support[upper]
    weight_high = (x - low_value) / (high_value - low_value)
    target = torch.zeros(*x.shape, len(support), device=x.device)
    target.scatter_(-1, lower.unsqueeze(-1), (1.0 - weight_high).unsqueeze(-1))
    target.scatter_add_(-1, upper.unsqueeze(-1), weight_high.unsqueeze(-1))
    return target


def twohot_decode(logits: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Expectation Σ softmax(logits) · support, shape logits.shape[:-1] (no transform applied)."""
    return (logits.float().softmax(-1) * support.to(logits.device, torch.float32)).sum(-1)


class SymlogTwoHot:
    """Two-hot regression in symlog space: `loss(logits, x)` (CE, mean) and `predict(logits)`."""

    def __init__(self, low: float = -20.0, high: float = 20.0, num_bins: int = 255):
        self.support = uniform_support(low, high, num_bins)

    @property
    def num_bins(self) -> int:
        return len(self.support)

    def target(self, x: torch.Tensor) -> torch.Tensor:
        return twohot_encode(symlog(x.float()), self.support)

    def loss(self, logits: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy against two-hot(symlog(x)), averaged over positions (where mask is True)."""
        per_position = -(self.target(x) * logits.float().log_softmax(-1)).sum(-1)
        if mask is None:
            return per_position.mean()
        return per_position[mask].mean()

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return symexp(twohot_decode(logits, self.support))
