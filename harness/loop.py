"""One run = one cell: collect -> agent.update -> evaluate -> checkpoint, resumable at any moment.

`run_cell(spec, runs_dir)` is the only entry point; every executor (debug, local, slurm) calls it.
The checkpoint holds the agent, the replay index and staged episodes, the environments' own
states, every RNG, the open episodes' accumulators and the logs' lengths, so a run killed at any
moment and resumed from its last checkpoint continues exactly as if it had never stopped.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.base import Agent, EpochPlan, EnvInfo, Progress, apply_overrides, get_agent_class
from harness.envs import VectorEnv, action_meanings, make_env
from harness.envs import protocol as protocols
from harness.evaluate import evaluate
from harness.provenance import device_name, job_info, provenance
from harness.replay import Replay
from harness.store import CellLock, RunDirError, RunStore, now_iso
from harness.suite import RunSpec


PROGRESS_EVERY_SECONDS = 10.0  # run.json progress is rewritten at most this often (and at checkpoints)


@dataclasses.dataclass
class LoopState:
    """The harness's own counters, checkpointed with everything else."""

    epoch: int = 0
    env_steps: int = 0
    eval_round: int = 0
    next_eval_at: int = 0
    training_complete: bool = False
    wall_seconds: float = 0.0
    train_episodes: int = 0
    epoch_open: bool = False  # an epoch was planned and has not finished (a stop came during its collection)
    collect_left: int = 0  # steps that epoch still has to collect
    collect_random: bool = False  # that epoch's plan.random_actions
    collect_excess: int = 0  # steps the last collection took beyond its target, deducted from the next one


class _Stop(Exception):
    """Raised at a safe point when the worker was asked to stop (SIGTERM / SIGINT)."""


def build_agent(spec: RunSpec, device: str) -> tuple[Agent, EnvInfo, protocols.Protocol, protocols.Protocol]:
    """The agent of a cell with its env info and its training and evaluation protocols."""
    agent_class = get_agent_class(spec.agent)
    config = apply_overrides(agent_class.profiles[spec.profile](), spec.overrides, where=f"cell {spec.agent}")
    if _as_json(dataclasses.asdict(config)) != _as_json(spec.config):  # tuples come back from JSON as lists
        raise RunDirError(f"{spec.agent}/{spec.profile}: the profile resolved to another config than the one "
                          "recorded for this cell (the code changed since the sweep was expanded)")
    eval_protocol = protocols.eval_protocol(spec.family, spec.env, dict(agent_class.observation))
    probe = make_env(eval_protocol, seed=0)
    env_info = EnvInfo(family=spec.family, name=spec.env, num_actions=int(probe.action_space.n),
                       obs_shape=tuple(probe.observation_space.shape),
                       action_meanings=tuple(action_meanings(eval_protocol)))
    probe.close()
    agent = agent_class(config, env_info, device=device, seed=spec.seed)
    train_protocol = protocols.train_protocol(spec.family, spec.env, agent.train_protocol(), spec.train_protocol,
                                              dict(agent_class.observation))
    return agent, env_info, train_protocol, eval_protocol


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)


