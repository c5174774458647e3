"""Atari protocol env, checked frame by frame against a bare ALE driven by hand."""
from __future__ import annotations

import dataclasses
import math
import pickle

import ale_py
import cv2
import numpy as np
import pytest
from ale_py import roms
from PIL import Image

from env_checks import assert_plain, rollout

from harness.envs import VectorEnv, env_names, make_env, num_actions
from harness.envs.atari import AtariEnv
from harness.envs.protocol import ATARI_EVAL, ATARI_TRAIN_DEFAULTS, AtariProtocol, ObservationSpec

IRIS_TRAIN = dict(ATARI_TRAIN_DEFAULTS)  # life loss terminal, 1..30 raw no-op frames, 20k frames
TWM_OBS = ObservationSpec(grayscale=True, frame_stack=4, resize_before_pool=False, interpolation="area")
TWM_TRAIN = dict(noop_min=1, noop_max=30, noop_unit="step", fire_on_reset=True, fire_after_life_loss=True,
                 life_loss_terminal=True, time_limit_scope="life", max_frames=108_000, reward_transform="tanh")


class BareALE:
    """The reference: raw ALE frames, resized/pooled by hand as IRIS (PIL) or TWM (cv2) did."""

    def __init__(self, game: str, seed: int, grayscale: bool = False):
        self.ale = ale_py.ALEInterface()
        self.ale.setLoggerMode(ale_py.LoggerMode.Error)
        self.ale.setInt("random_seed", seed)
        self.ale.setFloat("repeat_action_probability", 0.0)
        self.ale.loadROM(roms.get_rom_path({"Breakout": "breakout", "Pong": "pong"}[game]))
        self.actions = self.ale.getMinimalActionSet()
        self.grayscale = grayscale
        self.ale.reset_game()

    def screen(self):
        return self.ale.getScreenGrayscale() if self.grayscale else self.ale.getScreenRGB()

    def skip(self, action: int, frames: int = 4):
        reward, screens = 0, []
        for _ in range(frames):
            reward += self.ale.act(self.actions[action])
            screens.append(self.screen())
            if self.ale.game_over():
                break
        return reward, screens


def pil64(frame):
    return np.asarray(Image.fromarray(frame).resize((64, 64), Image.BILINEAR))


def iris_pool(screens):
    return np.maximum(pil64(screens[-2]), pil64(screens[-1]))


def twm_pool(screens):
    return cv2.resize(np.maximum(screens[-2], screens[-1]), (64, 64), interpolation=cv2.INTER_AREA)


def rgb_hwc(obs):
    return obs.transpose(1, 2, 0)


@pytest.mark.parametrize("game", ["Breakout", "Pong"])
def test_iris_frames_match_bare_ale(game):
    env = AtariEnv(AtariProtocol(game=game, **IRIS_TRAIN), seed=7)
    obs, info = env.reset()
    assert 1 <= info["noops"] <= 30 and info["frames"] == info["noops"]
    bare = BareALE(game, seed=7)
    for _ in range(info["noops"]):
        bare.ale.act(bare.actions[0])
    assert (rgb_hwc(obs) == pil64(bare.screen())).all()
    rng = np.random.default_rng(0)
    life_losses = rewards_seen = 0
    for _ in range(400):
        action = int(rng.integers(env.action_space.n))
        obs, reward, terminated, truncated, info = env.step(action)
        raw, screens = bare.skip(action)
        assert info["raw_reward"] == reward == raw and not truncated
        assert (rgb_hwc(obs) == iris_pool(screens)).all()
        assert info["frames"] == bare.ale.getEpisodeFrameNumber() and info["lives"] == bare.ale.lives()
        rewards_seen += raw != 0
        if terminated and info["game_over"]:
            break
        if terminated:
            assert info["life_loss"] and info["lives"] > 0
            life_losses += 1
            obs, info = env.reset()  # exactly one NOOP agent step, emulator not reset
            _, screens = bare.skip(0)
            assert (rgb_hwc(obs) == iris_pool(screens)).all()
            assert info["frames"] == bare.ale.getEpisodeFrameNumber()
    assert life_losses >= 3 if game == "Breakout" else rewards_seen >= 3


