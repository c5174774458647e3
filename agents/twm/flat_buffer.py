"""TWM's flat replay view over the harness Replay and the visit-balanced sampler (spec §3).

Flat order = episodes in id order: flat entry i holds obs[i] and the step (action, tanh reward,
terminated, truncated) taken from it; when step i ends an episode, obs[i+1] is the next episode's
first observation (the true final observation is dropped, as in the official buffer). The newest
observation is kept as the "+1" entry `obs[size]`. The view is derived data, rebuilt from the
Replay after a resume; only the visit counters are agent state.
"""
from __future__ import annotations

import numpy as np
import torch

from harness.replay import GrowableArray, Replay


class FlatBuffer:
    def __init__(self, obs_shape: tuple[int, ...]):
        self.obs_shape = tuple(obs_shape)
        self._obs = GrowableArray(np.uint8, self.obs_shape)
        self._actions = GrowableArray(np.int64)
        self._rewards = GrowableArray(np.float32)
        self._terminated = GrowableArray(np.bool_)
        self._truncated = GrowableArray(np.bool_)
        self._tail = np.zeros(self.obs_shape, np.uint8)  # obs[size]
        self._episode = 0  # first episode id not completely copied
        self._episode_steps = 0  # steps of that episode already copied

    @property
    def size(self) -> int:
        return self._actions.size

    def sync(self, replay: Replay) -> None:
        """Appends what the Replay gained since the last call (one collection env, episodes in order)."""
        if tuple(replay.obs_shape) != self.obs_shape:
            raise ValueError(f"FlatBuffer: replay obs shape {replay.obs_shape} != {self.obs_shape}")
        lengths = replay.episode_lengths()
        for episode in range(self._episode, len(lengths)):
            finished = replay.is_finished(episode)
            if not finished and episode < len(lengths) - 1:
                raise ValueError("TWM's flat buffer needs one collection env: episode "
                                 f"{episode} is still ongoing while episode {episode + 1} exists")
            start, stop = self._episode_steps, int(lengths[episode])
            if stop > start:
                self._obs.append(replay.observations(episode, start, stop))
                steps = replay.steps(episode, start, stop)
                self._actions.append(steps["actions"])
                self._rewards.append(steps["rewards"])
                self._terminated.append(steps["terminated"])
                self._truncated.append(steps["truncated"])
            self._tail = np.array(replay.observations(episode, stop, stop + 1)[0])
            if finished:
                self._episode, self._episode_steps = episode + 1, 0
            else:
                self._episode_steps = stop

    # ---- reads --------------------------------------------------------------------------------
    def obs(self, index: np.ndarray) -> np.ndarray:
        """Observations at flat indices (index == size gives the newest observation)."""
        index = np.asarray(index)
        out = self._obs.view[np.minimum(index, max(self.size - 1, 0))]
        out[index == self.size] = self._tail
        return out

    def window(self, starts: np.ndarray, length: int) -> dict[str, np.ndarray]:
        """Windows of `length` steps from each start, plus one context step before and the next obs.

        obs [B, length+2]; actions/rewards/terminated/truncated [B, length+1]. The context index is
        clamped to 0; at the buffer start the context action and reward are 0 (official buffer).
        """
        starts = np.asarray(starts, np.int64)
        steps = starts[:, None] + np.arange(-1, length)[None, :]
        before_start = steps < 0
        steps = np.maximum(steps, 0)
        obs_index = np.concatenate([steps, (starts + length)[:, None]], axis=1)
        if obs_index.max() > self.size or steps.max() >= self.size:
            raise IndexError(f"FlatBuffer.window: windows reach index {int(obs_index.max())}, size {self.size}")
        actions = self._actions.view[steps].copy()
        rewards = self._rewards.view[steps].copy()
        actions[before_start] = 0
        rewards[before_start] = 0.0
        return {"obs": self.obs(obs_index), "actions": actions, "rewards": rewards,
                "terminated": self._terminated.view[steps], "truncated": self._truncated.view[steps]}

    def steps(self, start: int, stop: int) -> dict[str, np.ndarray]:
        return {"actions": self._actions.view[start:stop], "rewards": self._rewards.view[start:stop],
                "terminated": self._terminated.view[start:stop], "truncated": self._truncated.view[start:stop]}


class BalancedSampler:
    """Window starts drawn without replacement with p_i = softmax(-visits_i / τ) (spec §3)."""

    def __init__(self, temperature: float):
        self.temperature = temperature
        self.visits = torch.zeros(0, dtype=torch.long)

    def probabilities(self, num_starts: int) -> torch.Tensor:
        self._grow(num_starts)
        if self.temperature == float("inf"):
            return torch.full((num_starts,), 1.0 / num_starts)
        return torch.softmax(self.visits[:num_starts].double() / -self.temperature, 0)

    def sample(self, buffer_size: int, batch_size: int, sequence_length: int,
               generator: torch.Generator) -> np.ndarray:
        num_starts = buffer_size - sequence_length + 1
        if batch_size * sequence_length > num_starts:
            raise ValueError(f"BalancedSampler: {buffer_size} steps cannot give {batch_size} windows of "
                             f"{sequence_length} (needs batch*length <= size - length + 1)")
        starts = torch.multinomial(self.probabilities(num_starts), batch_size, replacement=False, generator=generator)
        self.visits[starts] += 1
        return starts.numpy()

    def _grow(self, n: int) -> None:
        if n > len(self.visits):
            self.visits = torch.cat([self.visits, torch.zeros(n - len(self.visits), dtype=torch.long)])

    def state_dict(self) -> dict:
        return {"visits": self.visits.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.visits = state["visits"].clone()
