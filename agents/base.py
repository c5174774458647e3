"""The agent contract: what the harness calls, and what an agent may rely on.

The harness owns environments, replay storage, the clock, evaluation, checkpointing and logs.
An agent owns learning. One run drives one agent through *epochs*:

    plan = agent.plan_epoch(progress)          # None: training is over
    harness collects plan.collect_steps env steps (uniform random actions if plan.random_actions,
        else agent.act(..., mode="collect")) into the shared Replay
    metrics = agent.update(replay, progress)   # the agent's own schedule decides what trains
    harness evaluates periodically (agent.act(..., mode="evaluate")) and checkpoints

`act` is batched over parallel environments. `state` is whatever recurrent state the agent needs
(an LSTM state, a Transformer-XL memory...), opaque to the harness; `first[i]` is True where
environment i has just been reset, so the agent must reset that row of its state.

With several collection envs, `resets_envs_together()` chooses when finished episodes restart: each
env at once, or all together once every env has finished (finished envs idle, uncounted, while the
others play on). A collection that overshoots `collect_steps` (a vector step counts every env it
stepped) takes the excess from the next epoch's collection.
"""
from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

Mode = Literal["collect", "evaluate"]


@dataclass(frozen=True)
class EnvInfo:
    """What an agent is told about the environment it is built for."""

    family: str  # "atari" | "crafter" | "sanity"
    name: str  # game / task name, e.g. "Pong", "crafter", "catch"
    num_actions: int
    obs_shape: tuple[int, ...]  # uint8 observation shape as delivered to act(), e.g. (3, 64, 64) or (4, 64, 64)
    action_meanings: tuple[str, ...] = ()


@dataclass
class Progress:
    """The harness clock, handed to plan_epoch() and update()."""

    epoch: int  # epochs completed before this one (0 at the first call)
    env_steps: int  # agent steps collected so far (over all collection envs)
    budget_steps: int  # the suite's budget in agent steps
    frames_per_step: int = 1  # emulator frames per agent step (4 on Atari)

    @property
    def budget_reached(self) -> bool:
        return self.env_steps >= self.budget_steps

    @property
    def fraction(self) -> float:
        return min(1.0, self.env_steps / max(1, self.budget_steps))


@dataclass(frozen=True)
class EpochPlan:
    """What the harness collects before the next update() call."""

    collect_steps: int  # agent steps to collect (summed over envs); 0 for a train-only epoch
    random_actions: bool = False  # uniform random actions instead of act()


@dataclass(frozen=True)
class RequiredFile:
    """A file a profile needs before training (checked by `harness preflight`)."""

    description: str
    path: Path
    how_to_get: str


