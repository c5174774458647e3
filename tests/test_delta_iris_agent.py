"""Δ-IRIS agent contract: actor-critic losses at init, acting and burn-in, exact resume (spec §2.3, §6)."""
import copy
import dataclasses
import io
import math

import numpy as np
import pytest
import torch

from agents.base import EnvInfo, Progress, apply_overrides, get_agent_class
from agents.delta_iris import DeltaIrisAgent
from agents.delta_iris.actor_critic import ActorCritic
from agents.delta_iris.config import crafter, tiny
from agents.delta_iris.imagination import Imagination
from agents.delta_iris.tokenizer import Tokenizer
from agents.delta_iris.world_model import WorldModel
from harness.replay import Replay

torch.set_num_threads(1)
CATCH = EnvInfo("sanity", "catch", 3, (3, 64, 64))


def fast_tiny(**overrides):
    """tiny with two updates per component per epoch (the code paths, not the learning)."""
    base = {"train_tokenizer.steps_first_epoch": 2, "train_tokenizer.steps_per_epoch": 2,
            "train_world_model.steps_first_epoch": 2, "train_world_model.steps_per_epoch": 2,
            "train_actor_critic.steps_first_epoch": 2, "train_actor_critic.steps_per_epoch": 2,
            "train_actor_critic.batch_size": 4, "random_steps_first_epoch": 60, "steps_per_epoch": 30}
    return apply_overrides(tiny(), {**base, **overrides}, where="test")


def synthetic_replay(steps=90, seed=0, num_envs=1):
    rng = np.random.default_rng(seed)
    replay = Replay((3, 64, 64), num_envs)
    frame = lambda: rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    for env in range(num_envs):
        replay.start_episode(env, frame())
    for t in range(steps):
        env = t % num_envs
        done = rng.random() < 0.08
        replay.add_step(env, int(rng.integers(3)), float(rng.choice([-1.0, 0.0, 1.0])), done, False, frame())
        if done:
            replay.start_episode(env, frame())
    return replay


def test_registered_with_profiles_and_contract_declarations():
    cls = get_agent_class("delta_iris")
    assert cls is DeltaIrisAgent and set(cls.profiles) == {"crafter", "atari100k", "tiny"}
    assert cls(crafter(), EnvInfo("crafter", "crafter", 17, (3, 64, 64))).num_collect_envs() == 16
    agent = cls(tiny(), CATCH)
    assert agent.num_collect_envs() == 1 and agent.required_files() == [] and agent.train_protocol() == {}
    assert agent.describe()["eval_temperature"] == 1.0
    with pytest.raises(ValueError, match="3x64x64"):
        cls(tiny(), EnvInfo("atari", "Pong", 6, (4, 64, 64)))


def test_crafter_actor_critic_initial_losses():
    """Zero-initialised two-hot critic: value CE is exactly ln 255 at step 0; entropy ≈ ln 17."""
    torch.manual_seed(0)
    config = crafter()
    tokenizer = Tokenizer(config.tokenizer, 17).eval()
    world_model = WorldModel(config.world_model, 17, 1024, 4).eval()
    actor_critic = ActorCritic(config.actor_critic, 17)
    frames, actions = torch.rand(2, 6, 3, 64, 64), torch.randint(0, 17, (2, 6))
    loss, metrics = actor_critic.compute_loss(frames, actions, Imagination(tokenizer, world_model))
    assert float(metrics["values_loss"]) == pytest.approx(math.log(255), abs=1e-5)
    assert float(metrics["policy_entropy"]) == pytest.approx(math.log(17), abs=0.02)
    # Zero critic and zero target: λ-returns are the discounted imagined rewards, baseline 0.
    loss.backward()
    assert actor_critic.model.critic.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in actor_critic.target.parameters())


