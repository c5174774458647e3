"""REM agent: harness contract, schedule, shapes, exact resume, config errors."""
import copy
import dataclasses

import numpy as np
import pytest
import torch

from agents.base import EnvInfo, Progress, apply_overrides, get_agent_class
from agents.rem.agent import RemAgent, make_schedule
from agents.rem.config import PROFILES, atari100k, tiny
from harness.envs.catch import CatchEnv
from harness.envs.protocol import SanityProtocol
from harness.replay import Replay

torch.set_num_threads(1)
ENV = EnvInfo("sanity", "catch", 3, (3, 64, 64))


def fast_config():
    """tiny with 2 updates per component, small batches, every component on from epoch 1."""
    cfg = tiny()
    return apply_overrides(cfg, {
        "tokenizer.updates_per_epoch": 2, "tokenizer.batch_size": 4, "tokenizer.start_after_epoch": 0,
        "world_model.updates_per_epoch": 2, "world_model.batch_size": 3, "world_model.segment_blocks": 4,
        "world_model.start_after_epoch": 0, "controller.updates_per_epoch": 2, "controller.batch_size": 3,
        "controller.burn_in": 3, "controller.start_after_epoch": 0}, where="test")


def catch_replay(agent, steps: int = 60, seed: int = 0) -> Replay:
    env = CatchEnv(SanityProtocol(balls=2), seed=seed)
    replay = Replay((3, 64, 64))
    obs, _ = env.reset(seed=seed)
    replay.start_episode(0, obs)
    state, first = agent.initial_state(1), np.array([True])
    for _ in range(steps):
        actions, state = agent.act(obs[None], state, "collect", first)
        first[:] = False
        obs, reward, terminated, truncated, _ = env.step(int(actions[0]))
        replay.add_step(0, int(actions[0]), reward, terminated, truncated, obs)
        if terminated or truncated:
            obs, _ = env.reset()
            replay.start_episode(0, obs)
            first[:] = True
    return replay


def test_registered_with_profiles():
    cls = get_agent_class("rem")
    assert cls is RemAgent and set(cls.profiles) == {"atari100k", "crafter", "tiny"}
    assert PROFILES["atari100k"]().from_paper and not PROFILES["crafter"]().from_paper
    assert cls.observation == {}


def test_paper_schedule_and_scaled_schedule():
    full = make_schedule(atari100k(), 100_000)
    assert (full.collect_epochs, full.total_epochs) == (500, 600)
    assert (full.tokenizer_start, full.world_model_start, full.controller_start) == (5, 25, 50)
    half = make_schedule(atari100k(), 50_000)
    assert (half.collect_epochs, half.total_epochs, half.controller_start) == (250, 300, 25)
    agent = RemAgent(fast_config(), ENV)
    budget = tiny().steps_per_epoch * 3
    plans = []
    for epoch in range(100):
        plan = agent.plan_epoch(Progress(epoch, min(epoch, 3) * tiny().steps_per_epoch, budget))
        if plan is None:
            break
        plans.append(plan.collect_steps)
    assert plans == [tiny().steps_per_epoch] * 3 + [0] * (make_schedule(agent.config, budget).total_epochs - 3)
    assert not agent.plan_epoch(Progress(0, 0, budget)).random_actions  # C collects from the start


def test_act_shapes_reset_and_declarations():
    agent = RemAgent(fast_config(), ENV, seed=3)
    obs = np.random.default_rng(0).integers(0, 255, (4, 3, 64, 64), dtype=np.uint8)
    state = agent.initial_state(4)
    actions, state = agent.act(obs, state, "collect", np.ones(4, bool))
    assert actions.shape == (4,) and actions.dtype == np.int64 and ((0 <= actions) & (actions < 3)).all()
    assert state[0].shape == (4, tiny().controller.hidden_dim)
    _, reset_state = agent.act(obs, state, "evaluate", np.array([True, False, False, False]))
    _, fresh_state = agent.act(obs[:1], agent.initial_state(1), "evaluate", np.array([True]))
    assert torch.allclose(reset_state[0][0], fresh_state[0][0])
    assert agent.describe()["perceptual_loss"] == "off" and agent.required_files() == []
    paper = RemAgent(atari100k(), EnvInfo("atari", "Pong", 6, (3, 64, 64)))
    names = sorted(f.path.name for f in paper.required_files())
    assert names == ["vgg.pth", "vgg16-397923af.pth"] and paper.describe()["perceptual_loss"] == "on"


