"""Catch: rules, exact random/optimal returns (checked by Monte Carlo), observation format, state."""
from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from env_checks import assert_plain, rollout

from harness.envs import VectorEnv, make_env, num_actions
from harness.envs.catch import CatchEnv, optimal_return, random_return
from harness.envs.protocol import ObservationSpec, SanityProtocol

PROTOCOL = SanityProtocol(grid=8, balls=3)


def run_episode(env: CatchEnv, policy, rng: np.random.Generator) -> tuple[float, int, list]:
    obs, info = env.reset()
    total, steps, trace = 0.0, 0, []
    while True:
        action = policy(env, rng)
        obs, reward, terminated, truncated, info = env.step(action)
        total += info["raw_reward"]
        steps += 1
        trace.append((obs.copy(), reward, terminated, truncated))
        if terminated or truncated:
            return total, steps, trace


def random_policy(env, rng):
    return int(rng.integers(3))


def greedy_policy(env, rng):
    """Move towards the ball's column (optimal: the paddle always has enough moves)."""
    state = env.get_state()
    diff = state["ball_col"] - state["paddle"]
    return 0 if diff == 0 else (1 if diff < 0 else 2)


def test_closed_form_returns():
    for grid, balls in [(8, 3), (5, 1), (4, 2), (10, 4)]:
        protocol = SanityProtocol(grid=grid, size=grid * 4, balls=balls)
        assert random_return(protocol) == pytest.approx(balls * (2 / grid - 1), abs=1e-12)
        assert optimal_return(protocol) == pytest.approx(balls, abs=1e-12)
    assert random_return(PROTOCOL) == pytest.approx(-2.25)


def test_random_return_matches_monte_carlo():
    protocol = SanityProtocol(grid=4, balls=2)  # P(catch)=1/4: a well-resolved MC estimate
    env = CatchEnv(protocol, seed=0)
    rng = np.random.default_rng(1)
    returns = [run_episode(env, random_policy, rng)[0] for _ in range(2000)]
    stderr = np.std(returns) / np.sqrt(len(returns))
    assert abs(np.mean(returns) - random_return(protocol)) < 4 * stderr