def test_target_critic_is_an_ema_of_every_entry():
    config = tiny().actor_critic
    actor_critic = ActorCritic(config, 3)
    with torch.no_grad():
        for p in actor_critic.model.parameters():
            p.add_(1.0)
    before = copy.deepcopy(actor_critic.target.state_dict())
    actor_critic.update_target()
    ema = config.target_ema
    for name, value in actor_critic.target.state_dict().items():
        expected = ema * before[name] + (1 - ema) * actor_critic.model.state_dict()[name]
        torch.testing.assert_close(value, expected)


def test_imagination_must_fit_the_context_without_a_cache_reset():
    with pytest.raises(ValueError, match=r"actor_critic.burn_in \+ actor_critic.horizon \+ 1 = 10 must be <= "
                                         r"world_model.max_blocks = 8"):
        DeltaIrisAgent(fast_tiny(**{"actor_critic.horizon": 8}), CATCH)


def test_act_shapes_first_resets_and_burn_in_after_updates():
    agent = DeltaIrisAgent(fast_tiny(), CATCH, seed=0)
    obs = np.random.default_rng(0).integers(0, 256, (2, 3, 64, 64), dtype=np.uint8)
    state = agent.initial_state(2)
    actions, state = agent.act(obs, state, "evaluate", np.ones(2, bool))
    assert actions.dtype == np.int64 and actions.shape == (2,) and np.all((0 <= actions) & (actions < 3))
    # A fresh state is burned in on zero frames, exactly like the LSTM fed zero frames.
    model, burn_in = agent.actor_critic.model, agent.config.actor_critic.burn_in
    with torch.no_grad():
        expected = model.burn_in(torch.zeros(2, burn_in, 3, 64, 64), model.initial_state(2))
        _, _, expected = model(torch.from_numpy(obs).float() / 255, expected)
    torch.testing.assert_close(state["hx"], expected[0])
    # first[i] zeroes that row's LSTM state before the step.
    _, reset_state = agent.act(obs, state, "evaluate", np.array([True, False]))
    with torch.no_grad():
        _, _, from_zero = model(torch.from_numpy(obs[:1]).float() / 255, model.initial_state(1))
    torch.testing.assert_close(reset_state["hx"][0], from_zero[0][0])
    # After an update, collection re-burns the LSTM on the last stored frames of the ongoing episode.
    replay = synthetic_replay(40)
    agent.update(replay, Progress(0, 40, 1000))
    episode = replay.ongoing_episode(0)
    length = replay.episode_lengths()[episode]
    stored = replay.segment(episode, length - burn_in, burn_in).obs
    current = replay.observations(episode, length, length + 1)
    _, collect_state = agent.act(current, agent.initial_state(1), "collect", np.zeros(1, bool))
    with torch.no_grad():
        burned = model.burn_in(torch.from_numpy(stored).float().unsqueeze(0) / 255, model.initial_state(1))
        _, _, expected = model(torch.from_numpy(current).float() / 255, burned)
    torch.testing.assert_close(collect_state["hx"], expected[0])


def test_plan_and_update_follow_the_schedule():
    agent = DeltaIrisAgent(fast_tiny(), CATCH, seed=0)
    plan = agent.plan_epoch(Progress(0, 0, 150))
    assert plan.random_actions and plan.collect_steps == 60
    replay = synthetic_replay(60)
    metrics = agent.update(replay, Progress(0, 60, 150))
    assert {"tokenizer/l2_loss", "world_model/latents_loss", "actor_critic/values_loss"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())
    assert all(c.sum() == 0 for c in agent.sampler.counts.values())  # counts frozen in epoch 1
    plan = agent.plan_epoch(Progress(1, 60, 150))
    assert not plan.random_actions and plan.collect_steps == 30
    agent.update(synthetic_replay(90), Progress(1, 90, 150))
    assert agent.sampler.counts["tokenizer"].sum() == 2 * 4  # 2 steps x batch 4


