"""Count-based episode sampling (spec §3): probabilities, windows, frozen counts, resumable state."""
import numpy as np
import pytest

from agents.delta_iris.sampler import CountBasedSampler, load_batch
from harness.replay import Replay


def make_replay(lengths, ongoing=0):
    replay = Replay((3, 64, 64), 1)
    value = 0
    for length in [*lengths, ongoing]:
        replay.start_episode(0, np.full((3, 64, 64), value % 256, np.uint8))
        for t in range(length):
            value += 1
            done = t == length - 1 and length in lengths and replay.num_episodes <= len(lengths)
            replay.add_step(0, t % 3, float(t), done, False, np.full((3, 64, 64), value % 256, np.uint8))
    return replay


def test_probabilities_are_inverse_counts_to_the_power_alpha():
    sampler = CountBasedSampler(0)
    lengths = np.array([5, 5, 5, 0])
    sampler.probabilities("tokenizer", lengths, 5.0)
    sampler.counts["tokenizer"][:3] = [0, 1, 3]
    p = sampler.probabilities("tokenizer", lengths, 5.0)
    expected = np.array([1.0, 0.5 ** 5, 0.25 ** 5, 0.0])
    np.testing.assert_allclose(p, expected / expected.sum())
    # Components keep their own counters; alpha = 1 (Atari) is linear in 1 / (1 + n).
    p_world = sampler.probabilities("world_model", lengths, 1.0)
    np.testing.assert_allclose(p_world, [1 / 3, 1 / 3, 1 / 3, 0.0])


def test_windows_anchor_inside_the_episode():
    replay = make_replay([7, 3])
    sampler = CountBasedSampler(1)
    lengths = replay.episode_lengths()
    episodes, starts = sampler.sample("tokenizer", replay, 500, 5, 1.0, beyond_end=True)
    # The window [start, start + 5) holds a timestep t in [0, L - 1].
    assert np.all(starts <= lengths[episodes] - 1) and np.all(starts + 4 >= 0)
    assert starts.min() < 0 and (starts + 5 > lengths[episodes] + 1).any()  # both paddings happen
    episodes, starts = sampler.sample("actor_critic", replay, 500, 3, 1.0, beyond_end=False)
    stops = starts + 3
    assert np.all(stops <= lengths[episodes]) and np.all(stops >= 1)
    batch = load_batch(replay, episodes, starts, 3, "cpu", truncation_is_end=True)
    assert batch.mask[:, -1].all() and batch.step_mask[:, -1].all()  # the last frame is real and has a step


def test_counts_increment_only_when_told_and_state_round_trips():
    replay = make_replay([4, 4, 4])
    a, b = CountBasedSampler(3), CountBasedSampler(99)
    episodes, _ = a.sample("world_model", replay, 6, 4, 5.0, beyond_end=True)
    a.increment("world_model", episodes)
    assert a.counts["world_model"].sum() == 6 and a.counts["tokenizer"].sum() == 0
    b.load_state_dict(a.state_dict())
    first = a.sample("world_model", replay, 8, 4, 5.0, True)
    second = b.sample("world_model", replay, 8, 4, 5.0, True)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_fresh_episodes_dominate_with_alpha_5():
    replay = make_replay([4, 4])
    sampler = CountBasedSampler(0)
    sampler.probabilities("tokenizer", replay.episode_lengths(), 5.0)
    sampler.counts["tokenizer"][0] = 1  # episode 0 seen once, episode 1 never
    episodes, _ = sampler.sample("tokenizer", replay, 2000, 4, 5.0, True)
    share = np.mean(episodes == 1)
    assert share == pytest.approx(32 / 33, abs=0.02)


def test_empty_replay_is_a_clear_error():
    replay = Replay((3, 64, 64), 1)
    replay.start_episode(0, np.zeros((3, 64, 64), np.uint8))
    with pytest.raises(RuntimeError, match="no step"):
        CountBasedSampler(0).sample("tokenizer", replay, 2, 4, 1.0, True)
