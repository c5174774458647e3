"""Read run directories (read-only) into typed records and tidy tables.

Layout: `<runs_dir>/<suite>/<agent>/<env>/seed_<k>/` with `run.json` and `episodes.jsonl`.
A run is *aggregated* only when its run.json is valid, its status is "done" and it has "final"
episodes; otherwise it carries the reason it is not (a partial run still feeds the curves).
Nothing under runs_dir is ever written.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

FORMAT_VERSION = 1
REQUIRED_KEYS = ("suite", "agent", "env", "family", "seed", "status", "eval_fingerprint")
RUN_COLUMNS = ["suite", "agent", "env", "seed", "family", "profile", "status", "env_steps", "budget_steps", "fps",
               "wall_seconds", "gpu_hours", "device", "eval_fingerprint", "n_final_episodes", "score", "hns",
               "aggregated", "reason", "skipped_episode_lines", "path"]
SEED_DIR = re.compile(r"^seed_(\d+)$")
EPISODE_COLUMNS = ["suite", "agent", "env", "family", "seed", "kind", "env_steps", "frames", "return",
                   "length", "eval_round", "wall_time", "game_return"]


@dataclass
class Run:
    """One seed directory: identity from its path, contents from run.json and episodes.jsonl."""

    path: Path
    suite: str
    agent: str
    env: str
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)  # parsed run.json ({} when unusable)
    episodes: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None  # why run.json / episodes cannot be used at all (corrupt)
    partial_reason: str | None = None  # why the run has no final score (still usable for curves)
    excluded_reason: str | None = None  # set by the report (e.g. another protocol fingerprint)
    skipped_lines: int = 0  # unparsable episode lines skipped (a crash-truncated last line, ...)

    @property
    def family(self) -> str:
        return str(self.meta.get("family", "unknown"))

    @property
    def fingerprint(self) -> str | None:
        return self.meta.get("eval_fingerprint")

    @property
    def usable(self) -> bool:
        return self.problem is None and self.excluded_reason is None

    @property
    def aggregated(self) -> bool:
        return self.usable and self.partial_reason is None

    @property
    def not_aggregated_reason(self) -> str | None:
        return self.problem or self.excluded_reason or self.partial_reason

    @property
    def env_steps_done(self) -> int:
        progress = self.meta.get("progress")
        steps = progress.get("env_steps") if isinstance(progress, dict) else None
        if steps is None:
            steps = max((e["env_steps"] for e in self.episodes), default=0)
        return int(steps)

    def final_returns(self) -> list[float]:
        return [e["return"] for e in self.episodes if e.get("kind") == "final"]

    @property
    def score(self) -> float | None:
        finals = self.final_returns()
        return sum(finals) / len(finals) if finals else None


def _read_run_json(run: Run) -> None:
    file = run.path / "run.json"
    if not file.is_file():
        run.problem = "run.json missing"
        return
    try:
        meta = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        run.problem = f"run.json unparsable ({err.__class__.__name__}: {err})"
        return
    if not isinstance(meta, dict):
        run.problem = f"run.json: expected a JSON object, got {type(meta).__name__}"
        return
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        run.problem = f"run.json format_version={version!r}, expected {FORMAT_VERSION}"
        return
    missing = [key for key in REQUIRED_KEYS if key not in meta]
    if missing:
        run.problem = f"run.json missing key(s) {missing}"
        return
    identity = {"suite": run.suite, "agent": run.agent, "env": run.env, "seed": run.seed}
    mismatched = [f"{k}={meta[k]!r} (directory says {v!r})" for k, v in identity.items() if meta[k] != v]
    if mismatched:
        run.problem = "run.json disagrees with its directory: " + ", ".join(mismatched)
        return
    run.meta = meta


def _read_episodes(run: Run) -> None:
    file = run.path / "episodes.jsonl"
    if not file.is_file():
        return
    with file.open("rb") as handle:
        for raw in handle:
            line = raw.strip()
            if not line:
                continue
            try:
                episode = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                run.skipped_lines += 1
                continue
            if isinstance(episode, dict) and "kind" in episode and "return" in episode and "env_steps" in episode:
                run.episodes.append(episode)
            else:
                run.skipped_lines += 1


def _classify(run: Run) -> None:
    status = run.meta.get("status")
    if status == "failed":
        run.partial_reason = "status=failed"
    elif status != "done":
        run.partial_reason = f"partial: status={status!r}, progress {run.env_steps_done}/{run.meta.get('budget_steps')} steps"
    elif not run.final_returns():
        run.partial_reason = "partial: status='done' but no final evaluation episodes"


def load_run(path: Path, suite: str, agent: str, env: str, seed: int) -> Run:
    run = Run(path=path, suite=suite, agent=agent, env=env, seed=seed)
    _read_run_json(run)
    if run.problem is None:
        _read_episodes(run)
        _classify(run)
    return run


def discover_suites(runs_dir: Path) -> list[str]:
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"runs directory {runs_dir} does not exist")
    return sorted(p.name for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_suite(runs_dir: Path, suite: str) -> list[Run]:
    """Every `<agent>/<env>/seed_<k>` directory of a suite, sorted by (agent, env, seed)."""
    suite_dir = runs_dir / suite
    if not suite_dir.is_dir():
        raise FileNotFoundError(f"suite {suite!r}: no directory {suite_dir} (found: {discover_suites(runs_dir)})")
    runs = []
    for agent_dir in sorted(p for p in suite_dir.iterdir() if p.is_dir()):
        for env_dir in sorted(p for p in agent_dir.iterdir() if p.is_dir()):
            for seed_dir in sorted(p for p in env_dir.iterdir() if p.is_dir()):
                match = SEED_DIR.match(seed_dir.name)
                if match:
                    runs.append(load_run(seed_dir, suite, agent_dir.name, env_dir.name, int(match.group(1))))
    return sorted(runs, key=lambda r: (r.agent, r.env, r.seed))


def runs_table(runs: list[Run], hns: dict[tuple[str, str, int], float] | None = None) -> pd.DataFrame:
    """One row per run directory: identity, status, progress, speed, cost, score."""
    rows = []
    for run in runs:
        meta = run.meta
        score = run.score if run.usable else None
        rows.append({
            "suite": run.suite, "agent": run.agent, "env": run.env, "seed": run.seed,
            "family": meta.get("family"), "profile": meta.get("profile"), "status": meta.get("status"),
            "env_steps": run.env_steps_done if run.problem is None else None,
            "budget_steps": meta.get("budget_steps"), "fps": meta.get("fps"),
            "wall_seconds": meta.get("wall_seconds"), "gpu_hours": meta.get("gpu_hours"),
            "device": meta.get("device"), "eval_fingerprint": meta.get("eval_fingerprint"),
            "n_final_episodes": len(run.final_returns()), "score": score,
            "hns": (hns or {}).get((run.agent, run.env, run.seed)),
            "aggregated": run.aggregated, "reason": run.not_aggregated_reason or "",
            "skipped_episode_lines": run.skipped_lines, "path": str(run.path),
        })
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def episodes_table(runs: list[Run]) -> pd.DataFrame:
    """One row per logged episode of every readable run; Crafter achievements as `ach_<name>` columns."""
    rows = []
    for run in runs:
        if run.problem is not None:
            continue
        for episode in run.episodes:
            row = {"suite": run.suite, "agent": run.agent, "env": run.env, "family": run.family, "seed": run.seed}
            row.update({k: episode.get(k) for k in EPISODE_COLUMNS[5:]})
            for name, count in (episode.get("achievements") or {}).items():
                row[f"ach_{name}"] = count
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else EPISODE_COLUMNS)