def _rng_states() -> dict[str, Any]:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class Run:
    """The live state of one cell's run (see run_cell)."""

    def __init__(self, spec: RunSpec, store: RunStore, device: str, show_progress: bool, stop: threading.Event):
        self.spec = spec
        self.store = store
        self.device = device
        self.show_progress = show_progress
        self.agent, self.env_info, self.train_protocol, self.eval_protocol = build_agent(spec, device)
        self.num_envs = self.agent.num_collect_envs()
        seeds = np.random.SeedSequence([spec.seed, 104_729]).generate_state(self.num_envs)
        self.env_seeds = [int(s) for s in seeds]
        self.envs = VectorEnv([make_env(self.train_protocol, s) for s in self.env_seeds])
        self.replay = Replay(self.env_info.obs_shape, self.num_envs, directory=store.replay_dir)
        self.rng = np.random.default_rng([spec.seed, 15_485_863])  # uniform random collection actions
        self.loop = LoopState(next_eval_at=spec.evaluation["every_steps"] or spec.budget_steps + 1)
        self.obs = np.zeros((self.num_envs, *self.env_info.obs_shape), np.uint8)
        self.act_state: Any = None
        self.first = np.ones(self.num_envs, dtype=bool)
        self.resets_together = self.agent.resets_envs_together()
        self.idle = np.zeros(self.num_envs, dtype=bool)  # episode ended, waiting for the others (resets_together)
        self.episode_return = np.zeros(self.num_envs)  # raw reward of the current (replay) episode
        self.episode_length = np.zeros(self.num_envs, dtype=np.int64)
        self.game_return = np.zeros(self.num_envs)  # raw reward of the current game (across lives)
        self.started = time.time()
        self.last_checkpoint = time.time()
        self.stop = stop  # set (by a signal handler or another thread) to checkpoint and stop at a safe point
        self._bar: Any = None  # tqdm progress bar, in the foreground only

    # ---- checkpoint ------------------------------------------------------------------------
    def checkpoint_payload(self) -> dict[str, Any]:
        self.replay.flush()
        self.store.metrics.sync()
        self.store.episodes.sync()
        loop = dataclasses.replace(self.loop, wall_seconds=self.loop.wall_seconds + time.time() - self.started)
        return {
            "cell_id": self.spec.cell_id, "loop": dataclasses.asdict(loop), "agent": self.agent.state_dict(),
            "replay": self.replay.state_dict(), "envs": self.envs.get_state(), "obs": self.obs.copy(),
            "act_state": self.act_state, "first": self.first.copy(), "idle": self.idle.copy(),
            "episode_return": self.episode_return.copy(), "episode_length": self.episode_length.copy(),
            "game_return": self.game_return.copy(),
            "rng": self.rng.bit_generator.state, "global_rng": _rng_states(),
            "log_sizes": {"metrics": self.store.metrics.size(), "episodes": self.store.episodes.size()},
        }

    def save_checkpoint(self) -> None:
        self.store.save_checkpoint(self.loop.epoch, self.checkpoint_payload())
        self.last_checkpoint = time.time()

    def restore(self) -> bool:
        for path, payload in self.store.iter_valid_checkpoints():
            if payload.get("cell_id") != self.spec.cell_id:
                raise RunDirError(f"{path}: checkpoint of another cell ({payload.get('cell_id')})")
            self.loop = LoopState(**payload["loop"])
            self.agent.load_state_dict(payload["agent"])
            self.replay.load_state_dict(payload["replay"])
            self.envs.set_state(payload["envs"])
            self.obs = payload["obs"]
            self.act_state = payload["act_state"]
            self.first = payload["first"]
            self.idle = payload.get("idle", np.zeros(self.num_envs, dtype=bool))  # absent before idle envs existed
            self.episode_return = payload["episode_return"]
            self.episode_length = payload["episode_length"]
            self.game_return = payload["game_return"]
            self.rng.bit_generator.state = payload["rng"]
            _set_rng_states(payload["global_rng"])
            self.store.metrics.truncate(payload["log_sizes"]["metrics"])
            self.store.episodes.truncate(payload["log_sizes"]["episodes"])
            self.store.log(f"resumed from {path.name} at epoch {self.loop.epoch}, {self.loop.env_steps} env steps")
            self.started = time.time()  # loop.wall_seconds already holds the time before the checkpoint
            return True
        return False

    def start_fresh(self) -> None:
        self.obs, _ = self.envs.reset_all(self.env_seeds)
        for i in range(self.num_envs):
            self.replay.start_episode(i, self.obs[i])
        self.act_state = self.agent.initial_state(self.num_envs)
        self.store.metrics.truncate(0)
        self.store.episodes.truncate(0)

    # ---- the loop --------------------------------------------------------------------------
    def progress(self) -> Progress:
        return Progress(epoch=self.loop.epoch, env_steps=self.loop.env_steps, budget_steps=self.spec.budget_steps,
                        frames_per_step=self.spec.frames_per_step)

    def collect(self, steps: int, random_actions: bool) -> None:
        """Collects at least `steps` env steps (a vector step counts the envs it stepped); the excess over
        `steps` is deducted from the next collection."""
        target = self.loop.env_steps + steps
        while self.loop.env_steps < target:
            if random_actions:
                actions = self.rng.integers(0, self.env_info.num_actions, size=self.num_envs)
            else:
                actions, self.act_state = self.agent.act(self.obs, self.act_state, "collect", self.first)
                self.first[:] = False
            stepped = np.flatnonzero(~self.idle).tolist()  # Python ints: env_index is logged as an int
            step_obs, rewards, terminated, truncated, infos = self.envs.step(actions, ~self.idle)
            next_obs = self.obs.copy()  # idle envs keep showing their last frame, as the official collectors do
            next_obs[stepped] = step_obs
            rows = []
            for k, i in enumerate(stepped):
                raw = float(infos[k]["raw_reward"])
                self.episode_return[i] += raw
                self.game_return[i] += raw
                self.episode_length[i] += 1
                self.replay.add_step(i, int(actions[i]), float(rewards[k]), bool(terminated[k]), bool(truncated[k]),
                                     step_obs[k])
                if terminated[k] or truncated[k]:
                    rows.append(self._train_episode_row(i, infos[k], self.loop.env_steps + len(stepped)))
                    if self.resets_together:
                        self.idle[i] = True
                    else:
                        self._reset_env(i, next_obs)
            if self.idle.all():
                for i in range(self.num_envs):
                    self._reset_env(i, next_obs)
                self.idle[:] = False
            self.obs = next_obs
            self.loop.env_steps += len(stepped)
            self.store.episodes.append(rows)
            self.loop.collect_left = max(0, target - self.loop.env_steps)
            self.loop.collect_excess = max(0, self.loop.env_steps - target)
            self._tick()

    def _reset_env(self, i: int, next_obs: np.ndarray) -> None:
        next_obs[i] = self.envs.reset_one(i)[0]
        self.replay.start_episode(i, next_obs[i])
        self.first[i] = True

    def _train_episode_row(self, i: int, info: dict[str, Any], env_steps: int) -> dict[str, Any]:
        game_over = bool(info.get("game_over", True))
        row = {"kind": "train", "env_steps": env_steps, "frames": env_steps * self.spec.frames_per_step,
               "return": float(self.episode_return[i]), "length": int(self.episode_length[i]),
               "game_over": game_over, "env_index": i, "wall_time": self.elapsed()}
        if game_over:
            row["game_return"] = float(self.game_return[i])
            self.game_return[i] = 0.0
        if "achievements" in info:
            row["achievements"] = {k: int(v) for k, v in info["achievements"].items()}
        self.episode_return[i], self.episode_length[i] = 0.0, 0
        self.loop.train_episodes += 1
        return row

    def run_evaluation(self, kind: str, episodes: int) -> list[dict[str, Any]]:
        results = evaluate(self.agent, self.eval_protocol, episodes, self.spec.evaluation["num_envs"],
                           self.spec.seed, self.loop.eval_round)
        rows = [{"kind": "eval" if kind == "periodic" else kind, "env_steps": self.loop.env_steps,
                 "frames": self.loop.env_steps * self.spec.frames_per_step, "eval_round": self.loop.eval_round,
                 "wall_time": self.elapsed(), **r} for r in results]
        self.store.episodes.append(rows)
        self.loop.eval_round += 1
        mean = float(np.mean([r["return"] for r in results]))
        self.say(f"{kind} evaluation at {self.loop.env_steps} steps: mean return {mean:.3f} over {len(results)}")
        return rows

    def elapsed(self) -> float:
        return self.loop.wall_seconds + time.time() - self.started

    def say(self, message: str) -> None:
        self.store.log(message)
        if not self.show_progress:
            print(f"[{self.spec.agent}/{self.spec.env}/seed_{self.spec.seed}] {message}", flush=True)

    def _tick(self) -> None:
        if self.stop.is_set():
            raise _Stop()
        if self._bar is not None:
            self._bar.n = min(self.loop.env_steps, self.spec.budget_steps)
            self._bar.refresh()

    def record_progress(self, status: str) -> None:
        wall = self.elapsed()
        frames = self.loop.env_steps * self.spec.frames_per_step
        gpus = torch.cuda.device_count() if self.device.startswith("cuda") else 0
        self.store.update(status=status, progress={
            "env_steps": self.loop.env_steps, "epoch": self.loop.epoch, "updated_at": now_iso(),
            "fraction": min(1.0, self.loop.env_steps / self.spec.budget_steps),
            "training_complete": self.loop.training_complete},
            wall_seconds=wall, fps=frames / wall if wall > 0 else 0.0, gpu_hours=wall / 3600 * gpus)

    def train(self) -> None:
        if self.show_progress:
            from tqdm import tqdm

            self._bar = tqdm(total=self.spec.budget_steps, initial=min(self.loop.env_steps, self.spec.budget_steps),
                             desc=f"{self.spec.agent}/{self.spec.env}/s{self.spec.seed}", unit="step", file=sys.stderr)
        last_line = last_progress = time.time()
        every = self.spec.evaluation["every_steps"]
        while not self.loop.training_complete:
            if self.loop.epoch_open:  # finish the epoch a stop interrupted, as it was planned
                plan = EpochPlan(collect_steps=self.loop.collect_left, random_actions=self.loop.collect_random)
            else:
                plan = self.agent.plan_epoch(self.progress())
            if plan is None:
                self.loop.training_complete = True
            else:
                planned = plan.collect_steps
                if not self.loop.epoch_open:  # a new plan pays back what the last collection overshot
                    paid = min(planned, self.loop.collect_excess)
                    planned, self.loop.collect_excess = planned - paid, self.loop.collect_excess - paid
                steps = max(0, min(planned, self.spec.budget_steps - self.loop.env_steps))
                self.loop.epoch_open = True
                self.loop.collect_left, self.loop.collect_random = steps, plan.random_actions
                if steps:
                    self.collect(steps, plan.random_actions)
                metrics = self.agent.update(self.replay, self.progress())
                self.loop.epoch += 1
                self.store.metrics.append({"epoch": self.loop.epoch, "env_steps": self.loop.env_steps,
                                           "wall_time": self.elapsed(), **{k: float(v) for k, v in metrics.items()}})
                if every and self.loop.env_steps >= self.loop.next_eval_at:
                    # One evaluation however many marks the epoch crossed: the policy is the same for all of them.
                    self.run_evaluation("periodic", self.spec.evaluation["episodes"])
                    crossed = (self.loop.env_steps - self.loop.next_eval_at) // every + 1
                    self.loop.next_eval_at += crossed * every
                self.loop.epoch_open = False
            self._tick()
            due = time.time() - self.last_checkpoint >= self.spec.checkpoint_every_minutes * 60
            if due or self.loop.training_complete:
                self.save_checkpoint()
            if due or self.loop.training_complete or time.time() - last_progress > PROGRESS_EVERY_SECONDS:
                self.record_progress("running")
                last_progress = time.time()
            if not self.show_progress and time.time() - last_line > 60:
                self.say(f"epoch {self.loop.epoch}, {self.loop.env_steps}/{self.spec.budget_steps} steps, "
                         f"{self.loop.env_steps * self.spec.frames_per_step / max(self.elapsed(), 1e-9):.0f} fps")
                last_line = time.time()
        if self._bar is not None:
            self._bar.close()
        self.run_evaluation("final", self.spec.evaluation["final_episodes"])
        self.save_checkpoint()

    def close(self) -> None:
        self.envs.close()


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def run_cell(spec: RunSpec, runs_dir: Path, *, device: str | None = None, deterministic: bool = False,
             show_progress: bool | None = None, handle_signals: bool = True,
             stop: threading.Event | None = None) -> str:
    """Runs (or resumes) one cell in its run directory; returns its final status.

    Returns "done", "locked" (another live worker holds the cell), or "stopped" (checkpointed and
    stopped because `stop` was set, or SIGTERM/SIGINT arrived when `handle_signals`). Exceptions mark
    the run failed in run.json and propagate. Under submitit, leave `handle_signals` off: submitit
    owns the signals, and CellJob sets `stop` when it is told to checkpoint.
    """
    stop = stop or threading.Event()
    run_dir = spec.run_dir(Path(runs_dir))
    store = RunStore(run_dir)
    lock = CellLock(run_dir)
    job = job_info()
    if not lock.acquire({"host": os.uname().nodename, "pid": os.getpid(), **job}):
        return "locked"
    try:
        existing = store.read()
        if existing is not None and existing.get("cell_id") != spec.cell_id:
            raise RunDirError(f"{run_dir}: holds cell {existing.get('cell_id')} (another config, budget or "
                              f"schedule) and this is cell {spec.cell_id}; it is never overwritten: use another "
                              "--runs-dir, or move that directory away")
        if existing is not None and existing.get("status") == "done":
            return "done"
        device = device or _default_device()
        _seed_everything(spec.seed, deterministic)
        run = Run(spec, store, device, show_progress if show_progress is not None else sys.stderr.isatty(), stop)
        try:
            _refuse_changed_protocols(existing or {}, run, store)
        except RunDirError:
            run.close()
            raise
        attempts = list((existing or {}).get("attempts", []))
        attempts.append({"started_at": now_iso(), "host": os.uname().nodename, "pid": os.getpid(), **job})
        store.write({
            **(existing or {}), "cell_id": spec.cell_id, "spec": spec.to_dict(), "suite": spec.suite,
            "agent": spec.agent, "profile": spec.profile, "env": spec.env, "family": spec.family, "seed": spec.seed,
            "budget_steps": spec.budget_steps, "frames_per_step": spec.frames_per_step, "config": spec.config,
            "agent_facts": run.agent.describe(), "train_protocol": protocols.to_dict(run.train_protocol),
            "eval_protocol": protocols.to_dict(run.eval_protocol),
            "eval_fingerprint": protocols.fingerprint(run.eval_protocol),
            "env_seeds": run.env_seeds, "eval_seed_base": spec.seed, "num_collect_envs": run.num_envs,
            "device": device_name(device), "deterministic": deterministic, "provenance": provenance(),
            "attempts": attempts, "job_id": job.get("job_id"), "status": "running",
        })
        previous = _install_stop_handlers(stop) if handle_signals else {}
        try:
            if not run.restore():
                run.start_fresh()
                store.log(f"started fresh (cell {spec.cell_id})")
            run.train()
        except _Stop:
            store.log("stop requested: checkpointing and exiting")
            run.save_checkpoint()
            run.record_progress("stopped")
            _end_attempt(store, "stopped")
            return "stopped"
        finally:
            _restore_handlers(previous)
            run.close()
        run.record_progress("done")
        store.update(finished_at=now_iso())
        _end_attempt(store, "done")
        store.log("done")
        return "done"
    except BaseException as err:
        if not isinstance(err, RunDirError) and store.run_json.exists():
            store.update(status="failed", error=f"{type(err).__name__}: {err}")
            _end_attempt(store, "failed")
            store.log(f"failed: {type(err).__name__}: {err}")
        raise
    finally:
        lock.release()


def _refuse_changed_protocols(recorded: dict[str, Any], run: Run, store: RunStore) -> None:
    """A run continues only on the environments it started on.

    The protocols are rebuilt from today's code at every attempt; if a default changed since run.json
    recorded them, resuming would silently switch environments mid-run. Raises RunDirError naming the knobs.
    """
    changed = protocols.drift(recorded, run.train_protocol, run.eval_protocol)
    if changed:
        raise RunDirError(f"{store.run_json}: {protocols.DRIFT}:\n" + "\n".join(f"  {line}" for line in changed)
                          + "\nNothing was changed. Resume it with the code it started with (run.json: provenance), "
                          "or start it again under another --runs-dir.")


def _end_attempt(store: RunStore, outcome: str) -> None:
    data = store.read() or {}
    attempts = data.get("attempts") or [{}]
    attempts[-1] = {**attempts[-1], "outcome": outcome, "ended_at": now_iso()}
    store.update(attempts=attempts)


def _install_stop_handlers(stop: threading.Event) -> dict[int, Any]:
    """SIGTERM/SIGINT ask the loop to checkpoint and stop at its next safe point (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, request_stop)
    return previous


def _restore_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
