"""Count-based episode sampling over the shared Replay (spec §3).

Each component has its own visit counters n_e; episode e is drawn with probability
p_e ∝ (1 / (1 + n_e))^α. Inside the episode a timestep t ~ U{0..L-1} (L = steps) anchors the window:
tokenizer / world model windows may be padded on both sides; actor-critic windows end at most at
step L-1 (left padding only), so their last frame is real and has a step.

Counts are incremented right after each optimisation step (the official prefetching loader lets them
lag by a few batches; that lag is not reproduced).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.replay import Replay

COMPONENTS = ("tokenizer", "world_model", "actor_critic")


@dataclass
class Batch:
    """Stacked segments on a device; obs are floats in [0, 1]."""

    obs: torch.Tensor  # [B, T, C, H, W]
    actions: torch.Tensor  # [B, T] int64
    rewards: torch.Tensor  # [B, T] float
    ends: torch.Tensor  # [B, T] int64 (terminated, or truncated too when the config says so)
    mask: torch.Tensor  # [B, T] bool: the observation is real
    step_mask: torch.Tensor  # [B, T] bool: a step (action, reward, end) exists there
    episode_ids: np.ndarray  # [B]


class CountBasedSampler:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.counts: dict[str, np.ndarray] = {name: np.zeros(0, np.int64) for name in COMPONENTS}

    def probabilities(self, component: str, lengths: np.ndarray, alpha: float) -> np.ndarray:
        counts = self.counts[component]
        if len(counts) < len(lengths):
            counts = self.counts[component] = np.concatenate((counts, np.zeros(len(lengths) - len(counts), np.int64)))
        weights = (1.0 / (1.0 + counts[: len(lengths)])) ** alpha
        weights = np.where(lengths > 0, weights, 0.0)  # an episode with no step yet cannot anchor a window
        if weights.sum() <= 0:
            raise RuntimeError("CountBasedSampler: the replay holds no step to sample")
        return weights / weights.sum()

    def sample(self, component: str, replay: Replay, batch_size: int, length: int, alpha: float,
               beyond_end: bool) -> tuple[np.ndarray, np.ndarray]:
        """Episode ids [B] and window starts [B] (windows hold `length` observations)."""
        lengths = replay.episode_lengths()
        episodes = self.rng.choice(len(lengths), size=batch_size, replace=True,
                                   p=self.probabilities(component, lengths, alpha))
        steps = lengths[episodes]
        anchors = self.rng.integers(0, steps)
        if beyond_end:
            starts = anchors - self.rng.integers(0, length, size=batch_size)
        else:
            stops = np.minimum(steps, anchors + 1 + self.rng.integers(0, length, size=batch_size))
            starts = stops - length
        return episodes, starts

    def increment(self, component: str, episodes: np.ndarray) -> None:
        np.add.at(self.counts[component], episodes, 1)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "counts": {k: v.copy() for k, v in self.counts.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.counts = {k: np.asarray(v, np.int64).copy() for k, v in state["counts"].items()}


def load_batch(replay: Replay, episodes: np.ndarray, starts: np.ndarray, length: int, device: torch.device | str,
               truncation_is_end: bool) -> Batch:
    segments = [replay.segment(int(e), int(s), length) for e, s in zip(episodes, starts)]
    obs = torch.from_numpy(np.stack([s.obs for s in segments])).to(device).float().div_(255)

    def stacked(name: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([getattr(s, name) for s in segments])).to(device)

    ends = stacked("terminated") | stacked("truncated") if truncation_is_end else stacked("terminated")
    return Batch(obs, stacked("actions"), stacked("rewards").float(), ends.long(), stacked("mask"),
                 stacked("step_mask"), episodes)