def test_twm_grayscale_stack_and_fire_match_bare_ale():
    protocol = AtariProtocol(game="Breakout", **{**TWM_TRAIN, "noop_max": 3}, obs=TWM_OBS)
    env = AtariEnv(protocol, seed=3)
    obs, info = env.reset()
    assert obs.shape == (4, 64, 64) and env.has_fire
    bare = BareALE("Breakout", seed=3, grayscale=True)
    bare.skip(1), bare.skip(2)  # FIRE, then action 2, as full steps
    for _ in range(info["noops"]):
        _, screens = bare.skip(0)  # no-ops after the FIRE presses are whole agent steps
    assert all((obs[i] == twm_pool(screens)).all() for i in range(4))
    assert info["frames"] == 8 + 4 * info["noops"]
    history = [twm_pool(screens)] * 4
    rng = np.random.default_rng(1)
    fire_frames = 0
    for _ in range(150):
        action = int(rng.integers(4))
        obs, reward, terminated, truncated, info = env.step(action)
        raw, screens = bare.skip(action)
        if info["life_loss"] and not info["game_over"]:
            extra, screens = bare.skip(1)  # FIRE inside the same agent step
            raw += extra
            fire_frames += 4
        history = history[1:] + [twm_pool(screens)]
        assert (obs == np.stack(history)).all()
        assert info["raw_reward"] == raw and reward == pytest.approx(math.tanh(raw))
        assert info["frames"] == bare.ale.getEpisodeFrameNumber()
        if terminated:
            obs, info = env.reset()
            _, screens = bare.skip(0)
            history = [twm_pool(screens)] * 4
            assert (obs == np.stack(history)).all()
    assert fire_frames >= 8


def test_life_loss_keeps_playing_then_real_reset_after_game_over():
    env = AtariEnv(AtariProtocol(game="Breakout", **IRIS_TRAIN), seed=1)
    obs, info = env.reset()
    lives, frames, episodes = info["lives"], info["frames"], 0
    assert lives == 5
    while True:
        obs, _, terminated, truncated, info = env.step(1)  # FIRE: launch the ball, then lose it
        assert not truncated
        if terminated:
            episodes += 1
            if info["game_over"]:
                break
            assert info["lives"] == lives - 1 and info["frames"] > frames
            lives, frames = info["lives"], info["frames"]
            obs, info = env.reset()
            assert info["frames"] == frames + 4 and info["lives"] == lives and info["noops"] == 0
            frames = info["frames"]
    assert episodes == 5 and info["lives"] == 0
    obs, info = env.reset()
    assert info["lives"] == 5 and info["frames"] == info["noops"] <= 30


def test_eval_protocol_life_loss_not_terminal():
    env = AtariEnv(AtariProtocol(game="Breakout", **ATARI_EVAL), seed=2)
    _, info = env.reset()
    assert info["frames"] == 1
    losses = 0
    for _ in range(2000):
        _, _, terminated, truncated, info = env.step(1)
        losses += info["life_loss"]
        if terminated:
            break
    assert terminated and info["game_over"] and losses == 5 and not truncated


@pytest.mark.parametrize("limit", [1_001, pytest.param(20_000, marks=pytest.mark.slow)])
def test_train_time_limit_counts_noop_frames(limit):
    protocol = AtariProtocol(game="Breakout", **{**IRIS_TRAIN, "max_frames": limit})
    env = AtariEnv(protocol, seed=4)  # NOOP never launches the ball: no life is lost
    _, info = env.reset()
    noops = info["noops"]
    expected_steps = math.ceil((limit - noops) / 4)
    for step in range(1, expected_steps + 1):
        _, _, terminated, truncated, info = env.step(0)
        assert not terminated and truncated == (step == expected_steps)
    assert info["frames"] == limit and not info["game_over"]
    _, info = env.reset()  # a real reset after truncation
    assert info["frames"] == info["noops"]


@pytest.mark.parametrize("limit", [20_000, 108_000])
def test_time_limit_across_lives(limit):
    """Game-scope limit: frames carried over life losses, incl. the NOOP step after each loss."""
    env = AtariEnv(AtariProtocol(game="Breakout", **{**IRIS_TRAIN, "max_frames": limit}), seed=5)
    env.reset()
    state = env.get_state()
    state["game_frames"] = limit - 150  # jump the counter; the emulator state itself is real
    env.set_state(state)
    total_frames, life_losses = limit - 150, 0
    while True:
        _, _, terminated, truncated, info = env.step(1)
        total_frames = info["frames"]
        if truncated:
            break
        if terminated:
            life_losses += 1
            _, info = env.reset()
            assert info["frames"] == total_frames + 4
    assert info["frames"] == limit and life_losses >= 1


