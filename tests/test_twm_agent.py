"""TWM agent contract: protocol knobs, schedule, training-step ratio, acting and exact resume."""
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from agents.base import EnvInfo, EpochPlan, Progress, get_agent_class
from agents.twm import TWMAgent
from agents.twm.config import PROFILES, tiny
from harness.envs.protocol import train_protocol
from harness.replay import Replay

torch.set_num_threads(1)
OBS = (4, 64, 64)
INFO = EnvInfo("sanity", "catch", 3, OBS, ("NOOP", "LEFT", "RIGHT"))


def micro():
    """tiny, shrunk further so a handful of updates run in seconds."""
    # train_every: the official ratio (tiny trains less often to fit the CPU sanity run)
    return replace(tiny(), prefill_steps=60, train_every=0.76, env_steps_per_epoch=4, pretrain_obs_frames=120,
                   pretrain_obs_chunk=32,
                   pretrain_dyn_elements=64, pretrain_ac_elements=60, pretrain_updates_per_epoch=3,
                   z_categoricals=8, z_categories=8, obs_channels=4, obs_mlp_dim=32, dyn_embed_dim=32,
                   dyn_head_dim=16, dyn_feedforward_dim=32, dyn_z_dims=(32,), dyn_reward_dims=(16,),
                   dyn_discount_dims=(16,), wm_batch_size=3, wm_sequence_length=4, wm_memory_length=4,
                   ac_batch_size=6, ac_horizon=3, ac_dims=(16,))