def test_resume_continues_with_identical_losses():
    config = fast_tiny()
    agent = DeltaIrisAgent(config, CATCH, seed=5)
    replay = synthetic_replay(120, seed=1)
    agent.update(replay, Progress(0, 60, 300))
    agent.update(replay, Progress(1, 90, 300))
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    obs = replay.observations(replay.ongoing_episode(0), 0, 1)
    expected_metrics = agent.update(replay, Progress(2, 120, 300))
    expected_actions = [agent.act(obs, agent.initial_state(1), "collect", np.ones(1, bool))[0] for _ in range(5)]

    resumed = DeltaIrisAgent(config, CATCH, seed=123)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    metrics = resumed.update(replay, Progress(2, 120, 300))
    assert metrics == expected_metrics
    actions = [resumed.act(obs, resumed.initial_state(1), "collect", np.ones(1, bool))[0] for _ in range(5)]
    assert [a.tolist() for a in actions] == [a.tolist() for a in expected_actions]
    for name, module in agent.modules().items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, resumed.modules()[name].state_dict()[key]), (name, key)


class ScriptedImagination:
    """Stands in for the world model: fixed frames, rewards and ends per step."""

    def __init__(self, frames, rewards, ends):
        self.frames, self.rewards, self.ends, self.t = frames, rewards, ends, 0

    def reset(self, frames, actions):
        return frames[:, -1]

    def step(self, action):
        self.t += 1
        return self.frames[:, self.t], self.rewards[:, self.t - 1], self.ends[:, self.t - 1]


def test_actor_critic_loss_matches_its_definition():
    """Policy baseline and λ-return bootstraps come from the target critic; losses stop after the first end."""
    from agents.common.returns import lambda_returns

    torch.manual_seed(0)
    config = dataclasses.replace(tiny().actor_critic, two_hot_values=False, horizon=4, burn_in=2)
    actor_critic = ActorCritic(config, 3)
    with torch.no_grad():
        actor_critic.model.critic.weight.normal_(0, 0.1)  # distinct online and target critics
        actor_critic.target.critic.weight.normal_(0, 0.1)
    frames = torch.rand(2, 5, 3, 64, 64)
    rewards = torch.tensor([[0.0, 1.0, 0.0, -1.0], [1.0, 0.0, 0.0, 0.0]])
    ends = torch.tensor([[False, True, False, True], [False, False, False, False]])
    start = torch.rand(2, 3, 3, 64, 64)
    start[:, -1] = frames[:, 0]
    target_before = copy.deepcopy(actor_critic.target)
    generator = torch.Generator().manual_seed(1)
    loss, metrics = actor_critic.compute_loss(start, torch.zeros(2, 3, dtype=torch.long),
                                              ScriptedImagination(frames, rewards, ends), generator)
    # Recompute by hand with the pre-update target and the same action samples.
    generator = torch.Generator().manual_seed(1)
    model = actor_critic.model
    with torch.no_grad():
        state = model.burn_in(start[:, :-1], model.initial_state(2))
        target_state = target_before.burn_in(start[:, :-1], target_before.initial_state(2))
        log_probs, values, baseline, entropies, chosen = [], [], [], [], []
        for t in range(4):
            logits, value, state = model(frames[:, t], state)
            action = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
            _, target_value, target_state = target_before(frames[:, t], target_state)
            lp = logits.log_softmax(-1)
            chosen.append(lp.gather(1, action[:, None])[:, 0])
            entropies.append(-(lp.exp() * lp).sum(-1))
            values.append(value[:, 0])
            baseline.append(target_value[:, 0])
        _, bootstrap, _ = target_before(frames[:, 4], target_state)
        baseline_t = torch.stack(baseline, 1)
        returns = lambda_returns(rewards, baseline_t, ends.float(), config.gamma, config.lambda_, bootstrap[:, 0])
        mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
        policy = -(torch.stack(chosen, 1) * (returns - baseline_t))[mask].mean()
        value_loss = (torch.stack(values, 1) - returns)[mask].pow(2).mean()
        entropy = torch.stack(entropies, 1)[mask].mean()
    torch.testing.assert_close(metrics["actions_loss"], policy)
    torch.testing.assert_close(metrics["values_loss"], value_loss)
    torch.testing.assert_close(metrics["policy_entropy"], entropy)
    torch.testing.assert_close(loss.detach(), policy + value_loss - config.entropy_weight * entropy)
