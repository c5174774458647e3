"""Pretraining on the prefilled random steps: obs model, then dynamics, then actor-critic (spec §8.2).

Each phase consumes a budget of elements in whole passes over the prefill (a pass is a few
updates), so an update() call stops between passes once `pretrain_updates_per_epoch` is reached
and the phase continues in the next train-only epoch.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from .observation_model import preprocess, sample_onehot
from .world_model import discounts

if TYPE_CHECKING:
    from .agent import TWMAgent


def _offset_starts(agent: "TWMAgent", size: int, length: int) -> torch.Tensor:
    """Non-overlapping window starts with a random offset, shuffled (official uniform windows)."""
    offset = int(torch.randint(0, length, (1,), generator=agent.cpu_generator))
    starts = torch.arange(offset, size - length, length)
    return starts[torch.randperm(len(starts), generator=agent.cpu_generator)]


@torch.no_grad()
def _encode_prefill(agent: "TWMAgent") -> torch.Tensor:
    """Encoder log-probs of every stored observation (fixed encoder, eval mode), [size+1, K, C]."""
    om = agent.world_model.obs_model.eval()
    index = np.arange(agent.buffer.size + 1)
    chunks = [om.encode(preprocess(torch.as_tensor(agent.buffer.obs(index[i:i + 256]), device=agent.device)))
              for i in range(0, len(index), 256)]
    return torch.cat(chunks)


def _obs_pass(agent: "TWMAgent", record: Callable) -> tuple[int, int]:
    c = agent.config
    order = torch.randperm(agent.buffer.size, generator=agent.cpu_generator).numpy()
    for i in range(0, len(order), c.pretrain_obs_chunk):
        frames = preprocess(torch.as_tensor(agent.buffer.obs(order[i:i + c.pretrain_obs_chunk]), device=agent.device))
        record(agent.world_model.pretrain_obs(frames, agent.generator))
    return len(order), -(-len(order) // c.pretrain_obs_chunk)


def _dyn_pass(agent: "TWMAgent", record: Callable) -> tuple[int, int]:
    c = agent.config
    length = c.wm_sequence_length
    starts = _offset_starts(agent, agent.buffer.size, length).numpy()
    updates = 0
    for i in range(0, len(starts), c.wm_batch_size):
        batch = starts[i:i + c.wm_batch_size]
        window = agent._tensors({k: v for k, v in agent.buffer.window(batch, length).items() if k != "obs"})
        obs_index = np.concatenate([np.maximum(batch[:, None] - 1, 0), batch[:, None] + np.arange(length + 1)], 1)
        log_probs = agent._latent_cache[torch.as_tensor(obs_index, device=agent.device)]
        record(agent.world_model.pretrain_dyn(log_probs, window["actions"], window["rewards"], window["terminated"],
                                              window["truncated"], agent.generator))
        updates += 1
    return len(starts) * length, updates


def _ac_pass(agent: "TWMAgent", record: Callable) -> tuple[int, int]:
    c = agent.config
    horizon = c.ac_horizon
    starts = _offset_starts(agent, agent.buffer.size, horizon).numpy()
    updates = 0
    for i in range(0, len(starts), c.ac_batch_size):
        batch = starts[i:i + c.ac_batch_size]
        obs_index = torch.as_tensor(batch[:, None] + np.arange(horizon + 1), device=agent.device)
        z = sample_onehot(agent._latent_cache[obs_index], agent.generator).flatten(-2)
        steps = agent._tensors({k: np.stack([v[s:s + horizon] for s in batch])
                                for k, v in agent.buffer.steps(0, agent.buffer.size).items()})
        # real data: discount 0.99 unless terminated or truncated, weights 1, entropy-only actor
        g = discounts(steps["terminated"] | steps["truncated"], c.gamma)
        record(agent.actor_critic.update(z, steps["actions"], steps["rewards"], g, torch.zeros_like(g),
                                         torch.ones_like(g), policy_gradient=False))
        updates += 1
    return len(starts) * horizon, updates


PHASE_PASSES = {"pretrain_obs": (_obs_pass, "pretrain_obs_frames"), "pretrain_dyn": (_dyn_pass, "pretrain_dyn_elements"),
                "pretrain_ac": (_ac_pass, "pretrain_ac_elements")}
NEXT_PHASE = {"pretrain_obs": "pretrain_dyn", "pretrain_dyn": "pretrain_ac", "pretrain_ac": "train"}


def run_pretraining(agent: "TWMAgent", record: Callable) -> None:
    """Runs passes of the current phase(s) until the epoch's update quota or pretraining ends."""
    updates = 0
    while agent.phase in PHASE_PASSES and updates < agent.config.pretrain_updates_per_epoch:
        run_pass, budget_key = PHASE_PASSES[agent.phase]
        if agent.pretrain_consumed >= getattr(agent.config, budget_key):
            agent.phase, agent.pretrain_consumed = NEXT_PHASE[agent.phase], 0
            continue
        if agent.phase != "pretrain_obs" and agent._latent_cache is None:
            agent._latent_cache = _encode_prefill(agent)  # the encoder is fixed from here on
        consumed, done = run_pass(agent, record)
        if consumed == 0:
            raise ValueError(f"TWM {agent.phase}: the prefill ({agent.buffer.size} steps) is too short for one "
                             "window; raise prefill_steps or the budget")
        agent.pretrain_consumed += consumed
        updates += done
    if agent.phase == "train":
        agent._latent_cache = None
