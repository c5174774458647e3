"""Episode replay shared by every component of an agent.

An episode with L steps holds L+1 uint8 observations obs[0..L] and, per step t < L, the action taken
at obs[t], the reward received, and the `terminated` / `truncated` flags of that transition (so the
last step of a finished episode has one of them set, and obs[L] is the final observation).

Episode ids are given in the order episodes *start*, so an ongoing episode already has its id and
can be sampled (IRIS-style samplers read partial episodes). Finished episodes' frames live in one
append-only file on disk (`frames.u8`), read back through a memory map, so a 10M-frame Crafter run
does not have to fit in RAM; ongoing episodes are staged in RAM until they end. Per-step scalars
are small and stay in RAM. Sampling strategies are the agent's: this module only serves episodes
and zero-padded segments.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class GrowableArray:
    """A 1-D (or row-shaped) numpy array with amortised O(1) append (also used by agents' own views)."""

    def __init__(self, dtype: Any, row_shape: tuple[int, ...] = (), capacity: int = 1024):
        self._data = np.zeros((capacity, *row_shape), dtype=dtype)
        self.size = 0

    def append(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=self._data.dtype).reshape(-1, *self._data.shape[1:])
        needed = self.size + len(values)
        if needed > len(self._data):
            new = np.zeros((max(needed, 2 * len(self._data)), *self._data.shape[1:]), self._data.dtype)
            new[: self.size] = self._data[: self.size]
            self._data = new
        self._data[self.size : needed] = values
        self.size = needed

    def truncate(self, size: int) -> None:
        self.size = size

    @property
    def view(self) -> np.ndarray:
        return self._data[: self.size]


class _FrameFile:
    """Append-only uint8 frame storage: a file on disk, or RAM when `path` is None."""

    def __init__(self, path: Path | None, frame_shape: tuple[int, ...]):
        self.path = path
        self.frame_shape = frame_shape
        self.frame_bytes = int(np.prod(frame_shape))
        self.count = 0
        self._map: np.ndarray | None = None
        self._ram = GrowableArray(np.uint8, frame_shape) if path is None else None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)

    def open_at(self, count: int) -> None:
        """Resume at `count` committed frames (drops frames written after the last checkpoint)."""
        if self.path is not None:
            size = self.path.stat().st_size
            if size < count * self.frame_bytes:
                raise RuntimeError(f"{self.path}: holds {size // self.frame_bytes} frames, checkpoint expects {count}")
            os.truncate(self.path, count * self.frame_bytes)
        else:
            assert self._ram is not None and self._ram.size >= count
            self._ram.truncate(count)
        self.count = count
        self._map = None

    def append(self, frames: np.ndarray) -> int:
        """Appends frames, returns the index of the first."""
        first = self.count
        if self._ram is not None:
            self._ram.append(frames)
        else:
            assert self.path is not None
            with open(self.path, "r+b") as handle:
                handle.seek(first * self.frame_bytes)
                handle.write(np.ascontiguousarray(frames, dtype=np.uint8).tobytes())
        self.count += len(frames)
        return first

    def flush(self) -> None:
        if self.path is not None:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def read(self, start: int, stop: int) -> np.ndarray:
        if self._ram is not None:
            return self._ram.view[start:stop]
        if self._map is None or len(self._map) < stop:
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.count, *self.frame_shape))
        return self._map[start:stop]


@dataclass
class _Ongoing:
    episode_id: int
    frames: list[np.ndarray]
    actions: list[int]
    rewards: list[float]
    terminated: list[bool]
    truncated: list[bool]