def test_life_scope_time_limit_resets_each_life():
    protocol = AtariProtocol(game="Breakout", **{**TWM_TRAIN, "fire_on_reset": False, "max_frames": 120})
    env = AtariEnv(protocol, seed=6)
    _, info = env.reset()
    start = info["frames"]
    for step in range(1, 31):
        _, _, terminated, truncated, info = env.step(0)
        assert truncated == (step == 30) and not terminated
    assert info["frames"] == start + 120


def test_noop_ranges():
    env = AtariEnv(AtariProtocol(game="Pong", noop_min=3, noop_max=7), seed=0)
    counts = {env.reset()[1]["noops"] for _ in range(60)}
    assert counts == set(range(3, 8))
    assert AtariEnv(AtariProtocol(game="Pong", **ATARI_EVAL), 0).reset()[1]["frames"] == 1
    assert AtariEnv(AtariProtocol(game="Pong", noop_max=0), 0).reset()[1]["frames"] == 0


def test_fire_on_reset_launches_ball():
    def lost_life_with_noops(fire_on_reset):
        protocol = AtariProtocol(game="Breakout", noop_max=0, fire_on_reset=fire_on_reset, life_loss_terminal=True)
        env = AtariEnv(protocol, seed=0)
        _, info = env.reset()
        assert info["frames"] == (8 if fire_on_reset else 0)
        return any(env.step(0)[4]["life_loss"] for _ in range(300))

    assert lost_life_with_noops(True) and not lost_life_with_noops(False)
    pong = AtariEnv(AtariProtocol(game="Pong", noop_max=0, fire_on_reset=True), 0)
    assert pong.has_fire and pong.reset()[1]["frames"] == 8


def test_seeding():
    def frames(seed):
        env = AtariEnv(AtariProtocol(game="Pong", **IRIS_TRAIN), seed)
        obs, info = env.reset()
        out = [obs]
        rng = np.random.default_rng(0)
        for _ in range(60):
            out.append(env.step(int(rng.integers(6)))[0])
        return info["noops"], np.stack(out), env.seeds

    noops_a, a, seeds = frames(10)
    noops_b, b, _ = frames(10)
    noops_c, c, _ = frames(11)
    assert seeds == {"ale": 10, "noop": 11}
    assert noops_a == noops_b and (a == b).all()
    assert noops_a != noops_c and not (a == c).all()


@pytest.mark.parametrize("variant", ["iris", "twm"])
def test_state_roundtrip_into_fresh_env(variant):
    if variant == "iris":
        protocol = AtariProtocol(game="Breakout", **IRIS_TRAIN)
    else:
        protocol = AtariProtocol(game="Breakout", **TWM_TRAIN, obs=TWM_OBS)
    env = AtariEnv(protocol, seed=8)
    env.reset()
    rng = np.random.default_rng(9)
    for _ in range(30):
        if any(env.step(int(rng.integers(4)))[2:4]):
            env.reset()
    snapshot = env.get_state()
    actions = rng.integers(4, size=300)

    expected = rollout(env, actions)
    assert sum(1 for item in expected if len(item) == 2 and "noops" in item[1] and item[1]["noops"] > 0) >= 1
    fresh = AtariEnv(protocol, seed=999)
    fresh.set_state(pickle.loads(pickle.dumps(snapshot)))
    assert_plain(snapshot)
    assert rollout(fresh, actions) == expected


def test_registry_and_vector_env():
    assert len(env_names("atari")) == 26 and "Pong" in env_names("atari")
    assert env_names("crafter") == ["crafter"] and env_names("sanity") == ["catch"]
    assert num_actions(AtariProtocol(game="Breakout")) == 4 and num_actions(AtariProtocol(game="Pong")) == 6
    protocol = AtariProtocol(game="Pong", **IRIS_TRAIN)
    vec = VectorEnv([make_env(protocol, seed) for seed in (0, 1)])
    obs, infos = vec.reset_all([0, 1])
    assert obs.shape == (2, 3, 64, 64) and infos[0]["frames"] != infos[1]["frames"]
    obs, rewards, terminated, truncated, infos = vec.step(np.array([0, 1]))
    assert obs.shape == (2, 3, 64, 64) and terminated.dtype == bool and len(infos) == 2
    with pytest.raises(KeyError, match="NotAGame"):
        make_env(dataclasses.replace(protocol, game="NotAGame"), 0)
