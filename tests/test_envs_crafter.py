"""Crafter adapter: termination vs truncation, info, seeding, exact state restore, the score formula."""
from __future__ import annotations

import math
import pickle

import crafter
import numpy as np
import pytest

from env_checks import assert_plain, rollout

from harness.envs import make_env, num_actions
from harness.envs.crafter import ACHIEVEMENTS, CrafterEnv, crafter_score
from harness.envs.protocol import CrafterProtocol, ObservationSpec

SHORT = CrafterProtocol(length=40)


def achievements_and_inventory(info: dict) -> tuple:
    return info.get("achievements"), info.get("inventory")


def test_achievement_list_matches_crafter():
    assert list(ACHIEVEMENTS) == list(crafter.constants.achievements) and len(ACHIEVEMENTS) == 22
    assert num_actions(SHORT) == 17


def test_length_limit_is_truncation():
    env = make_env(SHORT, seed=0)
    obs, info = env.reset()
    assert obs.shape == (3, 64, 64) and obs.dtype == np.uint8
    assert set(info["achievements"]) == set(ACHIEVEMENTS)
    rng = np.random.default_rng(0)
    for step in range(1, SHORT.length + 1):
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(17)))
        assert set(info["achievements"]) == set(ACHIEVEMENTS) and info["frames"] == step
        assert reward == info["raw_reward"]
        if step < SHORT.length:
            assert not (terminated or truncated or info["game_over"])
    assert truncated and not terminated and info["game_over"] and info["discount"] == 1.0
    with pytest.raises(RuntimeError):
        env.step(0)


def test_death_is_termination():
    env = CrafterEnv(SHORT, seed=1)
    env.reset()
    env._env._player.health = 0  # kill the player: crafter then reports discount 0
    _, reward, terminated, truncated, info = env.step(0)
    assert terminated and not truncated and info["discount"] == 0.0 and info["game_over"]
    assert reward < 0


def test_achievements_are_copies():
    env = CrafterEnv(SHORT, seed=2)
    _, info = env.reset()
    info["achievements"]["collect_wood"] = 99
    _, _, _, _, info2 = env.step(0)
    assert info2["achievements"]["collect_wood"] == 0


def test_seeding_reproducible():
    def frames(seed):
        env = CrafterEnv(SHORT, seed=seed)
        out = [env.reset()[0]]
        for a in [1, 2, 3, 4, 5, 0, 5, 3]:
            out.append(env.step(a)[0])
        out.append(env.reset()[0])  # the second episode's world is seeded too
        return np.stack(out)

    assert (frames(5) == frames(5)).all()
    assert not (frames(5) == frames(6)).all()


def test_state_roundtrip_into_fresh_env():
    protocol = CrafterProtocol(length=60, obs=ObservationSpec(grayscale=True, frame_stack=2), reward_transform="sign")
    env = CrafterEnv(protocol, seed=3)
    env.reset()
    rng = np.random.default_rng(4)
    for _ in range(20):
        env.step(int(rng.integers(17)))
    snapshot = env.get_state()
    actions = rng.integers(17, size=80)

    expected = rollout(env, actions, achievements_and_inventory)
    fresh = CrafterEnv(protocol, seed=123)
    fresh.set_state(pickle.loads(pickle.dumps(snapshot)))
    assert_plain(snapshot)
    assert rollout(fresh, actions, achievements_and_inventory) == expected
    assert fresh.observation_space.shape == (2, 64, 64)


def test_crafter_score_known_values():
    assert crafter_score([0.0] * 22) == pytest.approx(0.0)
    assert crafter_score([100.0] * 22) == pytest.approx(100.0)
    assert crafter_score({name: 50.0 for name in ACHIEVEMENTS}) == pytest.approx(50.0)
    rates = [100.0] * 11 + [0.0] * 11
    assert crafter_score(rates) == pytest.approx(math.sqrt(101) - 1)
    with pytest.raises(KeyError, match="missing"):
        crafter_score({"collect_wood": 10.0})
    with pytest.raises(ValueError, match="22"):
        crafter_score([1.0, 2.0])
    with pytest.raises(ValueError, match="percent"):
        crafter_score([0.5] * 21 + [101.0])