@dataclass
class Segment:
    """A zero-padded window of one episode. `mask[t]` is True where obs[t] is a real frame.

    obs: [S, *obs_shape] uint8; actions/rewards/terminated/truncated: [S] aligned with obs, i.e. the
    step taken *from* obs[t] (zero where that step does not exist, e.g. at the final observation).
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    mask: np.ndarray  # observation is real
    step_mask: np.ndarray  # a step (action, reward, flags) exists at this position


class Replay:
    """Episodes of uint8 frames with actions, rewards, terminated and truncated flags."""

    def __init__(self, obs_shape: tuple[int, ...], num_envs: int = 1, directory: Path | None = None):
        self.obs_shape = tuple(obs_shape)
        self.num_envs = num_envs
        self.directory = directory
        self._frames = _FrameFile(directory / "frames.u8" if directory is not None else None, self.obs_shape)
        # Per finished-step scalars, flat in completion order.
        self._actions = GrowableArray(np.int64)
        self._rewards = GrowableArray(np.float32)
        self._terminated = GrowableArray(np.bool_)
        self._truncated = GrowableArray(np.bool_)
        # Per episode id: offsets into frames / steps (-1 while ongoing) and length in steps.
        self._ep_frame_start = GrowableArray(np.int64)
        self._ep_step_start = GrowableArray(np.int64)
        self._ep_length = GrowableArray(np.int64)
        self._ongoing: dict[int, _Ongoing] = {}  # env index -> its ongoing episode

    # ---- writing ------------------------------------------------------------------------
    def start_episode(self, env_index: int, obs: np.ndarray) -> int:
        """Opens a new episode for an environment at its first observation; returns its id."""
        if env_index in self._ongoing:
            raise RuntimeError(f"env {env_index} already has an ongoing episode")
        episode_id = self._ep_length.size
        self._ep_frame_start.append([-1])
        self._ep_step_start.append([-1])
        self._ep_length.append([0])
        self._ongoing[env_index] = _Ongoing(episode_id, [np.array(obs, dtype=np.uint8)], [], [], [], [])
        return episode_id

    def add_step(self, env_index: int, action: int, reward: float, terminated: bool, truncated: bool,
                 next_obs: np.ndarray) -> None:
        """Appends one transition; the episode is closed when terminated or truncated."""
        episode = self._ongoing[env_index]
        episode.actions.append(int(action))
        episode.rewards.append(float(reward))
        episode.terminated.append(bool(terminated))
        episode.truncated.append(bool(truncated))
        episode.frames.append(np.array(next_obs, dtype=np.uint8))
        self._ep_length.view[episode.episode_id] = len(episode.actions)
        if terminated or truncated:
            self._close(env_index)

    def _close(self, env_index: int) -> None:
        episode = self._ongoing.pop(env_index)
        frame_start = self._frames.append(np.stack(episode.frames))
        step_start = self._actions.size
        self._actions.append(episode.actions)
        self._rewards.append(episode.rewards)
        self._terminated.append(episode.terminated)
        self._truncated.append(episode.truncated)
        self._ep_frame_start.view[episode.episode_id] = frame_start
        self._ep_step_start.view[episode.episode_id] = step_start

    # ---- reading ------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        return self._ep_length.size

    @property
    def num_steps(self) -> int:
        return int(self._ep_length.view.sum())

    def episode_lengths(self) -> np.ndarray:
        """Steps per episode id (ongoing episodes: steps so far)."""
        return self._ep_length.view.copy()

    def is_finished(self, episode_id: int) -> bool:
        return bool(self._ep_frame_start.view[episode_id] >= 0)

    def ongoing_episode(self, env_index: int) -> int | None:
        ongoing = self._ongoing.get(env_index)
        return None if ongoing is None else ongoing.episode_id

    def _ongoing_by_id(self, episode_id: int) -> _Ongoing:
        for episode in self._ongoing.values():
            if episode.episode_id == episode_id:
                return episode
        raise KeyError(episode_id)

    def observations(self, episode_id: int, start: int, stop: int) -> np.ndarray:
        """obs[start:stop] of an episode (0 <= start <= stop <= length + 1)."""
        frame_start = int(self._ep_frame_start.view[episode_id])
        if frame_start >= 0:
            return self._frames.read(frame_start + start, frame_start + stop)
        frames = self._ongoing_by_id(episode_id).frames[start:stop]
        return np.stack(frames) if frames else np.zeros((0, *self.obs_shape), np.uint8)

    def steps(self, episode_id: int, start: int, stop: int) -> dict[str, np.ndarray]:
        """actions, rewards, terminated, truncated of steps [start, stop) of an episode."""
        step_start = int(self._ep_step_start.view[episode_id])
        if step_start >= 0:
            a, b = step_start + start, step_start + stop
            return {"actions": self._actions.view[a:b], "rewards": self._rewards.view[a:b],
                    "terminated": self._terminated.view[a:b], "truncated": self._truncated.view[a:b]}
        episode = self._ongoing_by_id(episode_id)
        return {"actions": np.array(episode.actions[start:stop], np.int64),
                "rewards": np.array(episode.rewards[start:stop], np.float32),
                "terminated": np.array(episode.terminated[start:stop], np.bool_),
                "truncated": np.array(episode.truncated[start:stop], np.bool_)}

    def segment(self, episode_id: int, start: int, length: int) -> Segment:
        """Observations start..start+length-1 with aligned steps; out-of-range positions are zeros.

        `start` may be negative (left padding) and the window may run past the final observation
        (right padding), as the IRIS-family samplers need.
        """
        num_steps = int(self._ep_length.view[episode_id])
        obs = np.zeros((length, *self.obs_shape), np.uint8)
        actions = np.zeros(length, np.int64)
        rewards = np.zeros(length, np.float32)
        terminated = np.zeros(length, np.bool_)
        truncated = np.zeros(length, np.bool_)
        lo, hi = max(start, 0), min(start + length, num_steps + 1)
        mask = np.zeros(length, np.bool_)
        step_mask = np.zeros(length, np.bool_)
        if hi > lo:
            obs[lo - start : hi - start] = self.observations(episode_id, lo, hi)
            mask[lo - start : hi - start] = True
        step_hi = min(start + length, num_steps)
        if step_hi > lo:
            values = self.steps(episode_id, lo, step_hi)
            window = slice(lo - start, step_hi - start)
            actions[window] = values["actions"]
            rewards[window] = values["rewards"]
            terminated[window] = values["terminated"]
            truncated[window] = values["truncated"]
            step_mask[window] = True
        return Segment(obs, actions, rewards, terminated, truncated, mask, step_mask)

    # ---- checkpointing --------------------------------------------------------------------
    def flush(self) -> None:
        """Makes finished episodes' frames durable (call before writing a checkpoint)."""
        self._frames.flush()

    def state_dict(self) -> dict[str, Any]:
        """Small arrays and the staged ongoing episodes; frames on disk are referenced by count."""
        return {
            "frame_count": self._frames.count,
            "frames_in_state": None if self.directory is not None else self._frames.read(0, self._frames.count).copy(),
            "actions": self._actions.view.copy(), "rewards": self._rewards.view.copy(),
            "terminated": self._terminated.view.copy(), "truncated": self._truncated.view.copy(),
            "ep_frame_start": self._ep_frame_start.view.copy(), "ep_step_start": self._ep_step_start.view.copy(),
            "ep_length": self._ep_length.view.copy(),
            "ongoing": {env: {"episode_id": e.episode_id, "frames": np.stack(e.frames), "actions": list(e.actions),
                              "rewards": list(e.rewards), "terminated": list(e.terminated),
                              "truncated": list(e.truncated)} for env, e in self._ongoing.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["frames_in_state"] is not None:
            self._frames = _FrameFile(None, self.obs_shape)
            self._frames.append(state["frames_in_state"])
        self._frames.open_at(int(state["frame_count"]))
        for name in ("actions", "rewards", "terminated", "truncated", "ep_frame_start", "ep_step_start", "ep_length"):
            array: GrowableArray = getattr(self, "_" + name)
            array.truncate(0)
            array.append(state[name])
        self._ongoing = {
            int(env): _Ongoing(int(e["episode_id"]), list(e["frames"]), list(e["actions"]), list(e["rewards"]),
                               list(e["terminated"]), list(e["truncated"]))
            for env, e in state["ongoing"].items()
        }
