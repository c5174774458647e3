"""The state of each cell of a grid, read from its run directory (never modified here).

    new       no run.json yet
    queued    submitted to a scheduler and not started (submitted.json, job still pending)
    running   a live worker holds the cell's lock
    partial   stopped cleanly with a checkpoint (will resume)
    failed    marked failed, or died without releasing its status (e.g. SIGKILL): will resume
    done      finished; never run again, never overwritten
    corrupt   run.json unreadable or of another format version: listed, left alone
    conflict  the directory holds another cell (other config/budget): listed, left alone
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.store import FORMAT_VERSION, CellLock, read_json
from harness.suite import RunSpec

RESUMABLE = ("new", "partial", "failed")


@dataclass
class CellState:
    spec: RunSpec | None
    run_dir: Path
    state: str
    detail: str = ""
    env_steps: int = 0
    budget_steps: int = 0
    updated_at: str = ""
    job_id: str = ""
    failures: int = 0

    @property
    def progress_percent(self) -> float:
        return 100.0 * min(1.0, self.env_steps / self.budget_steps) if self.budget_steps else 0.0


def pending_jobs() -> set[str] | None:
    """Job ids SLURM still has queued or running, or None when squeue is not available."""
    if shutil.which("squeue") is None:
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, timeout=30,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {line.strip() for line in out.splitlines() if line.strip()}


def read_cell(run_dir: Path, spec: RunSpec | None = None, pending: set[str] | None = None) -> CellState:
    run_json = run_dir / "run.json"
    budget = spec.budget_steps if spec else 0
    if CellLock.is_held(run_dir):
        state = CellState(spec, run_dir, "running", budget_steps=budget)
        try:
            data = read_json(run_json)
            _fill(state, data)
        except (OSError, ValueError):
            pass
        return state
    if not run_json.exists():
        submitted = run_dir / "submitted.json"
        if submitted.exists():
            try:
                job_id = str(read_json(submitted).get("job_id"))
            except (OSError, ValueError):
                job_id = ""
            if pending is None or job_id in pending:
                return CellState(spec, run_dir, "queued", budget_steps=budget, job_id=job_id)
        return CellState(spec, run_dir, "new", budget_steps=budget)
    try:
        data = read_json(run_json)
    except (OSError, ValueError, json.JSONDecodeError) as err:
        return CellState(spec, run_dir, "corrupt", detail=f"run.json unreadable: {err}", budget_steps=budget)
    if data.get("format_version") != FORMAT_VERSION:
        return CellState(spec, run_dir, "corrupt", budget_steps=budget,
                         detail=f"run.json format_version {data.get('format_version')!r} (expected {FORMAT_VERSION})")
    state = CellState(spec, run_dir, "failed", budget_steps=budget)
    _fill(state, data)
    if spec is not None and data.get("cell_id") != spec.cell_id:
        state.state = "conflict"
        state.detail = f"holds cell {data.get('cell_id')}, the grid wants {spec.cell_id} (other config or budget)"
        return state
    status = data.get("status")
    if status == "done":
        state.state = "done"
    elif status == "stopped":
        state.state = "partial"
    elif status == "running":
        state.detail = "died without releasing its lock (killed?)"
    else:
        state.detail = str(data.get("error", ""))
    if state.state != "done" and pending and state.job_id in pending:
        state.state = "queued"  # requeued after a time limit: SLURM restarts it, a relaunch must not
        state.detail = "requeued by SLURM, waiting to resume"
    return state


def _fill(state: CellState, data: dict[str, Any]) -> None:
    progress = data.get("progress") or {}
    state.env_steps = int(progress.get("env_steps", 0))
    state.budget_steps = int(data.get("budget_steps", state.budget_steps) or 0)
    state.updated_at = str(progress.get("updated_at", ""))
    state.job_id = str(data.get("job_id") or "")
    attempts = data.get("attempts") or []
    state.failures = sum(1 for a in attempts if a.get("outcome") == "failed")


def grid_states(cells: list[RunSpec], runs_dir: Path) -> list[CellState]:
    pending = pending_jobs()
    return [read_cell(spec.run_dir(runs_dir), spec, pending) for spec in cells]


def discover(runs_dir: Path, suite: str | None = None) -> list[CellState]:
    """Every run directory under runs_dir (or one suite), with its state."""
    pending = pending_jobs()
    root = Path(runs_dir)
    pattern = f"{suite}/*/*/seed_*" if suite else "*/*/*/seed_*"
    return [read_cell(run_dir, None, pending) for run_dir in sorted(root.glob(pattern)) if run_dir.is_dir()]


def format_table(states: list[CellState]) -> str:
    header = ("cell", "state", "progress", "env steps", "last update", "job id", "note")
    rows = []
    for s in states:
        parts = s.run_dir.parts[-4:]
        rows.append(("/".join(parts), s.state, f"{s.progress_percent:5.1f}%", str(s.env_steps), s.updated_at,
                     s.job_id, s.detail))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    counts: dict[str, int] = {}
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
    lines.append("")
    lines.append(", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no cells")
    return "\n".join(lines)
