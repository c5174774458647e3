"""Every environment knob, in one place per family.

A protocol is a frozen dataclass: the training protocol of a run is the family default updated with
the agent's `train_protocol()` overrides and the suite's `train_protocol:` section; the evaluation
protocol is the harness's benchmark protocol (the same for every agent) with only the agent's
observation format applied. Both are written into run.json, and `fingerprint()` of the evaluation
protocol is what `report` compares before aggregating runs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Union


@dataclass(frozen=True)
class ObservationSpec:
    """The observation an agent consumes (declared by the agent, applied to train and eval envs)."""

    size: int = 64  # square side in pixels
    grayscale: bool = False  # RGB (3 channels) or luminance (1 channel)
    frame_stack: int = 1  # channels-first stack of the last k frames
    resize_before_pool: bool = True  # IRIS family: resize each raw frame, then max-pool; TWM: pool then resize
    interpolation: Literal["bilinear", "area"] = "bilinear"  # PIL-style bilinear (IRIS) or cv2 INTER_AREA (TWM)

    @property
    def shape(self) -> tuple[int, int, int]:
        channels = (1 if self.grayscale else 3) * self.frame_stack
        return (channels, self.size, self.size)


@dataclass(frozen=True)
class AtariProtocol:
    """ALE Atari under the IRIS/Δ-IRIS/REM code's protocol; TWM's variant via the same knobs."""

    game: str  # e.g. "Pong" (ALE id ALE/Pong-v5 with the knobs below)
    frame_skip: int = 4  # emulator frames per agent step (action repeated, rewards summed)
    max_pool: bool = True  # pixel-wise max over the last two frames of a skip
    repeat_action_probability: float = 0.0  # sticky actions off
    full_action_space: bool = False  # minimal action set
    noop_min: int = 1  # no-op starts: uniform count in [noop_min, noop_max] on a real game reset
    noop_max: int = 30  # 0 disables no-op starts
    noop_unit: Literal["frame", "step"] = "frame"  # a no-op is one raw frame (IRIS) or one agent step (TWM FIRE games)
    fire_on_reset: bool = False  # TWM: press FIRE then action 2 after a reset, in games whose action 1 is FIRE
    fire_after_life_loss: bool = False  # TWM: press FIRE inside the step that lost a life
    life_loss_terminal: bool = False  # signal terminated on life loss while the game goes on
    life_loss_reset_noop: bool = True  # the reset after a life loss plays one NOOP agent step (IRIS EpisodicLife)
    max_frames: int | None = 108_000  # emulator-frame time limit (None: none) -> truncated
    time_limit_scope: Literal["game", "life"] = "game"  # limit counted over a whole game or per life (TWM train)
    reward_transform: Literal["none", "sign", "tanh"] = "none"  # applied to the reward the agent stores
    obs: ObservationSpec = field(default_factory=ObservationSpec)


@dataclass(frozen=True)
class CrafterProtocol:
    """Crafter (crafter==1.8.3) through a gymnasium adapter."""

    task: str = "crafter"
    length: int = 10_000  # steps before truncation (the benchmark's episode length)
    size: int = 64  # rendered observation side
    reward: bool = True  # native reward (achievements +1, health +-0.1)
    reward_transform: Literal["none", "sign", "tanh"] = "none"
    obs: ObservationSpec = field(default_factory=ObservationSpec)


@dataclass(frozen=True)
class SanityProtocol:
    """Catch at 64x64 RGB: a ball falls from a random column; catch it with the paddle."""

    task: str = "catch"
    grid: int = 8  # cells per side (each cell is size/grid pixels)
    size: int = 64
    balls: int = 3  # balls per episode (episode return in [-balls, balls]; 23 steps at grid 8)
    # "landing": a landing is paid in the landing step, a function of the frame before it and the action;
    # "after_landing": paid in the next step, a function of the landing frame alone (harness/envs/catch.py)
    reward_timing: Literal["landing", "after_landing"] = "landing"
    reward_transform: Literal["none", "sign", "tanh"] = "none"
    obs: ObservationSpec = field(default_factory=ObservationSpec)


Protocol = Union[AtariProtocol, CrafterProtocol, SanityProtocol]
PROTOCOL_CLASSES: dict[str, type] = {"atari": AtariProtocol, "crafter": CrafterProtocol, "sanity": SanityProtocol}

# The benchmark protocols, the same for every agent (DESIGN.md: Environment protocol).
ATARI_TRAIN_DEFAULTS: dict[str, Any] = dict(noop_min=1, noop_max=30, life_loss_terminal=True, max_frames=20_000)
ATARI_EVAL: dict[str, Any] = dict(noop_min=1, noop_max=1, life_loss_terminal=False, max_frames=108_000,
                                  fire_on_reset=False, fire_after_life_loss=False, time_limit_scope="game",
                                  reward_transform="none")


def family_of(protocol: Protocol) -> str:
    for family, cls in PROTOCOL_CLASSES.items():
        if isinstance(protocol, cls):
            return family
    raise TypeError(type(protocol))


def build_protocol(family: str, name: str, overrides: dict[str, Any], observation: dict[str, Any],
                   where: str = "protocol") -> Protocol:
    """A protocol of `family` for env `name`, with knob overrides and an observation spec.

    Raises KeyError naming `where` and the unknown knob.
    """
    cls = PROTOCOL_CLASSES[family]
    known = {f.name for f in dataclasses.fields(cls)} - {"obs"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise KeyError(f"{where}: unknown {family} protocol knob(s) {unknown}; known: {sorted(known)}")
    obs_known = {f.name for f in dataclasses.fields(ObservationSpec)}
    bad_obs = sorted(set(observation) - obs_known)
    if bad_obs:
        raise KeyError(f"{where}: unknown observation key(s) {bad_obs}; known: {sorted(obs_known)}")
    name_key = "game" if family == "atari" else "task"
    return cls(**{name_key: name, **overrides, "obs": ObservationSpec(**observation)})


def train_protocol(family: str, name: str, agent_overrides: dict[str, Any], suite_overrides: dict[str, Any],
                   observation: dict[str, Any]) -> Protocol:
    base = dict(ATARI_TRAIN_DEFAULTS) if family == "atari" else {}
    return build_protocol(family, name, {**base, **agent_overrides, **suite_overrides}, observation,
                          where="train protocol")


def eval_protocol(family: str, name: str, observation: dict[str, Any]) -> Protocol:
    base = dict(ATARI_EVAL) if family == "atari" else {}
    return build_protocol(family, name, base, observation, where="eval protocol")


def to_dict(protocol: Protocol) -> dict[str, Any]:
    return {"family": family_of(protocol), **dataclasses.asdict(protocol)}


def from_dict(data: dict[str, Any]) -> Protocol:
    data = dict(data)
    cls = PROTOCOL_CLASSES[data.pop("family")]
    obs = ObservationSpec(**data.pop("obs"))
    return cls(**data, obs=obs)


def differences(recorded: dict[str, Any], current: Protocol) -> list[str]:
    """How `current` differs from a protocol recorded by `to_dict` (in an older run.json), one line per knob.

    A knob absent from the record did not exist when it was written; the code then behaved as that knob's
    default, so it counts as recorded at its default. A recorded knob that no longer exists is a difference.
    """
    recorded = dict(recorded)
    family = recorded.pop("family", None)
    if family != family_of(current):
        return [f"family: recorded {family!r}, now {family_of(current)!r}"]
    now = to_dict(current)
    now.pop("family")
    recorded_obs, now_obs = recorded.pop("obs", {}), now.pop("obs")
    return (_compare(recorded, now, _defaults(type(current)), "")
            + _compare(recorded_obs, now_obs, _defaults(ObservationSpec), "obs."))


DRIFT = ("this run started under other environment protocols than this code builds; continuing would change "
         "its environments mid-run")


def drift(run_record: dict[str, Any], train: Protocol, evaluation: Protocol) -> list[str]:
    """The knobs in which a run's recorded protocols (run.json) differ from `train` / `evaluation`."""
    lines = []
    for key, protocol in (("train_protocol", train), ("eval_protocol", evaluation)):
        if key in run_record:
            lines += [f"{key}.{line}" for line in differences(run_record[key], protocol)]
    return lines


def _defaults(cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def _compare(recorded: dict[str, Any], now: dict[str, Any], defaults: dict[str, Any], prefix: str) -> list[str]:
    lines = []
    for key in sorted(set(recorded) | set(now)):
        if key not in now:
            lines.append(f"{prefix}{key}: recorded {recorded[key]!r}, a knob that no longer exists")
        elif key not in recorded and key not in defaults:
            lines.append(f"{prefix}{key}: not recorded, now {now[key]!r}")
        elif _as_json(recorded.get(key, defaults.get(key))) != _as_json(now[key]):
            lines.append(f"{prefix}{key}: recorded {recorded.get(key, defaults.get(key))!r}, now {now[key]!r}")
    return lines


def _as_json(value: Any) -> Any:
    """JSON's view of a value (tuples read back as lists), so a record compares equal to what wrote it."""
    return json.loads(json.dumps(value))


def fingerprint(protocol: Protocol) -> str:
    """Hash of the episode-level knobs (not the observation format, which is each agent's own)."""
    data = to_dict(protocol)
    data.pop("obs")
    data.pop("game", None)
    data.pop("task", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
