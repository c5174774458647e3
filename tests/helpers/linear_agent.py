"""A small *learning* agent for harness tests: a linear softmax policy trained by REINFORCE on
replay segments. It has weights, an optimizer and its own RNGs, so exact-resume tests can compare
final weights, not only returns. Registered as "linear" through WMBENCH_AGENT_MODULES.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.base import Agent, EpochPlan, Mode, Progress, register


@dataclass(frozen=True)
class LinearConfig:
    steps_per_epoch: int = 50  # agent steps collected per epoch
    updates_per_epoch: int = 4  # gradient steps per update() call
    batch_size: int = 8  # segments per gradient step
    segment_length: int = 4  # steps per segment
    learning_rate: float = 0.01  # SGD learning rate
    random_epochs: int = 1  # epochs of uniform random collection first
    num_collect_envs: int = 1  # parallel collection envs
    update_sleep_s: float = 0.0  # wall-clock seconds slept in each update(): a run that lasts, on any machine
    resets_together: bool = False  # collection envs wait for each other to end their episodes (Agent contract)


@register
class LinearAgent(Agent):
    name = "linear"
    config_class = LinearConfig
    profiles = {"tiny": LinearConfig, "atari100k": LinearConfig, "crafter": LinearConfig,
                "two_envs": lambda: LinearConfig(num_collect_envs=2),
                "two_envs_together": lambda: LinearConfig(num_collect_envs=2, resets_together=True),
                "slow": lambda: LinearConfig(update_sleep_s=0.5)}

    def __init__(self, config: LinearConfig, env_info, device: str = "cpu", seed: int = 0):
        super().__init__(config, env_info, device, seed)
        torch.manual_seed(seed)
        features = int(np.prod(env_info.obs_shape)) // 64
        self.policy = torch.nn.Linear(features, env_info.num_actions)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.learning_rate)
        self.torch_rng = torch.Generator().manual_seed(seed)
        self.np_rng = np.random.default_rng(seed)
        self.updates = 0

    def resets_envs_together(self) -> bool:
        return self.config.resets_together

    def _features(self, obs: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32) / 255.0
        return x.reshape(x.shape[0], -1, 64).mean(-1)

    def plan_epoch(self, progress: Progress) -> EpochPlan | None:
        if progress.budget_reached:
            return None
        return EpochPlan(self.config.steps_per_epoch, random_actions=progress.epoch < self.config.random_epochs)

    def initial_state(self, batch_size: int) -> Any:
        return torch.zeros(batch_size)

    def act(self, obs: np.ndarray, state: Any, mode: Mode, first: np.ndarray) -> tuple[np.ndarray, Any]:
        with torch.no_grad():
            logits = self.policy(self._features(obs))
        actions = torch.multinomial(torch.softmax(logits, -1), 1, generator=self.torch_rng).squeeze(-1)
        state = torch.where(torch.as_tensor(first), torch.zeros_like(state), state) + 1
        return actions.numpy().astype(np.int64), state

    def update(self, replay, progress: Progress) -> dict[str, float]:
        lengths = replay.episode_lengths()
        valid = np.flatnonzero(lengths > 0)
        losses = []
        for _ in range(self.config.updates_per_epoch):
            episodes = self.np_rng.choice(valid, size=self.config.batch_size)
            segments = [replay.segment(int(e), int(self.np_rng.integers(0, lengths[e])), self.config.segment_length)
                        for e in episodes]
            obs = np.concatenate([s.obs for s in segments])
            actions = torch.as_tensor(np.concatenate([s.actions for s in segments]))
            rewards = torch.as_tensor(np.concatenate([s.rewards for s in segments]))
            mask = torch.as_tensor(np.concatenate([s.step_mask for s in segments]), dtype=torch.float32)
            log_probs = torch.log_softmax(self.policy(self._features(obs)), -1)
            chosen = log_probs.gather(-1, actions[:, None]).squeeze(-1)
            loss = -(chosen * rewards * mask).sum() / mask.sum().clamp(min=1)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(float(loss))
            self.updates += 1
        time.sleep(self.config.update_sleep_s)
        return {"loss": float(np.mean(losses)), "updates": float(self.updates)}

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "torch_rng": self.torch_rng.get_state(), "np_rng": self.np_rng.bit_generator.state,
                "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.torch_rng.set_state(state["torch_rng"])
        self.np_rng.bit_generator.state = state["np_rng"]
        self.updates = state["updates"]
