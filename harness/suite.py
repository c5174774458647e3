"""Benchmark suites: YAML files validated on load and expanded into RunSpec cells.

A suite names an env family and its envs, the budget, the evaluation schedule, the seeds and the
agents with their config profiles. Every error names the file, the key and what was expected.

    name: atari100k
    family: atari                 # atari | crafter | sanity
    envs: [Alien, Amidar, ...]    # or, mixing families: envs: {atari: [Pong], crafter: [crafter]}
    budget: {agent_steps: 100000} # or {frames: 400000}
    evaluation: {every_steps: 10000, episodes: 16, final_episodes: 100, num_envs: 8}
    seeds: 5                      # or a list [0, 1, 2]
    agents:
      iris: {profile: atari100k}
      rem: {profile: atari100k, set: {world_model.num_layers: 10}}
    train_protocol: {}            # optional knob overrides for every agent's training envs
    report_budgets_frames: [1000000, ...]  # optional: budgets the report reads results at
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agents.base import apply_overrides, get_agent_class
from harness.envs import protocol as protocols

FRAMES_PER_STEP = {"atari": 4, "crafter": 1, "sanity": 1}
SUITE_KEYS = {"name", "family", "envs", "budget", "evaluation", "seeds", "agents", "train_protocol",
              "report_budgets_frames", "checkpoint_every_minutes", "description"}
EVAL_KEYS = {"every_steps", "episodes", "final_episodes", "num_envs"}


class SuiteError(ValueError):
    """A suite file (or a command-line selection on it) is malformed; the message says where."""


@dataclass(frozen=True)
class Evaluation:
    every_steps: int  # run a periodic evaluation each time this many agent steps have been collected
    episodes: int  # episodes per periodic evaluation (sample-efficiency curves)
    final_episodes: int  # episodes of the final evaluation (the reported score)
    num_envs: int  # parallel evaluation environments


@dataclass(frozen=True)
class AgentEntry:
    profile: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    path: Path
    name: str
    envs: tuple[tuple[str, str], ...]  # (family, env name)
    budget_steps: dict[str, int]  # agent steps per env family
    evaluation: Evaluation
    seeds: tuple[int, ...]
    agents: dict[str, AgentEntry]
    train_protocol: dict[str, Any]
    report_budgets_frames: tuple[int, ...]
    checkpoint_every_minutes: float

    @property
    def env_names(self) -> list[str]:
        return [name for _, name in self.envs]

    @property
    def families(self) -> list[str]:
        return sorted({family for family, _ in self.envs})


def _load_envs(path: Path, data: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """`envs: [..]` with `family: X`, or `envs: {family: [..], ...}` for a suite mixing families."""
    from harness.envs import env_names

    raw = data["envs"]
    if isinstance(raw, dict):
        _expect("family" not in data, path, "family", "absent when envs is a mapping family -> envs", data.get("family"))
        groups = raw
    else:
        _expect("family" in data, path, "family", "to be present when envs is a list", "missing")
        groups = {data["family"]: raw}
    refs: list[tuple[str, str]] = []
    for family, envs in groups.items():
        key = "family" if not isinstance(raw, dict) else f"envs.{family}"
        _expect(family in FRAMES_PER_STEP, path, key, f"an env family, one of {sorted(FRAMES_PER_STEP)}", family)
        where = "envs" if not isinstance(raw, dict) else f"envs.{family}"
        _expect(isinstance(envs, list) and envs and all(isinstance(e, str) for e in envs), path, where,
                "a non-empty list of env names", envs)
        known = env_names(family)
        for env in envs:
            _expect(env in known, path, where, f"{family} env names ({', '.join(known)})", env)
        refs.extend((family, env) for env in envs)
    names = [name for _, name in refs]
    _expect(len(set(names)) == len(names), path, "envs", "no duplicates", names)
    return tuple(refs)


@dataclass(frozen=True)
class RunSpec:
    """One cell of a sweep: everything a worker needs to run it, JSON-serialisable."""

    suite: str
    suite_path: str
    agent: str
    profile: str
    env: str
    family: str
    seed: int
    budget_steps: int
    frames_per_step: int
    evaluation: dict[str, int]
    config: dict[str, Any]  # the resolved agent config (profile + overrides)
    overrides: dict[str, Any]
    train_protocol: dict[str, Any]  # suite-level knob overrides (agent ones are added at run time)
    checkpoint_every_minutes: float

    @property
    def cell_id(self) -> str:
        """Stable hash of (suite, agent, env, seed, resolved config, budget, schedule, protocol)."""
        identity = {"suite": self.suite, "agent": self.agent, "env": self.env, "seed": self.seed,
                    "config": self.config, "budget_steps": self.budget_steps, "evaluation": self.evaluation,
                    "train_protocol": self.train_protocol}
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def run_dir(self, runs_dir: Path) -> Path:
        return Path(runs_dir) / self.suite / self.agent / self.env / f"seed_{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSpec":
        return cls(**data)


def _expect(condition: bool, path: Path, key: str, expected: str, got: Any) -> None:
    if not condition:
        raise SuiteError(f"{path}: key '{key}': expected {expected}, got {got!r}")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{path}: suite file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SuiteError(f"{path}: not valid YAML: {err}") from None
    _expect(isinstance(data, dict), path, "<top level>", "a mapping of suite keys", type(data).__name__)
    unknown = sorted(set(data) - SUITE_KEYS)
    _expect(not unknown, path, ",".join(unknown), f"one of {sorted(SUITE_KEYS)}", "unknown key")
    for key in ("name", "envs", "budget", "evaluation", "seeds", "agents"):
        _expect(key in data, path, key, "to be present", "missing")

    name = data["name"]
    _expect(isinstance(name, str) and name.isidentifier(), path, "name", "an identifier-like string", name)
    env_refs = _load_envs(path, data)
    families = sorted({family for family, _ in env_refs})

    budget = data["budget"]
    _expect(isinstance(budget, dict) and len(budget) == 1 and set(budget) <= {"agent_steps", "frames"}, path,
            "budget", "a mapping with exactly one of 'agent_steps' or 'frames'", budget)
    (unit, amount), = budget.items()
    _expect(_positive_int(amount), path, f"budget.{unit}", "a positive integer", amount)
    if unit == "frames":
        for family in families:
            _expect(amount % FRAMES_PER_STEP[family] == 0, path, "budget.frames",
                    f"a multiple of {FRAMES_PER_STEP[family]} ({family} frames per agent step)", amount)
    budget_steps = {family: amount if unit == "agent_steps" else amount // FRAMES_PER_STEP[family]
                    for family in families}

    evaluation = data["evaluation"]
    _expect(isinstance(evaluation, dict), path, "evaluation", "a mapping", evaluation)
    unknown = sorted(set(evaluation) - EVAL_KEYS)
    _expect(not unknown, path, "evaluation." + ",".join(unknown), f"one of {sorted(EVAL_KEYS)}", "unknown key")
    for key in EVAL_KEYS:
        _expect(key in evaluation, path, f"evaluation.{key}", "to be present", "missing")
        value = evaluation[key]
        ok = _positive_int(value) or (key == "every_steps" and value == 0)
        _expect(ok, path, f"evaluation.{key}", "a positive integer" + (" (or 0: none)" if key == "every_steps" else ""),
                value)
    _expect(evaluation["every_steps"] <= min(budget_steps.values()), path, "evaluation.every_steps",
            f"at most the budget ({min(budget_steps.values())} agent steps)", evaluation["every_steps"])

    seeds = data["seeds"]
    if isinstance(seeds, list):
        _expect(seeds and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds), path,
                "seeds", "a positive count or a non-empty list of non-negative integers", seeds)
        _expect(len(set(seeds)) == len(seeds), path, "seeds", "no duplicates", seeds)
        seed_tuple = tuple(seeds)
    else:
        _expect(_positive_int(seeds), path, "seeds", "a positive count or a list of non-negative integers", seeds)
        seed_tuple = tuple(range(seeds))

    agents_raw = data["agents"]
    _expect(isinstance(agents_raw, dict) and agents_raw, path, "agents", "a non-empty mapping agent -> {profile}",
            agents_raw)
    agents: dict[str, AgentEntry] = {}
    for agent, entry in agents_raw.items():
        key = f"agents.{agent}"
        _expect(isinstance(entry, dict), path, key, "a mapping with 'profile' (and optional 'set')", entry)
        extra = sorted(set(entry) - {"profile", "set"})
        _expect(not extra, path, f"{key}.{','.join(extra)}", "only 'profile' and 'set'", "unknown key")
        _expect(isinstance(entry.get("profile"), str), path, f"{key}.profile", "a profile name", entry.get("profile"))
        overrides = entry.get("set") or {}
        _expect(isinstance(overrides, dict), path, f"{key}.set", "a mapping of config keys to values", overrides)
        agents[agent] = AgentEntry(entry["profile"], dict(overrides))

    train_overrides = data.get("train_protocol") or {}
    _expect(isinstance(train_overrides, dict), path, "train_protocol", "a mapping of protocol knobs", train_overrides)
    _expect(not train_overrides or len(families) == 1, path, "train_protocol",
            "no overrides in a suite that mixes env families", train_overrides)
    for family in families:
        known_knobs = {f.name for f in dataclasses.fields(protocols.PROTOCOL_CLASSES[family])} - {"obs", "game", "task"}
        unknown = sorted(set(train_overrides) - known_knobs)
        _expect(not unknown, path, "train_protocol." + ",".join(unknown), f"{family} knobs {sorted(known_knobs)}",
                "unknown knob")

    max_frames = min(budget_steps[f] * FRAMES_PER_STEP[f] for f in families)
    report_budgets = data.get("report_budgets_frames") or [max_frames]
    _expect(isinstance(report_budgets, list) and all(_positive_int(b) for b in report_budgets), path,
            "report_budgets_frames", "a list of positive integers", report_budgets)
    _expect(max(report_budgets) <= max_frames, path, "report_budgets_frames",
            f"budgets within the run budget ({max_frames} frames)", report_budgets)
    checkpoint_minutes = data.get("checkpoint_every_minutes", 10.0)
    _expect(isinstance(checkpoint_minutes, (int, float)) and checkpoint_minutes > 0, path,
            "checkpoint_every_minutes", "a positive number", checkpoint_minutes)

    return Suite(path=path, name=name, envs=env_refs, budget_steps=budget_steps,
                 evaluation=Evaluation(**evaluation), seeds=seed_tuple, agents=agents,
                 train_protocol=dict(train_overrides), report_budgets_frames=tuple(sorted(report_budgets)),
                 checkpoint_every_minutes=float(checkpoint_minutes))


def parse_list(text: str | None) -> list[str] | None:
    return None if text is None else [item.strip() for item in text.split(",") if item.strip()]


def parse_seeds(text: str | None) -> tuple[int, ...] | None:
    """'5' -> seeds 0..4; '0,3,7' -> those seeds."""
    if text is None:
        return None
    try:
        if "," in text:
            return tuple(int(s) for s in text.split(",") if s.strip())
        count = int(text)
    except ValueError:
        raise SuiteError(f"--seeds: expected a count (5) or a list (0,1,2), got {text!r}") from None
    if count <= 0:
        raise SuiteError(f"--seeds: expected a positive count, got {count}")
    return tuple(range(count))


def parse_sets(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """['iris.world_model.num_layers=2', ...] -> {'iris': {'world_model.num_layers': 2}} (values parsed as YAML)."""
    result: dict[str, dict[str, Any]] = {}
    for item in items or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise SuiteError(f"--set {item!r}: expected AGENT.KEY=VALUE (e.g. iris.tokenizer.batch_size=8)")
        key, raw = item.split("=", 1)
        agent, dotted = key.split(".", 1)
        result.setdefault(agent, {})[dotted] = yaml.safe_load(raw)
    return result


def expand(suite: Suite, agents: list[str] | None = None, envs: list[str] | None = None,
           seeds: tuple[int, ...] | None = None, sets: dict[str, dict[str, Any]] | None = None) -> list[RunSpec]:
    """The grid agents x envs x seeds as RunSpec cells, after validating every selection."""
    sets = sets or {}
    chosen_agents = agents or list(suite.agents)
    for agent in chosen_agents:
        if agent not in suite.agents:
            raise SuiteError(f"--agents: {agent!r} is not in {suite.path} (agents: {', '.join(suite.agents)})")
    for agent in sets:
        if agent not in chosen_agents:
            raise SuiteError(f"--set {agent}.*: agent {agent!r} is not among the selected agents {chosen_agents}")
    chosen_envs = envs or suite.env_names
    for env in chosen_envs:
        if env not in suite.env_names:
            raise SuiteError(f"--envs: {env!r} is not in {suite.path} (envs: {', '.join(suite.env_names)})")
    family_of = {name: family for family, name in suite.envs}
    chosen_seeds = seeds if seeds is not None else suite.seeds

    cells = []
    for agent in chosen_agents:
        entry = suite.agents[agent]
        try:
            agent_class = get_agent_class(agent)
        except (KeyError, ModuleNotFoundError) as err:
            raise SuiteError(f"{suite.path}: key 'agents.{agent}': {err}") from None
        if entry.profile not in agent_class.profiles:
            raise SuiteError(f"{suite.path}: key 'agents.{agent}.profile': expected one of "
                             f"{sorted(agent_class.profiles)}, got {entry.profile!r}")
        overrides = {**entry.overrides, **sets.get(agent, {})}
        try:
            config = apply_overrides(agent_class.profiles[entry.profile](), overrides,
                                     where=f"{suite.path} agents.{agent} / --set {agent}")
        except (KeyError, ValueError) as err:
            raise SuiteError(str(err).strip("\"'")) from None
        config_dict = dataclasses.asdict(config)
        for env in chosen_envs:
            for seed in chosen_seeds:
                family = family_of[env]
                cells.append(RunSpec(
                    suite=suite.name, suite_path=str(suite.path), agent=agent, profile=entry.profile, env=env,
                    family=family, seed=seed, budget_steps=suite.budget_steps[family],
                    frames_per_step=FRAMES_PER_STEP[family], evaluation=dataclasses.asdict(suite.evaluation),
                    config=config_dict, overrides=overrides, train_protocol=dict(suite.train_protocol),
                    checkpoint_every_minutes=suite.checkpoint_every_minutes))
    return cells
