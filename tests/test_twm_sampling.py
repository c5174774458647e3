"""TWM's flat replay view over the harness Replay and its visit-balanced sampler."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.twm.flat_buffer import BalancedSampler, FlatBuffer
from harness.replay import Replay

torch.set_num_threads(1)
SHAPE = (1, 2, 2)


def frame(value: int) -> np.ndarray:
    return np.full(SHAPE, value, np.uint8)


def fill(replay: Replay, lengths: list[int], last_open: bool = False, start_value: int = 0) -> int:
    """Episodes of the given lengths; frame values count up, so obs identity is checkable."""
    value = start_value
    for index, length in enumerate(lengths):
        replay.start_episode(0, frame(value))
        for t in range(length):
            value += 1
            done = t == length - 1 and not (last_open and index == len(lengths) - 1)
            replay.add_step(0, action=value % 3, reward=float(value), terminated=done and index % 2 == 0,
                            truncated=done and index % 2 == 1, next_obs=frame(value))
        value += 1  # the final observation's value is skipped by the next episode's first frame
    return value


def test_flat_order_drops_final_observations_and_keeps_the_newest():
    replay = Replay(SHAPE)
    fill(replay, [3, 2, 4], last_open=True)
    buffer = FlatBuffer(SHAPE)
    buffer.sync(replay)
    assert buffer.size == 9
    obs = buffer.obs(np.arange(10))[:, 0, 0, 0]
    # episode 0: frames 0,1,2 (final 3 dropped); episode 1 starts at 4: 4,5 (final 6 dropped); episode 2: 7..11
    assert obs.tolist() == [0, 1, 2, 4, 5, 7, 8, 9, 10, 11]
    steps = buffer.steps(0, 9)
    assert steps["terminated"].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert steps["truncated"].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert steps["rewards"].tolist() == [1, 2, 3, 5, 6, 8, 9, 10, 11]
    # incremental sync continues the ongoing episode, then the next one
    replay.add_step(0, 0, 12.0, True, False, frame(12))
    replay.start_episode(0, frame(13))
    replay.add_step(0, 1, 14.0, False, False, frame(14))
    buffer.sync(replay)
    assert buffer.size == 11
    assert buffer.obs(np.arange(12))[:, 0, 0, 0].tolist()[-3:] == [11, 13, 14]


def test_windows_cross_episode_ends_with_context_and_next_observation():
    replay = Replay(SHAPE)
    fill(replay, [3, 5])
    buffer = FlatBuffer(SHAPE)
    buffer.sync(replay)
    window = buffer.window(np.array([0, 2]), length=3)
    assert window["obs"].shape == (2, 5, *SHAPE) and window["actions"].shape == (2, 4)
    # start 0: context clamps to index 0 with zero action/reward; next obs is flat index 3
    assert window["obs"][0, :, 0, 0, 0].tolist() == [0, 0, 1, 2, 4]
    assert window["actions"][0, 0] == 0 and window["rewards"][0].tolist() == [0, 1, 2, 3]
    # start 2 crosses the end of episode 0 (terminated at flat step 2)
    assert window["obs"][1, :, 0, 0, 0].tolist() == [1, 2, 4, 5, 6]
    assert window["terminated"][1].tolist() == [False, True, False, False]
    with pytest.raises(IndexError):
        buffer.window(np.array([6]), length=3)


def test_multiple_ongoing_episodes_are_rejected():
    replay = Replay(SHAPE, num_envs=2)
    replay.start_episode(0, frame(0))
    replay.start_episode(1, frame(1))
    replay.add_step(1, 0, 0.0, False, False, frame(2))
    with pytest.raises(ValueError, match="one collection env"):
        FlatBuffer(SHAPE).sync(replay)


def test_balanced_sampling_matches_softmax_law():
    sampler = BalancedSampler(temperature=20.0)
    visits = torch.tensor([0, 10, 20, 40, 80, 0, 5, 60])
    sampler._grow(len(visits))
    sampler.visits[:] = visits
    expected = torch.softmax(-visits.double() / 20.0, 0)
    assert torch.allclose(sampler.probabilities(8), expected)
    # single draws follow the law; restore the counters after each draw to keep the law fixed
    generator = torch.Generator().manual_seed(0)
    draws = 6_000
    counts = np.zeros(8)
    for _ in range(draws):
        start = sampler.sample(buffer_size=8, batch_size=1, sequence_length=1, generator=generator)[0]
        counts[start] += 1
        sampler.visits[:] = visits
    frequency = counts / draws
    stderr = np.sqrt(expected.numpy() * (1 - expected.numpy()) / draws)
    assert np.all(np.abs(frequency - expected.numpy()) < 5 * stderr + 1e-4)


def test_balanced_sampler_draws_distinct_starts_and_counts_visits():
    sampler = BalancedSampler(temperature=20.0)
    generator = torch.Generator().manual_seed(1)
    starts = sampler.sample(buffer_size=115, batch_size=6, sequence_length=16, generator=generator)
    assert len(set(starts.tolist())) == 6 and starts.max() <= 115 - 16
    assert sampler.visits.sum() == 6 and torch.all(sampler.visits[torch.as_tensor(starts)] == 1)
    # visited starts become less likely than fresh ones, all with the softmax weights
    probs = sampler.probabilities(100)
    assert torch.allclose(probs[torch.as_tensor(starts)], probs.max() * np.exp(-1 / 20.0))
    with pytest.raises(ValueError, match="cannot give"):
        sampler.sample(buffer_size=40, batch_size=3, sequence_length=16, generator=generator)


def test_balanced_sampling_spreads_draws_compared_with_uniform():
    """Scaled-down version of spec §12.1: τ-balanced sampling moves draws towards newer entries."""
    def first_half_share(temperature: float) -> float:
        sampler = BalancedSampler(temperature)
        generator = torch.Generator().manual_seed(0)
        size, counter, total = 200, 0.0, np.zeros(1000)
        while size < 1000:
            size += 1
            counter += 1
            while counter >= 0.76:
                counter -= 0.76
                starts = sampler.sample(size, 4, 4, generator)
                np.add.at(total, starts, 1)
        return total[:500].sum() / total.sum()

    uniform, balanced = first_half_share(float("inf")), first_half_share(2.0)
    assert uniform > 0.75 and balanced < uniform - 0.1
