"""What a `run` will do (skip done, resume partial, retry failed) and the checks before it submits."""
from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.launch.cells import RESUMABLE, CellState, grid_states
from harness.suite import RunSpec, Suite


@dataclass
class LaunchPlan:
    to_run: list[RunSpec] = field(default_factory=list)
    skipped: list[tuple[CellState, str]] = field(default_factory=list)
    states: list[CellState] = field(default_factory=list)


def plan_launch(cells: list[RunSpec], runs_dir: Path, max_failures: int, retry_failed: bool) -> LaunchPlan:
    plan = LaunchPlan(states=grid_states(cells, runs_dir))
    for state in plan.states:
        assert state.spec is not None
        if state.state in RESUMABLE:
            if state.state == "failed" and state.failures >= max_failures and not retry_failed:
                plan.skipped.append((state, f"failed {state.failures} times (use --retry-failed)"))
            else:
                plan.to_run.append(state.spec)
        else:
            reason = {"done": "done", "running": "running (lock held by a live worker)",
                      "queued": f"queued as job {state.job_id}"}.get(state.state, f"{state.state}: {state.detail}")
            plan.skipped.append((state, reason))
    return plan


def check_runs_dir(runs_dir: Path) -> str | None:
    """None if runs_dir is (or can be made) writable, else why not (nothing is created)."""
    path = Path(runs_dir).resolve()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"--runs-dir {runs_dir}: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"--runs-dir {runs_dir}: {existing} is not writable"
    if existing == path:
        try:
            tempfile.TemporaryFile(dir=path).close()
        except OSError as err:
            return f"--runs-dir {runs_dir}: cannot write there ({err})"
    return None


def preflight(suite: Suite, cells: list[RunSpec], runs_dir: Path, cluster_profile: str | None) -> list[str]:
    """Problems that would make the sweep fail after submission; empty when all is well."""
    from harness.launch.profile import ClusterProfileError, load_cluster_profile

    problems: list[str] = []
    problem = check_runs_dir(runs_dir)
    if problem:
        problems.append(problem)
    if cluster_profile is not None:
        try:
            load_cluster_profile(cluster_profile)
        except ClusterProfileError as err:
            problems.append(str(err))
    agents: dict[tuple[str, str], Any] = {}  # one (costly) agent per (agent, profile), re-aimed per env
    built: set[Any] = set()  # protocols already built once (agents often share them)
    cell_protocols: dict[tuple[str, str, str], tuple[Any, Any] | None] = {}  # (train, eval) per agent/profile/env
    for spec in cells:
        key = (spec.agent, spec.profile, spec.env)
        if key not in cell_protocols:
            try:
                cell_protocols[key] = _build_cell(spec, agents, built, problems)
            except Exception as err:  # report every unbuildable env/agent, do not stop at the first
                cell_protocols[key] = None
                problems.append(f"{spec.agent}/{spec.profile} on {spec.env}: cannot build under its protocol: "
                                f"{type(err).__name__}: {err}")
        if cell_protocols[key] is not None:
            problems += _protocol_drift(spec, runs_dir, *cell_protocols[key])
    return sorted(set(problems))


def _build_cell(spec: RunSpec, agents: dict[tuple[str, str], Any], built: set[Any],
                problems: list[str]) -> tuple[Any, Any]:
    """The cell's (train, eval) protocols, with its agent built once per (agent, profile) and each protocol's
    env built once; missing required files are appended to `problems`."""
    from agents.base import EnvInfo, apply_overrides, get_agent_class
    from harness.envs import action_meanings, make_env, num_actions
    from harness.envs import protocol as protocols

    agent_class = get_agent_class(spec.agent)
    eval_protocol = protocols.eval_protocol(spec.family, spec.env, dict(agent_class.observation))
    info = EnvInfo(spec.family, spec.env, num_actions(eval_protocol), eval_protocol.obs.shape,
                   tuple(action_meanings(eval_protocol)))
    if (spec.agent, spec.profile) not in agents:
        config = apply_overrides(agent_class.profiles[spec.profile](), spec.overrides, where=spec.agent)
        agents[(spec.agent, spec.profile)] = agent_class(config, info, device="cpu", seed=0)
        for required in agents[(spec.agent, spec.profile)].required_files():
            if not Path(required.path).expanduser().exists():
                problems.append(f"{spec.agent}/{spec.profile}: missing {required.description} at "
                                f"{required.path}. {required.how_to_get}")
    agent = copy.copy(agents[(spec.agent, spec.profile)])
    agent.env_info = info  # train_protocol() reads only config and env_info (agents/base.py)
    train = protocols.train_protocol(spec.family, spec.env, agent.train_protocol(), spec.train_protocol,
                                     dict(agent_class.observation))
    for protocol in (eval_protocol, train):
        if protocol not in built:
            env = make_env(protocol, seed=0)
            env.reset(seed=0)
            env.close()
            built.add(protocol)
    return train, eval_protocol


def _protocol_drift(spec: RunSpec, runs_dir: Path, train: Any, evaluation: Any) -> list[str]:
    """A cell to resume whose run.json recorded other protocols than today's code builds (run_cell refuses it)."""
    from harness.envs import protocol as protocols
    from harness.store import read_json

    run_json = spec.run_dir(runs_dir) / "run.json"
    if not run_json.exists():
        return []
    changed = protocols.drift(read_json(run_json), train, evaluation)
    return [f"{run_json}: {protocols.DRIFT}: {'; '.join(changed)}"] if changed else []
