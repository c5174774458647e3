"""Can REM's controller C learn Catch, and in which imagination? A fresh C, trained and scored in the real game.

Two imaginations separate "C cannot learn" from "M does not teach it":
- `--imagination game`: the TRUE game stands in for M. C's rollouts are 9 decisions (the profile's
  imagine_horizon - context_blocks + 1) in real Catch envs that carry on across updates, seen through a V: the
  run's (with `--run`) or a `tiny` V trained here on random play (`--v-updates`). The same loss as in training
  (`actor_critic_loss`); C's LSTM starts from zeros in each rollout (Catch is Markov in one frame).
- `--imagination model --run RUN_DIR`: the run's V and M from its latest checkpoint, the run's replay, and the
  agent's own `train_controller` (burn-in, POP imagination, loss), with a freshly initialised C.
The config is the run's (its profile as the code has it now, with the run's overrides), else `tiny`.

Every `--every` updates: mean return of `--episodes` real Catch episodes, C acting at its eval temperature.
Controller fields are overridden with `--set key=value` (e.g. --set gamma=0.995 --set lr=3e-3).

    OMP_NUM_THREADS=1 python benchmarks/rem_controller_probe.py --imagination game --updates 1500
    OMP_NUM_THREADS=1 python benchmarks/rem_controller_probe.py --imagination model --run runs/sanity/rem/catch/seed_1
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.base import EnvInfo, apply_overrides  # noqa: E402
from agents.common.optim import clip_and_step  # noqa: E402
from agents.rem.agent import RemAgent  # noqa: E402
from agents.rem.config import PROFILES, RemConfig  # noqa: E402
from agents.rem.controller import Imagination, actor_critic_loss  # noqa: E402
from agents.rem.sampler import frames_batch, PositionSampler  # noqa: E402
from harness.envs import make_env  # noqa: E402
from harness.envs import protocol as protocols  # noqa: E402
from harness.evaluate import evaluate  # noqa: E402
from harness.replay import Replay  # noqa: E402
from harness.store import CellLock, RunStore  # noqa: E402
from harness.suite import RunSpec  # noqa: E402

CATCH = protocols.eval_protocol("sanity", "catch", {})


def catch_info() -> EnvInfo:
    return EnvInfo(family="sanity", name="catch", num_actions=3, obs_shape=(3, 64, 64),
                   action_meanings=("NOOP", "LEFT", "RIGHT"))


def with_controller(config: RemConfig, overrides: list[str], every: int) -> RemConfig:
    """`config` with `--set KEY=VALUE` controller fields (coerced as the harness's `--set` does)."""
    values = dict(item.partition("=")[::2] for item in overrides)
    try:
        config = apply_overrides(config, {f"controller.{key}": value for key, value in values.items()}, where="--set")
    except (KeyError, ValueError) as err:
        raise SystemExit(str(err).strip('"')) from None
    return dataclasses.replace(config, controller=dataclasses.replace(config.controller, updates_per_epoch=every))


def play(agent: RemAgent, episodes: int, seed: int) -> float:
    """Mean raw return of the harness's evaluation (the same episodes at every call)."""
    rows = evaluate(agent, CATCH, episodes, num_envs=episodes, run_seed=seed, round_index=0)
    return float(np.mean([row["return"] for row in rows]))


def train_v_on_random_play(agent: RemAgent, updates: int, seed: int) -> None:
    """`tiny`'s V schedule in short: its batch and rate on 4,000 random Catch steps."""
    replay, env, rng = Replay((3, 64, 64)), make_env(CATCH, seed=seed), np.random.default_rng(seed)
    replay.start_episode(0, env.reset()[0])
    for _ in range(4000):
        action = int(rng.integers(3))
        obs, reward, terminated, truncated, _ = env.step(action)
        replay.add_step(0, action, reward, terminated, truncated, obs)
        if terminated or truncated:
            replay.start_episode(0, env.reset()[0])
    tc, sampler = agent.config.tokenizer, PositionSampler(replay, 0, rng)
    agent.tokenizer.train()
    for _ in range(updates):
        loss, _ = agent.tokenizer.loss(frames_batch(replay, sampler.draw(tc.batch_size), agent.device), None)
        agent.tokenizer_opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_and_step(agent.tokenizer_opt, agent.tokenizer.parameters(), tc.grad_clip)
    agent.tokenizer.eval()


class GameImagination:
    """Batch-many real Catch envs that carry on across updates; each update rolls C for `steps` decisions."""

    def __init__(self, agent: RemAgent, seed: int):
        self.agent, cc = agent, agent.config.controller
        self.steps = cc.imagine_horizon - agent.config.world_model.context_blocks + 1
        self.envs = [make_env(CATCH, seed=seed + i) for i in range(cc.batch_size)]
        self.obs = np.stack([env.reset()[0] for env in self.envs])

    def grid(self) -> torch.Tensor:
        tokenizer = self.agent.tokenizer
        return tokenizer.code_grid(tokenizer.tokenize(torch.as_tensor(self.obs).float().div(255)))

    def update(self) -> dict[str, float]:
        agent, cc = self.agent, self.agent.config.controller
        state = agent.controller.initial_state(len(self.envs), agent.device)
        columns: dict[str, list[torch.Tensor]] = {"logits": [], "values": [], "actions": [], "rewards": [], "ends": []}
        for _ in range(self.steps):
            logits, value, state = agent.controller.observe(self.grid(), state)
            actions = torch.multinomial(torch.softmax(logits.detach() / cc.imagine_temperature, -1), 1)[:, 0]
            state = agent.controller.act_step(actions, state)
            rewards, ends = np.zeros(len(self.envs)), np.zeros(len(self.envs))
            for i, env in enumerate(self.envs):
                self.obs[i], rewards[i], terminated, truncated, _ = env.step(int(actions[i]))
                ends[i] = terminated
                if terminated or truncated:
                    self.obs[i] = env.reset()[0]
            for key, column in zip(columns, (logits, value, actions, torch.tensor(rewards).float(),
                                             torch.tensor(ends).float())):
                columns[key].append(column)
        stacked = {key: torch.stack(column, dim=1) for key, column in columns.items()}
        rollout = Imagination(stacked["logits"], stacked["values"], stacked["actions"], stacked["rewards"],
                              stacked["ends"], torch.empty(0), 0)
        loss, metrics = actor_critic_loss(rollout, cc)
        agent.controller_opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_and_step(agent.controller_opt, agent.controller.parameters(), cc.grad_clip)
        return {key: float(value) for key, value in metrics.items()}


def load_run(run_dir: Path, agent: RemAgent) -> Replay:
    """The run's V and M into `agent` (its C stays fresh) and the run's replay at the same checkpoint."""
    if CellLock.is_held(run_dir):
        raise SystemExit(f"{run_dir}: the run is live (lock held); probe it once it has stopped")
    store = RunStore(run_dir)
    for path, payload in store.iter_valid_checkpoints():
        agent.tokenizer.load_state_dict(payload["agent"]["tokenizer"])
        agent.world_model.load_state_dict(payload["agent"]["world_model"])
        replay = Replay((3, 64, 64), len(payload["obs"]), directory=store.replay_dir)
        replay.load_state_dict(payload["replay"])  # truncates frames past the checkpoint, as a resume would
        print(f"{path}: V and M loaded, replay of {replay.num_steps} steps")
        return replay
    raise SystemExit(f"{run_dir}/checkpoints: no valid checkpoint to load")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imagination", choices=("game", "model"), default="game")
    parser.add_argument("--run", type=Path, help="a REM Catch run directory (V for `game`, V and M for `model`)")
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--every", type=int, default=100, help="updates between evaluations")
    parser.add_argument("--episodes", type=int, default=32, help="real episodes per evaluation")
    parser.add_argument("--v-updates", type=int, default=600, help="`game` without --run: V updates on random play")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a controller field")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.imagination == "model" and args.run is None:
        parser.error("--imagination model needs --run RUN_DIR")
    config = PROFILES["tiny"]()
    if args.run is not None:
        spec = RunSpec.from_dict(json.loads((args.run / "run.json").read_text())["spec"])
        if spec.agent != "rem" or spec.env != "catch":
            raise SystemExit(f"{args.run}/run.json: a {spec.agent} run on {spec.env}; this probe needs REM on catch")
        config = apply_overrides(PROFILES[spec.profile](), spec.overrides, where=f"{args.run}/run.json")
    agent = RemAgent(with_controller(config, args.set, args.every), catch_info(), seed=args.seed)
    print(f"controller: {agent.config.controller}")
    started = time.time()
    if args.run is not None:
        replay = load_run(args.run, agent)
    else:
        train_v_on_random_play(agent, args.v_updates, args.seed)
        print(f"V: {args.v_updates} updates on random play in {time.time() - started:.0f} s")
    game = GameImagination(agent, seed=args.seed + 100) if args.imagination == "game" else None
    agent.controller.train()
    print(f"updates 0: real return {play(agent, args.episodes, args.seed):+.2f}", flush=True)
    started = time.time()
    for done in range(args.every, args.updates + 1, args.every):
        if game is not None:
            rows = [game.update() for _ in range(args.every)]
            metrics = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
        else:
            metrics = {key: float(value) for key, value in agent.train_controller(replay).items()}
        score = play(agent, args.episodes, args.seed)
        agent.controller.train()
        print(f"updates {done} ({time.time() - started:.0f} s): imagined return "
              f"{metrics['controller/imagined_return']:+.2f}, entropy {metrics['controller/entropy']:.2f}, "
              f"value loss {metrics['controller/value']:.3f}, real return {score:+.2f}", flush=True)


if __name__ == "__main__":
    main()
