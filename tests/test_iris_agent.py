"""IRIS agent contract: schedule, policies, perceptual-weights requirement, resume exactness."""
import copy
import dataclasses
import io

import numpy as np
import pytest
import torch

from agents.base import EnvInfo, Progress, get_agent_class
from agents.common import lpips as lp
from agents.iris import IrisAgent
from agents.iris.config import ComponentSchedule, atari100k, crafter, tiny
from agents.iris.schedule import build_schedule
from harness.replay import Replay

torch.set_num_threads(1)
CATCH = EnvInfo("sanity", "catch", 3, (3, 64, 64))


def _total_updates(training, budget):
    schedule = build_schedule(training, budget)
    return {name: sum(schedule.updates(name, e, getattr(training, name)) for e in range(1, schedule.total_epochs + 1))
            for name in ("tokenizer", "world_model", "actor_critic")}, schedule


def test_paper_schedule_atari_and_crafter():
    totals, schedule = _total_updates(atari100k().training, 100_000)
    assert (schedule.collection_epochs, schedule.total_epochs) == (500, 600)
    assert schedule.start_after == {"tokenizer": 5, "world_model": 25, "actor_critic": 50}
    assert totals == {"tokenizer": 119_000, "world_model": 115_000, "actor_critic": 110_000}
    steps = [schedule.collect_steps(e, atari100k().training, 200 * (e - 1), 100_000) for e in range(1, 601)]
    assert sum(steps) == 100_000 and steps[499] == 200 and steps[500] == 0
    totals_c, schedule_c = _total_updates(crafter().training, 10_000_000)
    assert (schedule_c.collection_epochs, schedule_c.total_epochs) == (991, 1000)
    assert totals_c == {"tokenizer": 5_000 + 999 * 500, "world_model": 2_500 + 999 * 500, "actor_critic": 500_000}


def test_schedule_scales_with_budget():
    _, schedule = _total_updates(atari100k().training, 10_000)
    assert (schedule.collection_epochs, schedule.total_epochs) == (50, 60)
    assert schedule.start_after == {"tokenizer": 1, "world_model": 3, "actor_critic": 5}
    agent = IrisAgent(tiny(), CATCH)
    plans = []
    env_steps = 0
    while (plan := agent.plan_epoch(Progress(agent.epochs_done, env_steps, 20_000))) is not None:
        plans.append((plan.collect_steps, plan.random_actions))
        env_steps += plan.collect_steps
        agent.epochs_done += 1
    # tiny at the sanity budget: a random 4k-step epoch, eight of 2k, one train-only epoch.
    assert plans == [(4000, True)] + [(2000, False)] * 8 + [(0, False)]
    totals, _ = _total_updates(tiny().training, 20_000)
    assert totals == {"tokenizer": 2000, "world_model": 3000 + 9 * 100, "actor_critic": 9 * 150}
    # A budget shorter than the random epoch (the smoke suite's 600 steps) scales its update burst with it.
    short = build_schedule(tiny().training, 600)
    assert short.updates("tokenizer", 1, tiny().training.tokenizer) == 300
    assert short.updates("world_model", 1, tiny().training.world_model) == 450


def _fill(replay, steps, seed=0):
    from harness.envs import make_env
    from harness.envs.protocol import SanityProtocol
    env = make_env(SanityProtocol(balls=2), seed)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    replay.start_episode(0, obs)
    for _ in range(steps):
        action = int(rng.integers(3))
        obs, reward, term, trunc, _ = env.step(action)
        replay.add_step(0, action, reward, term, trunc, obs)
        if term or trunc:
            obs, _ = env.reset()
            replay.start_episode(0, obs)


def _quick_config():
    cfg = tiny()
    fast = dict(steps_per_epoch=2, batch_size=4, steps_first_epoch=0)
    training = dataclasses.replace(
        cfg.training, epochs=10, collection_epochs=10, steps_per_epoch=10,
        tokenizer=dataclasses.replace(cfg.training.tokenizer, start_after_epoch=0, **fast),
        world_model=dataclasses.replace(cfg.training.world_model, start_after_epoch=0, **fast),
        actor_critic=dataclasses.replace(cfg.training.actor_critic, start_after_epoch=0, **fast))
    return dataclasses.replace(cfg, actor_critic=dataclasses.replace(cfg.actor_critic, horizon=4), training=training)


def test_resume_gives_identical_next_losses_and_actions():
    replay = Replay((3, 64, 64))
    _fill(replay, 60)
    progress = Progress(0, 100, 100)
    agent = IrisAgent(_quick_config(), CATCH, seed=5)
    first = agent.update(replay, progress)
    assert {"tokenizer/total", "world_model/next_token", "actor_critic/value"} <= set(first)
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    continued = agent.update(replay, progress)
    obs = np.stack([replay.observations(0, 0, 1)[0]] * 2)
    actions, _ = agent.act(obs, None, "collect", np.array([True, True]))
    fresh = IrisAgent(_quick_config(), CATCH, seed=99)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=False))
    resumed = fresh.update(replay, progress)
    assert resumed == continued
    assert np.array_equal(fresh.act(obs, None, "collect", np.array([True, True]))[0], actions)


