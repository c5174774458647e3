"""Cluster profiles: the YAML files in `slurm/` that say how cells are submitted to a SLURM cluster.

A profile is a flat YAML mapping (see `slurm/example.yaml` for every key, documented). Loading
checks every key and fails with one `ClusterProfileError` naming the file, the key and what was
expected. `ClusterProfile.executor_parameters()` turns it into the keyword arguments of submitit's
`AutoExecutor.update_parameters`; `executor_init_kwargs()` into those of its constructor.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import yaml

PROFILES_DIR = Path(__file__).resolve().parents[2] / "slurm"  # where bare profile names are looked up

# sbatch options that have a profile key of their own (or that submitit sets itself)
_OWNED_SBATCH_OPTIONS = {
    "partition": "partition", "time": "timeout_min", "account": "account", "qos": "qos",
    "constraint": "constraint", "gpus-per-node": "gpus_per_node", "cpus-per-task": "cpus_per_task",
    "mem": "mem_gb", "signal": "signal_delay_s", "array": "array_parallelism",
    "job-name": "(set by the launcher)", "output": "(set by submitit)", "error": "(set by submitit)",
}


class ClusterProfileError(ValueError):
    """A cluster profile that does not exist or does not validate."""


@dataclass(frozen=True)
class ClusterProfile:
    """How to submit cells to one SLURM cluster; one job-array task per cell."""

    name: str  # profile name: the file's stem ("ci" for slurm/ci.yaml)
    partition: str  # SLURM partition (sbatch --partition)
    timeout_min: int  # wall-clock limit of one job in minutes; a cell past it is requeued and resumes from its checkpoint
    gpus_per_node: int = 0  # GPUs per job (sbatch --gpus-per-node); 0 asks for none
    cpus_per_task: int = 1  # CPU cores per job (sbatch --cpus-per-task)
    mem_gb: float | None = None  # memory per job in GB (sbatch --mem); None: the partition's default
    account: str | None = None  # account charged (sbatch --account); None: the user's default
    qos: str | None = None  # quality of service (sbatch --qos); None: the default
    constraint: str | None = None  # node features required, e.g. "a100|h100" (sbatch --constraint)
    array_parallelism: int = 64  # most tasks of one job array running at once (sbatch --array=...%N)
    signal_delay_s: int = 120  # USR2 is sent this many seconds before the time limit, to checkpoint and requeue
    max_retries: int = 3  # requeues after a time limit before the cell is left failed (submitit max_num_timeout)
    additional_parameters: dict[str, Any] = field(default_factory=dict)  # other sbatch options, {option: value}
    setup: tuple[str, ...] = ()  # shell lines run in the job before Python starts (module load, venv activate)
    source: Path | None = None  # the YAML file this profile was loaded from

    def executor_parameters(self) -> dict[str, Any]:
        """Keyword arguments for submitit `AutoExecutor.update_parameters`; unset options are left out."""
        params: dict[str, Any] = {
            "slurm_partition": self.partition,
            "timeout_min": int(self.timeout_min),
            "cpus_per_task": self.cpus_per_task,
            "slurm_array_parallelism": self.array_parallelism,
            "slurm_signal_delay_s": self.signal_delay_s,
        }
        if self.gpus_per_node:  # "--gpus-per-node=0" is rejected by clusters without GPU gres
            params["gpus_per_node"] = self.gpus_per_node
        optional = {
            "mem_gb": self.mem_gb,
            "slurm_account": self.account,
            "slurm_qos": self.qos,
            "slurm_constraint": self.constraint,
            "slurm_additional_parameters": dict(self.additional_parameters) or None,
            "slurm_setup": list(self.setup) or None,
        }
        params.update({key: value for key, value in optional.items() if value is not None})
        return params

    def executor_init_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the submitit `AutoExecutor(...)` constructor (besides folder/cluster)."""
        return {"slurm_max_num_timeout": self.max_retries}


# --- validation ------------------------------------------------------------------------------

