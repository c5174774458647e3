"""Executors: debug (in-process), local (subprocesses with a concurrency cap), slurm (job arrays).

Each gets the cells that need running (already filtered by `plan_launch`); each worker calls
`harness.loop.run_cell`, which takes the cell's lock, so a cell never runs twice at once even if
it is submitted twice.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import submitit

from harness.launch.cells import pending_jobs, read_cell
from harness.launch.profile import ClusterProfile
from harness.store import atomic_write, now_iso
from harness.suite import RunSpec


# The live run of this SLURM task (module level: CellJob itself must stay picklable for requeue).
_LIVE: dict[str, Any] = {}


class CellJob(submitit.helpers.Checkpointable):
    """The callable submitted to SLURM: runs one cell; requeued (and resumed) on time limit or preemption.

    The cell runs in a thread so that, when submitit's USR2 handler calls `checkpoint()` in the main
    thread, the run can be asked to stop at its next safe point and write a fresh checkpoint before
    submitit requeues the job.
    """

    def __init__(self, runs_dir: str, deterministic: bool = False, stop_timeout_s: float = 50.0):
        self.runs_dir = runs_dir
        self.deterministic = deterministic
        self.stop_timeout_s = stop_timeout_s  # wait for the fresh checkpoint; below the profile's signal delay

    def __call__(self, spec_dict: dict[str, Any]) -> str:
        from harness.loop import run_cell

        os.environ.setdefault("WMBENCH_EXECUTOR", "slurm")
        stop = threading.Event()
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["status"] = run_cell(RunSpec.from_dict(spec_dict), Path(self.runs_dir),
                                             deterministic=self.deterministic, show_progress=False,
                                             handle_signals=False, stop=stop)
            except BaseException as err:  # re-raised in the main thread, so submitit sees the failure
                outcome["error"] = err

        thread = threading.Thread(target=target, name="wmbench-cell", daemon=True)
        _LIVE.update(stop=stop, thread=thread)
        thread.start()
        while thread.is_alive():
            thread.join(timeout=0.5)  # short joins keep the main thread responsive to signals
        _LIVE.clear()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["status"]

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        if _LIVE:
            _LIVE["stop"].set()
            _LIVE["thread"].join(timeout=self.stop_timeout_s)
        return super().checkpoint(*args, **kwargs)


def run_debug(cells: list[RunSpec], runs_dir: Path, deterministic: bool) -> dict[str, str]:
    from harness.loop import run_cell

    os.environ["WMBENCH_EXECUTOR"] = "debug"
    outcomes = {}
    for spec in cells:
        outcomes[spec.cell_id] = run_cell(spec, runs_dir, deterministic=deterministic)
        print(f"{spec.agent}/{spec.env}/seed_{spec.seed}: {outcomes[spec.cell_id]}", flush=True)
    return outcomes


def worker_command(spec: RunSpec, runs_dir: Path, deterministic: bool) -> list[str]:
    spec_path = Path(runs_dir) / spec.suite / ".launch" / f"{spec.cell_id}.json"
    atomic_write(spec_path, json.dumps(spec.to_dict(), sort_keys=True).encode())
    command = [sys.executable, "-m", "harness", "worker", str(spec_path), "--runs-dir", str(runs_dir)]
    return command + (["--deterministic"] if deterministic else [])


def run_local(cells: list[RunSpec], runs_dir: Path, max_parallel: int, deterministic: bool) -> dict[str, str]:
    """Each cell in its own process, at most `max_parallel` at once; output to <run_dir>/worker.log."""
    foreground = max_parallel == 1 and len(cells) == 1 and sys.stderr.isatty()

    def launch(spec: RunSpec) -> tuple[str, str]:
        run_dir = spec.run_dir(runs_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "WMBENCH_EXECUTOR": "local"}
        command = worker_command(spec, runs_dir, deterministic)
        if foreground:
            code = subprocess.run(command, env=env).returncode
        else:
            with open(run_dir / "worker.log", "a") as log:
                log.write(f"--- {now_iso()} {' '.join(command)}\n")
                log.flush()
                code = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        outcome = {0: "done", 3: "locked", 4: "stopped"}.get(code, f"failed (exit {code}; see {run_dir}/worker.log)")
        print(f"{spec.agent}/{spec.env}/seed_{spec.seed}: {outcome}", flush=True)
        return spec.cell_id, outcome

    with ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
        return dict(pool.map(launch, cells))


def submit_slurm(cells: list[RunSpec], runs_dir: Path, profile: ClusterProfile, deterministic: bool,
                 wait: bool) -> dict[str, str]:
    """One job array per call (one task per cell); returns cell id -> job id (or outcome with wait)."""
    if not cells:
        return {}
    suite = cells[0].suite
    folder = Path(runs_dir) / suite / ".submitit"
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster="slurm", **profile.executor_init_kwargs())
    executor.update_parameters(name=f"wmbench-{suite}", **profile.executor_parameters())
    job = CellJob(str(Path(runs_dir).resolve()), deterministic, stop_timeout_s=max(5.0, 0.5 * profile.signal_delay_s))
    jobs = executor.map_array(job, [c.to_dict() for c in cells])
    result = {}
    for spec, job in zip(cells, jobs):
        atomic_write(spec.run_dir(runs_dir) / "submitted.json",
                     json.dumps({"job_id": job.job_id, "submitted_at": now_iso(), "cell_id": spec.cell_id}).encode())
        result[spec.cell_id] = job.job_id
    array_id = jobs[0].job_id.split("_")[0]
    print(f"submitted job array {array_id} with {len(jobs)} task(s) to partition {profile.partition}", flush=True)
    if wait:
        _wait_for_jobs(jobs)
        for spec, job in zip(cells, jobs):
            state = read_cell(spec.run_dir(runs_dir), spec, pending=set())
            result[spec.cell_id] = state.state
            print(f"{spec.agent}/{spec.env}/seed_{spec.seed} [{job.job_id}]: {state.state}", flush=True)
    return result


def _wait_for_jobs(jobs: list[Any], poll_seconds: float = 3.0) -> None:
    """Until SLURM no longer queues or runs any of the jobs. (submitit's `result()` can return while a
    requeued task is still waiting to restart, so the queue itself is watched.)"""
    while True:
        pending = pending_jobs()
        if pending is None:  # no squeue: fall back on submitit's own watcher
            for job in jobs:
                try:
                    job.result()
                except Exception:  # the cell's run.json says what happened
                    pass
            return
        if not any(job.job_id in pending for job in jobs):
            return
        time.sleep(poll_seconds)
