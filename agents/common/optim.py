"""Optimiser helpers shared by the agents."""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn


def linear_weight_decay_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups: Linear weights (decayed) and everything else (no decay).

    IRIS `configure_optimizer`: weight decay only on nn.Linear weights; biases, LayerNorm/GroupNorm,
    embeddings (including positional tables) and convolutions are not decayed.
    """
    decay_ids = {id(m.weight) for m in module.modules() if isinstance(m, nn.Linear)}
    decay, no_decay = [], []
    for param in module.parameters():
        if param.requires_grad:
            (decay if id(param) in decay_ids else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw_linear_decay(module: nn.Module, lr: float, weight_decay: float,
                       betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW with decay on Linear weights only (IRIS world model, Δ-IRIS)."""
    return torch.optim.AdamW(linear_weight_decay_groups(module, weight_decay), lr=lr, betas=betas)


def clip_and_step(optimizer: torch.optim.Optimizer, parameters: Iterable[nn.Parameter],
                  max_norm: float) -> torch.Tensor:
    """Clips the gradient norm (if max_norm > 0), steps, and returns the pre-clip norm (a tensor, no sync)."""
    params = [p for p in parameters if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if max_norm > 0 else torch.zeros(())
    optimizer.step()
    return norm.detach()