class _Invalid(Exception):
    """Raised by a field checker with what was expected."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_at_least(minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if not _is_int(value) or value < minimum:
            raise _Invalid(f"an integer >= {minimum}")
        return value
    return check


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise _Invalid("a number > 0")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
        raise _Invalid("a non-empty string without spaces")
    return value


def _setup_lines(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(line, str) and line.strip() for line in value):
        raise _Invalid("a list of non-empty shell lines, e.g. ['module load cuda/12.1']")
    return tuple(value)


def _sbatch_options(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid("a mapping {sbatch option: value}, e.g. {exclude: 'node[01-02]'}")
    for option, option_value in value.items():
        if not isinstance(option, str) or not option.strip():
            raise _Invalid(f"sbatch option names as strings, got {option!r}")
        if not isinstance(option_value, (str, int, float, bool)):
            raise _Invalid(f"a string or number for option {option!r}, got {option_value!r}")
        owner = _OWNED_SBATCH_OPTIONS.get(option.strip().lstrip("-").replace("_", "-"))
        if owner is not None:
            raise _Invalid(f"no {option!r} here: it is set through the profile key {owner!r}")
    return dict(value)


_REQUIRED = ("partition", "timeout_min")
_CHECKERS: dict[str, Callable[[Any], Any]] = {
    "partition": _name,
    "timeout_min": _int_at_least(1),
    "gpus_per_node": _int_at_least(0),
    "cpus_per_task": _int_at_least(1),
    "mem_gb": _positive_number,
    "account": _name,
    "qos": _name,
    "constraint": _name,
    "array_parallelism": _int_at_least(1),
    "signal_delay_s": _int_at_least(0),
    "max_retries": _int_at_least(0),
    "additional_parameters": _sbatch_options,
    "setup": _setup_lines,
}
_NULLABLE = {"mem_gb", "account", "qos", "constraint", "additional_parameters", "setup"}
assert set(_CHECKERS) == {f.name for f in fields(ClusterProfile)} - {"name", "source"}


def resolve_profile_path(path_or_name: str | Path) -> Path:
    """A profile file path; a bare name like "ci" means `slurm/ci.yaml` of this checkout."""
    path = Path(path_or_name)
    if not path.exists() and path.suffix == "" and len(path.parts) == 1:
        return PROFILES_DIR / f"{path.name}.yaml"
    return path


def load_cluster_profile(path: str | Path) -> ClusterProfile:
    """Load and validate a cluster profile; raises ClusterProfileError naming file, key and expectation."""
    path = resolve_profile_path(path)
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")) if PROFILES_DIR.is_dir() else []
        raise ClusterProfileError(
            f"{path}: cluster profile not found (expected a YAML file; profiles in {PROFILES_DIR}: {known})")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise ClusterProfileError(f"{path}: cannot read cluster profile: {err}") from None
    except yaml.YAMLError as err:
        raise ClusterProfileError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ClusterProfileError(
            f"{path}: expected a mapping of profile keys at the top level, got {type(raw).__name__}")

    problems: list[str] = []
    for key in raw:
        if key not in _CHECKERS:
            close = difflib.get_close_matches(str(key), list(_CHECKERS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown key {key!r}{hint}; known keys: {', '.join(_CHECKERS)}")
    values: dict[str, Any] = {}
    for key, check in _CHECKERS.items():
        if key not in raw:
            if key in _REQUIRED:
                problems.append(f"missing required key {key!r}")
            continue
        value = raw[key]
        if value is None and key in _NULLABLE:
            continue
        try:
            values[key] = check(value)
        except _Invalid as err:
            problems.append(f"key {key!r}: expected {err}, got {value!r}")
    if not problems:
        delay, limit_s = values.get("signal_delay_s", 120), values["timeout_min"] * 60
        if delay >= limit_s:
            problems.append(f"key 'signal_delay_s': expected fewer seconds than the time limit "
                            f"(timeout_min={values['timeout_min']} is {limit_s} s), got {delay}")
    if problems:
        raise ClusterProfileError(f"{path}: invalid cluster profile:\n  - " + "\n  - ".join(problems))
    return ClusterProfile(name=path.stem, source=path, **values)
