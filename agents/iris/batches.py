"""IRIS replay sampling (spec §3): a uniformly random episode, then a uniform position in it.

Only positions with a stored step count as IRIS data (an IRIS episode holds obs_t with its action;
the harness replay's extra final observation obs[L] of an episode is never sampled as a target).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.replay import Replay


@dataclass
class SegmentBatch:
    obs: np.ndarray  # [B, T, C, H, W] uint8, zero where padded
    actions: np.ndarray  # [B, T] int64
    rewards: np.ndarray  # [B, T] float32 (raw)
    ends: np.ndarray  # [B, T] bool: terminated or truncated (IRIS stores both as end = 1)
    valid: np.ndarray  # [B, T] bool: a real step exists here


def _episodes(replay: Replay, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    lengths = replay.episode_lengths()
    candidates = np.flatnonzero(lengths > 0)
    if len(candidates) == 0:
        raise RuntimeError("IRIS: the replay holds no step to sample from")
    chosen = candidates[rng.integers(0, len(candidates), size=batch_size)]
    return chosen, lengths[chosen]


def sample_frames(replay: Replay, rng: np.random.Generator, batch_size: int) -> np.ndarray:
    """Tokenizer batch: one uniform frame of a uniform episode each → [B, C, H, W] uint8."""
    episodes, lengths = _episodes(replay, rng, batch_size)
    starts = rng.integers(0, lengths)
    return np.stack([replay.observations(int(e), int(s), int(s) + 1)[0] for e, s in zip(episodes, starts)])


def _segments(replay: Replay, episodes: np.ndarray, starts: np.ndarray, length: int) -> SegmentBatch:
    parts = [replay.segment(int(e), int(s), length) for e, s in zip(episodes, starts)]
    return SegmentBatch(
        obs=np.stack([p.obs for p in parts]), actions=np.stack([p.actions for p in parts]),
        rewards=np.stack([p.rewards for p in parts]),
        ends=np.stack([p.terminated | p.truncated for p in parts]),
        valid=np.stack([p.step_mask for p in parts]))


def sample_world_model_segments(replay: Replay, rng: np.random.Generator, batch_size: int,
                                length: int) -> SegmentBatch:
    """Start s ~ U{0..len-1}, window [s, s+length), right-padded past the episode's last step."""
    episodes, lengths = _episodes(replay, rng, batch_size)
    return _segments(replay, episodes, rng.integers(0, lengths), length)


def sample_actor_critic_segments(replay: Replay, rng: np.random.Generator, batch_size: int,
                                 length: int) -> SegmentBatch:
    """Stop e ~ U{1..len}, window [e-length, e), left-padded: the last position is always a real step."""
    episodes, lengths = _episodes(replay, rng, batch_size)
    stops = rng.integers(1, lengths + 1)
    return _segments(replay, episodes, stops - length, length)
