"""λ-returns over imagined trajectories (IRIS `compute_lambda_returns`, Δ-IRIS / REM variants).

Shapes: rewards, values, ends are [B, T] (a trailing singleton dim is accepted and squeezed).
`ends[:, t]` is the (predicted) termination of the transition taken at step t; it cuts the
bootstrap from t+1 but the recursion itself keeps running (IRIS spec §6.3).

Without `bootstrap` (IRIS, REM): Λ_{T-1} = V_{T-1} and, for t < T-1,
    Λ_t = r_t + γ (1 - d_t) [(1 - λ) V_{t+1} + λ Λ_{t+1}].
With `bootstrap` [B] (Δ-IRIS, values of a target critic with an extra final value V_T):
    Λ_{T-1} = r_{T-1} + γ (1 - d_{T-1}) V_T, and the same recursion below it.
Computed under no_grad: the result is a regression target.
"""
from __future__ import annotations

import torch


def _flat(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.dim() == 3 and x.size(-1) == 1:
        x = x.squeeze(-1)
    if x.dim() != 2:
        raise ValueError(f"lambda_returns: {name} must be [B, T] (or [B, T, 1]), got shape {tuple(x.shape)}")
    return x


@torch.no_grad()
def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, ends: torch.Tensor, gamma: float, lambda_: float,
                   bootstrap: torch.Tensor | None = None) -> torch.Tensor:
    """λ-returns [B, T] (see module docstring for the two bootstrap semantics)."""
    rewards, values, ends = _flat(rewards, "rewards"), _flat(values, "values"), _flat(ends, "ends")
    if not (rewards.shape == values.shape == ends.shape):
        raise ValueError(f"lambda_returns: shapes differ: rewards {tuple(rewards.shape)}, "
                         f"values {tuple(values.shape)}, ends {tuple(ends.shape)}")
    continues = 1.0 - ends.to(values.dtype)
    rewards = rewards.to(values.dtype)
    horizon = values.size(1)
    returns = torch.empty_like(values)
    if bootstrap is None:
        returns[:, -1] = values[:, -1]
        next_value, next_return = values[:, -1], values[:, -1]
        start = horizon - 2
    else:
        bootstrap = bootstrap.reshape(-1).to(values.dtype)
        next_value, next_return = bootstrap, bootstrap
        start = horizon - 1
    for t in range(start, -1, -1):
        mixed = (1.0 - lambda_) * next_value + lambda_ * next_return
        returns[:, t] = rewards[:, t] + gamma * continues[:, t] * mixed
        next_value, next_return = values[:, t], returns[:, t]
    return returns