class Agent(abc.ABC):
    """Base class of every agent; see the module docstring for the protocol.

    Subclasses set `name`, `config_class` (a dataclass) and `profiles` (profile name -> factory of
    a config), and are registered with @register.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    profiles: ClassVar[dict[str, Any]]  # profile name -> zero-argument callable returning a config

    # Observation the agent consumes; the harness builds train *and* evaluation envs to deliver it.
    # Keys of harness.envs.protocol.ObservationSpec (e.g. {"grayscale": True, "frame_stack": 4}).
    observation: ClassVar[dict[str, Any]] = {}
    # Number of parallel collection envs (Δ-IRIS on Crafter: 16).
    num_collect_envs_default: ClassVar[int] = 1

    def __init__(self, config: Any, env_info: EnvInfo, device: str = "cpu", seed: int = 0):
        self.config = config
        self.env_info = env_info
        self.device = device
        self.seed = seed

    # ---- declarations read by the harness -------------------------------------------------
    def train_protocol(self) -> dict[str, Any]:
        """Overrides of the env family's training protocol knobs (life loss, no-ops, limits...).

        Must depend only on `self.config` and `self.env_info` (preflight re-aims one agent at many envs).
        """
        return {}

    def num_collect_envs(self) -> int:
        return int(getattr(self.config, "num_collect_envs", self.num_collect_envs_default))

    def resets_envs_together(self) -> bool:
        """How the harness resets the collection envs (it matters only with several).

        False: each env resets as soon as its episode ends. True: an env whose episode ended idles, is
        not stepped and its steps are not counted, until every env's episode has ended; then all reset
        together (the IRIS-family collectors: MultiProcessEnv with should_wait_num_envs_ratio=1.0).
        """
        return False

    def required_files(self) -> list[RequiredFile]:
        """Files that must exist before training (e.g. perceptual-loss weights)."""
        return []

    def describe(self) -> dict[str, Any]:
        """Facts recorded in run.json (e.g. whether the perceptual term is on, temperatures)."""
        return {}

    # ---- learning ---------------------------------------------------------------------------
    @abc.abstractmethod
    def plan_epoch(self, progress: Progress) -> EpochPlan | None:
        """The next epoch's collection, or None when training is complete."""

    @abc.abstractmethod
    def initial_state(self, batch_size: int) -> Any:
        """Recurrent state for `batch_size` environments (None if the agent has none)."""

    @abc.abstractmethod
    def act(self, obs: np.ndarray, state: Any, mode: Mode, first: np.ndarray) -> tuple[np.ndarray, Any]:
        """Actions (int64, shape [B]) for a batch of uint8 observations [B, *obs_shape]."""

    @abc.abstractmethod
    def update(self, replay: Any, progress: Progress) -> dict[str, float]:
        """Train on the replay after a collection chunk; returns scalar metrics to log."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: models, optimizers, targets, counters, RNG states."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


# ---- registry -----------------------------------------------------------------------------
_REGISTRY: dict[str, type[Agent]] = {}

# Importable module for each agent name; imported lazily so `harness list` stays fast.
AGENT_MODULES: dict[str, str] = {
    "random": "agents.random",
    "iris": "agents.iris",
    "delta_iris": "agents.delta_iris",
    "rem": "agents.rem",
    "twm": "agents.twm",
}


def register(cls: type[Agent]) -> type[Agent]:
    _REGISTRY[cls.name] = cls
    return cls


def agent_modules() -> dict[str, str]:
    """Built-in agents plus those named in WMBENCH_AGENT_MODULES ("name=package.module,...").

    The variable lets a researcher plug in an agent of their own without editing wmbench; the
    tests use it for a small learning agent.
    """
    import os

    modules = dict(AGENT_MODULES)
    for item in filter(None, os.environ.get("WMBENCH_AGENT_MODULES", "").split(",")):
        name, _, module = item.partition("=")
        if not module:
            raise ValueError(f"WMBENCH_AGENT_MODULES: expected name=module items, got {item!r}")
        modules[name.strip()] = module.strip()
    return modules


def get_agent_class(name: str) -> type[Agent]:
    import importlib

    modules = agent_modules()
    if name not in modules:
        raise KeyError(f"unknown agent {name!r}; known agents: {', '.join(sorted(modules))}")
    importlib.import_module(modules[name])
    if name not in _REGISTRY:
        raise KeyError(f"module {modules[name]} does not register an agent named {name!r}")
    return _REGISTRY[name]


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def apply_overrides(config: Any, overrides: dict[str, Any], where: str) -> Any:
    """Returns a copy of a (possibly nested) dataclass config with dotted keys replaced.

    Raises KeyError naming `where` and the unknown key; values are coerced to the field's type.
    """
    for dotted, value in overrides.items():
        config = _replace_dotted(config, dotted.split("."), value, where, dotted)
    return config


def _replace_dotted(obj: Any, parts: list[str], value: Any, where: str, dotted: str) -> Any:
    if not dataclasses.is_dataclass(obj):
        raise KeyError(f"{where}: {dotted!r} does not name a config field")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    head = parts[0]
    if head not in fields:
        raise KeyError(f"{where}: unknown config key {dotted!r} (known: {', '.join(sorted(fields))})")
    current = getattr(obj, head)
    if len(parts) > 1:
        new = _replace_dotted(current, parts[1:], value, where, dotted)
    else:
        new = _coerce(value, current, where, dotted)
    return dataclasses.replace(obj, **{head: new})


def _coerce(value: Any, current: Any, where: str, dotted: str) -> Any:
    """`value` converted to the type of the field's current value (strings come from the CLI)."""
    if current is None:
        return value
    try:
        if isinstance(current, bool):
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            raise ValueError(value)
        if isinstance(current, int):
            number = float(value)
            if not number.is_integer():
                raise ValueError(value)
            return int(number)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            kind = type(current[0]) if current else str
            return tuple(kind(v) for v in items)
        if isinstance(current, str):
            return str(value)
        return value
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {dotted!r} expects {type(current).__name__}, got {value!r}") from None