def test_act_shapes_state_and_temperatures(monkeypatch):
    agent = IrisAgent(tiny(), CATCH, seed=0)
    with torch.no_grad():
        agent.actor_critic.actor.weight.zero_()
        agent.actor_critic.actor.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    obs = np.zeros((1000, 3, 64, 64), np.uint8)
    first = np.ones(1000, bool)
    actions, state = agent.act(obs, None, "evaluate", first)
    assert actions.dtype == np.int64 and actions.shape == (1000,) and state.h.shape == (1000, 64)
    p_eval = np.exp(2) / (np.exp(2) + 2)  # temperature 0.5 doubles the logit gap
    assert abs((actions == 0).mean() - p_eval) < 0.05
    collect, _ = agent.act(obs, None, "collect", first)
    p_collect = 0.99 * np.e / (np.e + 2) + 0.01 / 3
    assert abs((collect == 0).mean() - p_collect) < 0.05
    assert agent.describe()["eval_temperature"] == 0.5
    freeway = IrisAgent(tiny(), EnvInfo("atari", "Freeway", 3, (3, 64, 64)), seed=0)
    assert freeway.collect_temperature == 0.01 and freeway.describe()["freeway_temperature_exception"] is True
    assert agent.collect_temperature == 1.0 and agent.describe()["freeway_temperature_exception"] is False


def test_state_reset_on_first_and_reburn_after_policy_change():
    cfg = tiny()
    agent = IrisAgent(dataclasses.replace(cfg, actor_critic=dataclasses.replace(cfg.actor_critic, burn_in=4)), CATCH,
                      seed=0)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (6, 2, 3, 64, 64), dtype=np.uint8)
    state = None
    for t in range(6):
        _, state = agent.act(frames[t], state, "evaluate", np.array([t == 0, t == 0 or t == 3]))
    assert list(state.history_len) == [4, 3]
    h_before = state.h.clone()
    agent.policy_version += 1  # as after an actor-critic update
    agent._reburn(state)
    # Env 1's episode (3 frames) fits in the burn-in window: same weights reproduce the carried state.
    torch.testing.assert_close(state.h[1], h_before[1])
    # Env 0's episode (6 frames) is longer than the window: the state is rebuilt from its last 4 frames.
    assert not torch.allclose(state.h[0], h_before[0])


def test_paper_profile_requires_lpips_weights(monkeypatch, tmp_path):
    monkeypatch.setenv(lp.WEIGHTS_ENV, str(tmp_path))
    cls = get_agent_class("iris")
    agent = cls(cls.profiles["atari100k"](), EnvInfo("atari", "Breakout", 4, (3, 64, 64)))
    files = agent.required_files()
    assert {f.path.name for f in files} == {"vgg16-397923af.pth", "vgg.pth"}
    assert all("download" in f.how_to_get for f in files)
    assert agent.describe()["perceptual_loss"] == "off"
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        agent.plan_epoch(Progress(0, 0, 100_000))
    tiny_agent = cls(tiny(), CATCH)
    assert tiny_agent.required_files() == [] and tiny_agent.describe()["perceptual_loss"] == "off"
    assert agent.describe()["squared_error_weight"] == 0.0 and tiny_agent.describe()["squared_error_weight"] == 16.0
    assert agent.describe()["mid_attention"] and not tiny_agent.describe()["mid_attention"]
    assert (agent.describe()["tokenizer_norm"], tiny_agent.describe()["tokenizer_norm"]) == ("group", "none")
    assert agent.describe()["middle_blocks"] and not tiny_agent.describe()["middle_blocks"]
    assert tiny_agent.plan_epoch(Progress(0, 0, 1000)).collect_steps == 1000


def test_paper_profile_loads_lpips_and_trains_with_perceptual_term(monkeypatch, tmp_path):
    vgg = {f"features.{k}": torch.randn(v.shape) * 0.05 for k, v in lp.vgg16_features().state_dict().items()}
    torch.save(vgg, tmp_path / lp.VGG_FILE)
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 128, 256, 512, 512))},
               tmp_path / lp.LPIPS_FILE)
    cfg = _quick_config()
    cfg = dataclasses.replace(cfg, tokenizer=dataclasses.replace(cfg.tokenizer, perceptual_weight=1.0,
                                                                  weights_dir=str(tmp_path)))
    agent = IrisAgent(cfg, CATCH)
    assert agent.describe()["perceptual_loss"] == "on"
    assert "lpips.features.0.weight" not in agent.state_dict()["tokenizer"]
    replay = Replay((3, 64, 64))
    _fill(replay, 30)
    frames = torch.rand(2, 3, 64, 64)
    losses = agent.tokenizer.loss(frames)
    assert losses.perceptual.item() > 0