@pytest.mark.parametrize("timing, length", [("after_landing", 24), ("landing", 23)])
def test_greedy_policy_reaches_optimal_and_episode_length(timing, length):
    protocol = dataclasses.replace(PROTOCOL, reward_timing=timing)
    env = CatchEnv(protocol, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(20):
        total, steps, trace = run_episode(env, greedy_policy, rng)
        assert total == optimal_return(protocol) == 3
        assert steps == length
        assert [t[2] for t in trace].count(True) == 1 and trace[-1][2]
        assert not any(t[3] for t in trace)


@pytest.mark.parametrize("timing, paid_at", [("after_landing", [7, 15, 23]), ("landing", [6, 14, 22])])
def test_rewards_only_for_landings_and_paddle_clamped(timing, paid_at):
    env = CatchEnv(dataclasses.replace(PROTOCOL, reward_timing=timing), seed=5)
    env.reset()
    rewards, terminated = [], False
    while not terminated:
        _, reward, terminated, _, _ = env.step(1)  # always left: paddle ends at column 0
        rewards.append(reward)
        assert env.get_state()["paddle"] >= 0
    assert len(rewards) == paid_at[-1] + 1
    nonzero = [i for i, r in enumerate(rewards) if r != 0]
    assert nonzero == paid_at
    assert env.get_state()["paddle"] == 0
    with pytest.raises(RuntimeError):
        env.step(0)


def test_after_landing_reward_is_a_function_of_the_landing_frame():
    """Caught iff the landing frame shows no amber (the ball is drawn over the paddle); paid one step later."""
    protocol = dataclasses.replace(PROTOCOL, reward_timing="after_landing")
    env = CatchEnv(protocol, seed=4)
    rng = np.random.default_rng(0)
    paid = {1.0: 0, -1.0: 0}
    for _ in range(40):
        obs, _ = env.reset()
        terminated = False
        while not terminated:
            landed = env.get_state()["ball_row"] == protocol.grid - 1
            amber = bool(((obs[0] == 255) & (obs[1] == 200)).any())
            obs, reward, terminated, _, _ = env.step(int(rng.integers(3)) if rng.random() < 0.5
                                                     else greedy_policy(env, rng))
            assert reward == ((-1.0 if amber else 1.0) if landed else 0.0)
            paid[reward] = paid.get(reward, 0) + 1
    assert paid[1.0] > 10 and paid[-1.0] > 10


def test_observation_shows_ball_and_paddle():
    env = CatchEnv(PROTOCOL, seed=0)
    obs, info = env.reset()
    assert obs.shape == (3, 64, 64) and obs.dtype == np.uint8
    state = env.get_state()
    cell = 64 // 8
    ball = obs[:, 0:cell, state["ball_col"] * cell:(state["ball_col"] + 1) * cell]
    paddle = obs[:, 7 * cell:8 * cell, 4 * cell:5 * cell]
    assert (ball == 255).all() and (paddle[0] == 255).all() and (paddle[1] == 200).all() and (paddle[2] == 0).all()
    assert obs.reshape(3, -1).max(0).astype(bool).sum() == 2 * cell * cell
    assert info["game_over"] is False and info["raw_reward"] == 0.0


def test_grayscale_stack_and_reward_transform():
    protocol = dataclasses.replace(PROTOCOL, reward_transform="tanh",
                                   obs=ObservationSpec(size=32, grayscale=True, frame_stack=4))
    env = make_env(protocol, seed=0)
    obs, _ = env.reset()
    assert obs.shape == (4, 32, 32)
    assert all((obs[i] == obs[0]).all() for i in range(4))
    obs2, *_ = env.step(0)
    assert (obs2[:3] == obs[1:]).all() and not (obs2[3] == obs[3]).all()
    for _ in range(6):  # the 7th step lands the first ball
        _, reward, _, _, info = env.step(0)
    assert info["raw_reward"] in (1.0, -1.0) and reward == pytest.approx(np.tanh(info["raw_reward"]))


def test_seeding_and_state_roundtrip():
    a, b, c = CatchEnv(PROTOCOL, 7), CatchEnv(PROTOCOL, 7), CatchEnv(PROTOCOL, 8)
    cols = lambda env: [env.reset()[0].tobytes() for _ in range(10)]
    assert cols(a) == cols(b) and cols(a) != cols(c)

    env = CatchEnv(PROTOCOL, seed=11)
    env.reset()
    rng = np.random.default_rng(2)
    for _ in range(5):
        env.step(int(rng.integers(3)))
    snapshot = env.get_state()
    actions = rng.integers(3, size=60)

    expected = rollout(env, actions)
    fresh = CatchEnv(PROTOCOL, seed=999)
    fresh.set_state(pickle.loads(pickle.dumps(snapshot)))
    assert_plain(snapshot)
    assert rollout(fresh, actions) == expected


def test_vector_env():
    vec = VectorEnv([make_env(PROTOCOL, seed=s) for s in range(3)])
    obs, infos = vec.reset_all([1, 2, 3])
    assert obs.shape == (3, 3, 64, 64) and len(infos) == 3
    assert num_actions(PROTOCOL) == 3
    for _ in range(7):  # the first ball lands (and is paid) in step 7
        obs, rewards, terminated, truncated, infos = vec.step([0, 1, 2])
    assert rewards.dtype == np.float32 and (np.abs(rewards) == 1).all() and not terminated.any()
    states = vec.get_state()
    after = vec.step([0, 0, 0])[0]
    vec.set_state(states)
    assert (vec.step([0, 0, 0])[0] == after).all()
    obs0, _ = vec.reset_one(0, seed=1)
    assert obs0.shape == (3, 64, 64)
