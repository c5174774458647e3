"""Imagination with the Transformer-XL memory from replay starts (spec §6)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .actor_critic import ActorCritic
from .dynamics import DynamicsModel
from .observation_model import sample_onehot


@dataclass
class Trajectories:
    z: torch.Tensor  # [B, H+1, zdim] latents z_1..z_{H+1}
    actions: torch.Tensor  # [B, H]
    rewards: torch.Tensor  # [B, H] predicted reward means
    discounts: torch.Tensor  # [B, H] sigmoid of the discount logits
    ends: torch.Tensor  # [B, H] imagined ends (cumulative discount < threshold)
    weights: torch.Tensor  # [B, H] loss weights (cumulative discounts)
    hiddens: torch.Tensor  # [B, H, D] h_t at the action tokens


@torch.no_grad()
def imagine(dyn: DynamicsModel, ac: ActorCritic, z0: torch.Tensor, a0: torch.Tensor, r0: torch.Tensor,
            d0: torch.Tensor, z1: torch.Tensor, horizon: int, generator: torch.Generator,
            fresh_latents: Callable[[int], torch.Tensor]) -> Trajectories:
    """Rollouts from start pairs ((z0, a0, r0, d0), z1), all [B, ...]; `fresh_latents(n)` gives n
    latents encoded from random buffer observations, used where an imagined episode ends."""
    config = dyn.config
    dyn.eval()
    _, memory = dyn.start(z0, a0)
    history = d0.unsqueeze(1)  # end flags of the steps in memory
    z, r_prev, prev_end = z1, r0, d0
    cumulative = torch.ones_like(r0)
    zs, actions, rewards, discounts, ends, weights, hiddens = [z1], [], [], [], [], [], []
    for _ in range(horizon):
        a = ac.act(z, generator)
        h, memory = dyn.step(memory, history, r_prev, z, a)
        log_probs, reward, g_logit = dyn.heads(h)
        next_z = sample_onehot(log_probs, generator).flatten(-2)
        g = torch.sigmoid(g_logit).clamp(0.0, 1.0)
        done = prev_end.float()
        weight = cumulative * (1.0 - done) + done
        cumulative = (cumulative * (1.0 - done) + done) * g
        end = cumulative < config.wm_discount_threshold
        count = int(end.sum())  # one host sync per step: the number of fresh starts to encode
        if count > 0:
            next_z = next_z.clone()
            next_z[end] = fresh_latents(count).to(next_z.dtype)
        history = torch.cat([history, end.unsqueeze(1)], dim=1)[:, -(config.wm_memory_length + 1):]
        zs.append(next_z)
        actions.append(a)
        rewards.append(reward)
        discounts.append(g)
        ends.append(end)
        weights.append(weight)
        hiddens.append(h)
        z, r_prev, prev_end = next_z, reward, end
    stack = lambda xs: torch.stack(xs, dim=1)  # noqa: E731
    return Trajectories(stack(zs), stack(actions), stack(rewards), stack(discounts), stack(ends), stack(weights),
                        stack(hiddens))