def test_update_trains_every_component():
    agent = RemAgent(fast_config(), ENV, seed=1)
    replay = catch_replay(agent)
    metrics = agent.update(replay, Progress(0, 60, 1000))
    for key in ("tokenizer/loss", "world_model/obs_ce", "world_model/reward_ce", "controller/value"):
        assert key in metrics and np.isfinite(metrics[key])


def test_tokenizer_is_frozen_after_its_stop_epoch():
    agent = RemAgent(apply_overrides(fast_config(), {"tokenizer.stop_after_epoch": 1}, where="test"), ENV, seed=1)
    replay = catch_replay(agent)
    assert "tokenizer/loss" in agent.update(replay, Progress(0, 60, 1000))
    before = copy.deepcopy(agent.tokenizer.state_dict())
    metrics = agent.update(replay, Progress(1, 60, 1000))
    assert "tokenizer/loss" not in metrics and "world_model/obs_ce" in metrics
    assert all(torch.equal(before[key], value) for key, value in agent.tokenizer.state_dict().items())


def test_resume_gives_identical_next_losses():
    agent = RemAgent(fast_config(), ENV, seed=2)
    replay = catch_replay(agent)
    agent.update(replay, Progress(0, 60, 1000))
    saved = copy.deepcopy(agent.state_dict())
    expected = agent.update(replay, Progress(1, 60, 1000))
    obs = replay.observations(0, 0, 2)
    expected_actions, _ = agent.act(obs, agent.initial_state(2), "collect", np.ones(2, bool))

    resumed = RemAgent(fast_config(), ENV, seed=99)
    resumed.load_state_dict(saved)
    got = resumed.update(replay, Progress(1, 60, 1000))
    assert got == expected
    got_actions, _ = resumed.act(obs, resumed.initial_state(2), "collect", np.ones(2, bool))
    assert np.array_equal(got_actions, expected_actions)


def test_bad_config_is_rejected_with_the_key():
    cfg = dataclasses.replace(tiny(), world_model=dataclasses.replace(tiny().world_model, dim=48))
    with pytest.raises(ValueError, match="world_model.dim"):
        RemAgent(cfg, ENV)
    with pytest.raises(ValueError, match="tokenizer.norm: expected one of group, channel, none, got 'batch'"):
        RemAgent(apply_overrides(tiny(), {"tokenizer.norm": "batch"}, where="test"), ENV)
    with pytest.raises(ValueError, match="tokenizer.inner_kernel: expected an odd kernel size >= 1, got 2"):
        RemAgent(apply_overrides(tiny(), {"tokenizer.inner_kernel": "2"}, where="test"), ENV)
    with pytest.raises(ValueError, match="tokenizer.reconstruction_weight: expected > 0, got 0.0"):
        RemAgent(apply_overrides(tiny(), {"tokenizer.reconstruction_weight": "0"}, where="test"), ENV)
    with pytest.raises(ValueError, match="expects observations"):
        RemAgent(tiny(), EnvInfo("atari", "Pong", 6, (4, 64, 64)))


def test_sampler_covers_valid_positions_without_replacement():
    from agents.rem.sampler import PositionSampler, segments_batch

    replay = Replay((3, 64, 64))
    for length in (5, 2, 4):  # steps per episode; the 2-step one offers no position at ctx 2
        replay.start_episode(0, np.zeros((3, 64, 64), np.uint8))
        for t in range(length):
            replay.add_step(0, t % 3, float(t), t == length - 1, False, np.full((3, 64, 64), t + 1, np.uint8))
    sampler = PositionSampler(replay, 2, np.random.default_rng(0))
    assert len(sampler) == (5 - 2) + 0 + (4 - 2)
    picks = sampler.draw(len(sampler))
    assert sorted(picks) == [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1)]
    assert sorted(sampler.draw(len(sampler))) == sorted(picks)  # reshuffled once exhausted
    batch = segments_batch(replay, [(0, 2)], 4, 0, "cpu")  # right padding past the episode end
    assert batch["valid"].tolist() == [[True, True, True, False]]
    assert batch["ends"].tolist() == [[False, False, True, False]]
    left = segments_batch(replay, [(2, 0)], 5, 3 - 5, "cpu")  # controller: left padding, last 3 real
    assert left["valid"].tolist() == [[False, False, True, True, True]]
    assert len(PositionSampler(replay, 0, np.random.default_rng(0))) == 11