class SyntheticEnv:
    """Deterministic episodes of random-looking frames; ends every 7 steps."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.t = 0

    def reset(self) -> np.ndarray:
        self.t = 0
        return self.rng.integers(0, 255, OBS, dtype=np.uint8)

    def step(self, action: int):
        self.t += 1
        done = self.t % 7 == 0
        return self.rng.integers(0, 255, OBS, dtype=np.uint8), float(np.tanh(action - 1.0)), done, False


class Driver:
    """A minimal harness loop: plan, collect into the Replay, update."""

    def __init__(self, agent: TWMAgent, budget: int):
        self.agent, self.budget = agent, budget
        self.env, self.replay = SyntheticEnv(0), Replay(OBS)
        self.obs = self.env.reset()
        self.replay.start_episode(0, self.obs)
        self.steps = self.epoch = 0
        self.action_rng = np.random.default_rng(1)

    def progress(self) -> Progress:
        return Progress(self.epoch, self.steps, self.budget)

    def epoch_once(self) -> tuple[EpochPlan | None, dict]:
        plan = self.agent.plan_epoch(self.progress())
        if plan is None:
            return None, {}
        for _ in range(min(plan.collect_steps, self.budget - self.steps)):
            if plan.random_actions:
                action = int(self.action_rng.integers(3))
            else:
                action = int(self.agent.act(self.obs[None], None, "collect", np.array([False]))[0][0])
            self.obs, reward, term, trunc = self.env.step(action)
            self.steps += 1
            self.replay.add_step(0, action, reward, term, trunc, self.obs)
            if term or trunc:
                self.obs = self.env.reset()
                self.replay.start_episode(0, self.obs)
        metrics = self.agent.update(self.replay, self.progress())
        self.epoch += 1
        return plan, metrics


def test_registered_with_profiles_and_observation():
    assert get_agent_class("twm") is TWMAgent
    assert set(PROFILES) == {"atari100k", "crafter", "tiny"}
    assert TWMAgent.observation == {"grayscale": True, "frame_stack": 4, "resize_before_pool": False,
                                    "interpolation": "area"}


@pytest.mark.parametrize("meanings, fire", [(("NOOP", "FIRE", "RIGHT", "LEFT"), True), (("NOOP", "UP", "DOWN"), False)])
def test_train_protocol_per_game_kind(meanings, fire):
    agent = TWMAgent(micro(), EnvInfo("atari", "Breakout", len(meanings), OBS, meanings))
    knobs = agent.train_protocol()
    protocol = train_protocol("atari", "Breakout", knobs, {}, TWMAgent.observation)
    assert protocol.noop_unit == ("step" if fire else "frame") and (protocol.noop_min, protocol.noop_max) == (1, 30)
    assert protocol.fire_on_reset is fire and protocol.fire_after_life_loss is fire
    assert protocol.life_loss_terminal and protocol.time_limit_scope == "life" and protocol.max_frames == 108_000
    assert protocol.reward_transform == "tanh" and protocol.obs.shape == (4, 64, 64)
    assert protocol.obs.interpolation == "area" and not protocol.obs.resize_before_pool


def test_schedule_prefill_pretraining_then_ratio_of_training_steps():
    config = replace(micro(), prefill_steps=30)
    agent = TWMAgent(config, INFO, seed=0)
    driver = Driver(agent, budget=60)
    plan, _ = driver.epoch_once()
    assert plan == EpochPlan(30, random_actions=True) and agent.phase != "prefill"
    phases = []
    while agent.phase != "train":
        plan, metrics = driver.epoch_once()
        assert plan.collect_steps == 0
        phases.append(agent.phase)
        assert all(np.isfinite(v) for v in metrics.values())
    assert driver.steps == 30 and agent.train_steps == 0
    plan, metrics = driver.epoch_once()
    assert plan.collect_steps == 4 and agent.train_steps == int(4 / 0.76)  # 5 training steps for 4 env steps
    assert {"dyn_loss", "obs_loss", "critic_loss", "actor_loss"} <= set(metrics)
    while driver.epoch_once()[0] is not None:
        pass
    assert driver.steps == 60
    assert abs(agent.train_steps - 30 / 0.76) <= 1  # 39 ± 1 (float accumulation, spec §12.7)


def test_small_budget_caps_prefill():
    agent = TWMAgent(micro(), INFO)
    assert agent.plan_epoch(Progress(0, 0, 50)) == EpochPlan(25, random_actions=True)


def test_act_returns_int64_actions():
    agent = TWMAgent(micro(), INFO)
    obs = np.random.default_rng(0).integers(0, 255, (5, *OBS), dtype=np.uint8)
    actions, state = agent.act(obs, agent.initial_state(5), "evaluate", np.ones(5, bool))
    assert actions.shape == (5,) and actions.dtype == np.int64 and state is None
    assert set(actions.tolist()) <= {0, 1, 2}


def _losses(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k.endswith("loss")}


@pytest.mark.parametrize("stop_phase", ["pretrain_dyn", "train"])
def test_resume_gives_identical_next_losses(stop_phase):
    torch.manual_seed(0)
    agent = TWMAgent(micro(), INFO, seed=3)
    driver = Driver(agent, budget=120)
    while agent.phase != stop_phase or (stop_phase == "train" and agent.train_steps == 0):
        driver.epoch_once()
    state = copy.deepcopy(agent.state_dict())
    replay_state = copy.deepcopy(driver.replay.state_dict())
    driver_copy = copy.deepcopy({"env": driver.env, "obs": driver.obs, "steps": driver.steps, "epoch": driver.epoch,
                                 "rng": driver.action_rng})
    expected = [_losses(driver.epoch_once()[1]) for _ in range(2)]

    fresh = TWMAgent(micro(), INFO, seed=99)
    fresh.load_state_dict(state)
    resumed = Driver(fresh, budget=120)
    resumed.replay = Replay(OBS)
    resumed.replay.load_state_dict(replay_state)
    resumed.env, resumed.obs = driver_copy["env"], driver_copy["obs"]
    resumed.steps, resumed.epoch, resumed.action_rng = driver_copy["steps"], driver_copy["epoch"], driver_copy["rng"]
    got = [_losses(resumed.epoch_once()[1]) for _ in range(2)]
    assert expected[0] and got == expected


@pytest.mark.slow
def test_world_model_learns_catch_during_pretraining():
    """On real Catch frames, pretraining drives the reconstruction and next-latent losses down."""
    from harness.envs import make_env
    from harness.envs.protocol import build_protocol

    protocol = build_protocol("sanity", "catch", {"reward_transform": "tanh"}, TWMAgent.observation)
    env = make_env(protocol, seed=0)
    config = replace(micro(), prefill_steps=200, pretrain_obs_frames=200 * 30, pretrain_obs_chunk=50,
                     pretrain_dyn_elements=200 * 30, pretrain_ac_elements=60, pretrain_updates_per_epoch=30,
                     obs_lr=1e-3, dyn_lr=1e-3)
    agent = TWMAgent(config, INFO, seed=0)
    driver = Driver(agent, budget=400)
    driver.env = type("CatchAdapter", (), {
        "reset": lambda self: env.reset()[0],
        "step": lambda self, a: env.step(a)[:4]})()
    driver.obs = driver.env.reset()
    driver.replay = Replay(OBS)
    driver.replay.start_episode(0, driver.obs)
    history: dict[str, list[float]] = {"obs_loss": [], "dyn_z_loss": []}
    while agent.phase != "train":
        _, metrics = driver.epoch_once()
        for key in history:
            if key in metrics:
                history[key].append(metrics[key])
    assert len(history["obs_loss"]) >= 3 and len(history["dyn_z_loss"]) >= 3
    pixels = 4 * 64 * 64
    constant = 0.5 * pixels * np.log(2 * np.pi)
    excess = [value - constant for value in history["obs_loss"]]
    assert excess[-1] < 0.9 * excess[0], history
    assert history["dyn_z_loss"][-1] < 0.7 * history["dyn_z_loss"][0], history
