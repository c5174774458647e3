"""Uniform sampling over valid segment positions of the replay (spec §3), and batch assembly.

An episode of L steps offers L - ctx positions p = 0..L-ctx-1 (a block/frame needs a step, so the
final observation of a finished episode is never a sample). The positions of all episodes are
shuffled and drawn without replacement; when exhausted they are reshuffled. The agent rebuilds
the sampler at the start of each epoch's training phase, so its only state is the agent's RNG.
"""
from __future__ import annotations

import numpy as np
import torch

from harness.replay import Replay


class PositionSampler:
    def __init__(self, replay: Replay, ctx: int, rng: np.random.Generator):
        lengths = replay.episode_lengths()
        counts = np.maximum(lengths - ctx, 0)
        self.episodes = np.repeat(np.arange(len(lengths)), counts)
        self.positions = np.concatenate([np.arange(c) for c in counts]) if counts.sum() else np.zeros(0, np.int64)
        self.rng = rng
        self._order = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.episodes)

    def draw(self, count: int) -> list[tuple[int, int]]:
        if len(self) == 0:
            raise ValueError("no valid sample position in the replay")
        picked: list[int] = []
        while len(picked) < count:
            if len(self._order) == 0:
                self._order = self.rng.permutation(len(self))
            take = min(count - len(picked), len(self._order))
            picked.extend(self._order[:take].tolist())
            self._order = self._order[take:]
        return [(int(self.episodes[i]), int(self.positions[i])) for i in picked]


def frames_batch(replay: Replay, picks: list[tuple[int, int]], device: str) -> torch.Tensor:
    """Single frames [B, 3, 64, 64] in [0, 1]."""
    frames = np.stack([replay.observations(ep, p, p + 1)[0] for ep, p in picks])
    return torch.from_numpy(frames).to(device).float().div_(255)


def segments_batch(replay: Replay, picks: list[tuple[int, int]], length: int, offset: int,
                   device: str) -> dict[str, torch.Tensor]:
    """Segments starting at p + offset (negative offset: left padding), as tensors on device.

    Keys: frames [B, S, 3, 64, 64] in [0, 1], actions, rewards, ends (terminated or truncated: the
    official code stores a time-limit end as an ordinary end), valid (a real frame with a step).
    """
    segments = [replay.segment(ep, p + offset, length) for ep, p in picks]

    def stack(name: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([getattr(s, name) for s in segments])).to(device)

    return {"frames": stack("obs").float().div_(255), "actions": stack("actions"), "rewards": stack("rewards"),
            "ends": stack("terminated") | stack("truncated"), "valid": stack("step_mask")}
