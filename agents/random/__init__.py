"""The uniform-random baseline: no learning, used by the smoke suite, the tests and as a floor."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, EpochPlan, Mode, Progress, register


@dataclass(frozen=True)
class RandomConfig:
    steps_per_epoch: int = 1_000  # agent steps collected between (no-op) updates and checkpoints
    num_collect_envs: int = 1  # parallel collection environments


@register
class RandomAgent(Agent):
    name = "random"
    config_class = RandomConfig
    profiles = {
        "atari100k": RandomConfig,
        "crafter": lambda: RandomConfig(steps_per_epoch=10_000, num_collect_envs=1),
        "tiny": lambda: RandomConfig(steps_per_epoch=100),
    }

    def __init__(self, config: RandomConfig, env_info, device: str = "cpu", seed: int = 0):
        super().__init__(config, env_info, device, seed)
        self._rng = np.random.default_rng(seed)

    def plan_epoch(self, progress: Progress) -> EpochPlan | None:
        if progress.budget_reached:
            return None
        return EpochPlan(collect_steps=min(self.config.steps_per_epoch, progress.budget_steps - progress.env_steps))

    def initial_state(self, batch_size: int) -> None:
        return None

    def act(self, obs: np.ndarray, state: Any, mode: Mode, first: np.ndarray) -> tuple[np.ndarray, Any]:
        return self._rng.integers(0, self.env_info.num_actions, size=len(obs), dtype=np.int64), state

    def update(self, replay, progress: Progress) -> dict[str, float]:
        return {"replay_steps": float(replay.num_steps), "replay_episodes": float(replay.num_episodes)}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rng.bit_generator.state = state["rng"]
