"""Sweeps against the real single-node SLURM test cluster (bring it up with `slurm/ci_up.sh`).

Proves, through `python -m harness run --executor slurm`: job arrays with every cell done and
reported; a time limit shorter than the work (signal, checkpoint, requeue, resume, same results as
an uninterrupted run); a SIGKILLed worker seen as failed and resumed by the next run; and a
relaunch that submits only missing/failed cells and never touches finished ones.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.store import CellLock

REPO = Path(__file__).resolve().parents[1]
# The workers (also those SLURM starts: sbatch exports the environment) import the test agent from here.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "PYTHONPATH": f"{REPO / 'tests' / 'helpers'}{os.pathsep}{REPO}",
              "WMBENCH_AGENT_MODULES": "linear=linear_agent"}


def _cluster_unavailable() -> str | None:
    """Why the test cluster cannot run jobs, or None when its node is up (idle, or busy with jobs)."""
    if shutil.which("sinfo") is None or shutil.which("sacct") is None:
        return "no SLURM client (sinfo/sacct) on PATH: start the test cluster with slurm/ci_up.sh"
    try:
        states = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True,
                                timeout=20).stdout.split()
    except (OSError, subprocess.SubprocessError) as err:
        return f"sinfo failed ({err}): start the test cluster with slurm/ci_up.sh"
    if not states or not all(s in ("idle", "mixed", "allocated") for s in states):
        return f"SLURM node state {states or 'unknown'}, not idle: run slurm/ci_up.sh"
    return None


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster() -> None:
    """Skip without a usable cluster; fail instead where CI promises one (WMBENCH_REQUIRE_SLURM=1)."""
    reason = _cluster_unavailable()
    if reason is not None:
        if os.environ.get("WMBENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f"WMBENCH_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)


pytestmark = pytest.mark.slurm

TINY_SUITE = """\
name: {name}
family: sanity
envs: [catch]
budget: {{agent_steps: {steps}}}
evaluation: {{every_steps: {every}, episodes: {episodes}, final_episodes: 8, num_envs: 4}}
seeds: {seeds}
checkpoint_every_minutes: 0.05
agents:
  {agent}: {{profile: {profile}}}
"""


def write_suite(tmp_path: Path, name: str, steps: int, every: int, episodes: int, seeds: str = "1",
                agent: str = "random", profile: str = "tiny") -> Path:
    """A Catch suite. `agent="linear", profile="slow"` sleeps 0.5 s per 50-step epoch, so a run lasts
    at least steps/100 seconds whatever the machine: the timing-sensitive tests rely on that floor."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY_SUITE.format(name=name, steps=steps, every=every, episodes=episodes, seeds=seeds,
                                      agent=agent, profile=profile))
    return path


def write_profile(tmp_path: Path, **changes: Any) -> Path:
    """slurm/ci.yaml with some keys changed."""
    import yaml

    data = {**yaml.safe_load((REPO / "slurm" / "ci.yaml").read_text()), **changes}
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def harness(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, **WORKER_ENV}
    result = subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    print(f"$ harness {' '.join(map(str, args))}\n{result.stdout}\n{result.stderr}")
    return result


def run_json(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


def status_rows(runs_dir: Path) -> dict[str, tuple[str, str]]:
    """`harness status` as {"agent/env/seed_k": (state, job id)}, read by the table's column positions."""
    result = harness("status", "--runs-dir", runs_dir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("cell "))
    state_at, job_at, note_at = header.index("state"), header.index("job id"), header.index("note")
    rows = {}
    for line in lines[lines.index(header) + 1:]:
        if line.count("/") >= 3 and not line.startswith(" "):
            cell = line[:state_at].strip()
            rows["/".join(cell.split("/")[1:])] = (line[state_at:].split()[0], line[job_at:note_at].strip())
    return rows


def sacct_states(job_id: str) -> list[str]:
    """Every recorded state of a job (requeued attempts included), oldest first."""
    out = subprocess.run(["sacct", "-n", "-P", "-D", "-X", "-j", job_id, "-o", "JobID,State"],
                         capture_output=True, text=True, timeout=30).stdout
    return [line.split("|")[1].split()[0] for line in out.splitlines() if line.strip()]


def wait_for(condition, timeout: float, what: str, every: float = 1.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def file_digests(run_dir: Path) -> dict[str, tuple[float, str]]:
    return {str(p.relative_to(run_dir)): (p.stat().st_mtime, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != "lock"}


def final_results(run_dir: Path) -> dict[str, Any]:
    """What must not depend on interruptions: episode returns, replay bytes, final checkpoint state."""
    import torch

    episodes = [json.loads(line) for line in (run_dir / "episodes.jsonl").read_text().splitlines()]
    keys = ("kind", "eval_round", "env_index", "episode_index", "env_steps", "return", "length")
    newest = sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))[-1]
    payload = torch.load(newest, map_location="cpu", weights_only=False)
    payload["loop"].pop("wall_seconds", None)
    # log_sizes are byte offsets of logs that hold wall times, so they differ between runs
    state = {key: payload[key] for key in ("loop", "agent", "replay", "envs", "obs", "rng", "global_rng")}
    return {"episodes": [tuple(e.get(k) for k in keys) for e in episodes], "checkpoint": newest.name,
            "state": hashlib.sha256(repr(_plain(state)).encode()).hexdigest(),
            "replay": hashlib.sha256((run_dir / "replay" / "frames.u8").read_bytes()).hexdigest()}


def _plain(value: Any) -> Any:
    """Tensors/arrays to nested lists so equal states print (and hash) equally."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
def test_smoke_suite_runs_as_one_job_array_and_reports(tmp_path):
    runs = tmp_path / "runs"
    # the random agent only: the learning agents' tiny profiles would take many minutes on 2 cores
    result = harness("run", "suites/smoke.yaml", "--agents", "random", "--executor", "slurm", "--cluster-profile",
                     "slurm/ci.yaml", "--runs-dir", runs, "--wait", timeout=420)
    assert result.returncode == 0, result.stderr
    assert "submitted job array" in result.stdout and "with 3 task(s)" in result.stdout

    run_dirs = sorted(runs.glob("smoke/random/*/seed_0"))
    assert [d.parent.name for d in run_dirs] == ["Asterix", "Breakout", "crafter"]
    job_ids = {d.parent.name: run_json(d)["job_id"] for d in run_dirs}
    array_ids = {job_id.split("_")[0] for job_id in job_ids.values()}
    assert len(array_ids) == 1, f"one job array expected, got job ids {job_ids}"
    assert sorted(job_id.split("_")[1] for job_id in job_ids.values()) == ["0", "1", "2"]
    for env, job_id in job_ids.items():
        wait_for(lambda: sacct_states(job_id)[-1:] == ["COMPLETED"], 60, f"{env}: job {job_id} COMPLETED in sacct")
        data = run_json(runs / "smoke" / "random" / env / "seed_0")
        assert data["status"] == "done" and data["attempts"][-1]["outcome"] == "done"

    rows = status_rows(runs)
    assert rows == {f"random/{env}/seed_0": ("done", job_id) for env, job_id in job_ids.items()}

    report_dir = tmp_path / "report"
    result = harness("report", "--runs-dir", runs, "--suite", "smoke", "--out", report_dir, "--reps", "100",
                     timeout=300)
    assert result.returncode == 0, result.stderr
    assert (report_dir / "report.md").stat().st_size > 0
    import pandas as pd

    table = pd.read_csv(report_dir / "runs.csv")
    assert sorted(table["env"]) == ["Asterix", "Breakout", "crafter"] and set(table["status"]) == {"done"}


def test_time_limit_requeues_and_resumes_to_the_same_results(tmp_path):
    # at least 140 s of work on any machine; the job gets 2 min with USR2 60 s before the end, which
    # Slurm delivers 35-55 s after the start: the run must be requeued at least once.
    suite = write_suite(tmp_path, "timelimit", steps=14_000, every=2_000, episodes=8, agent="linear", profile="slow")
    profile = write_profile(tmp_path, timeout_min=2, signal_delay_s=60, max_retries=10)
    runs, reference = tmp_path / "runs", tmp_path / "reference"
    uninterrupted = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", suite, "--executor", "local", "--runs-dir", reference,
         "--deterministic"], cwd=REPO, env={**os.environ, **WORKER_ENV},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = harness("run", suite, "--executor", "slurm", "--cluster-profile", profile, "--runs-dir", runs,
                     "--deterministic", "--wait", timeout=540)
    assert result.returncode == 0, result.stderr
    assert uninterrupted.wait(timeout=300) == 0

    run_dir = runs / "timelimit" / "linear" / "catch" / "seed_0"
    data = run_json(run_dir)
    attempts = data["attempts"]
    assert data["status"] == "done" and len(attempts) >= 2, attempts
    assert {a["job_id"] for a in attempts} == {data["job_id"]}, "a requeue keeps its job id"
    assert [a.get("slurm_restart_count", 0) for a in attempts] == list(range(len(attempts)))
    assert all(a.get("outcome") in ("stopped", "requeued") for a in attempts[:-1]), attempts  # never "failed"
    assert attempts[-1]["outcome"] == "done"
    # the result pickle is there a moment before SLURM records the end of the job
    states = wait_for(lambda: (s := sacct_states(data["job_id"]))[-1:] == ["COMPLETED"] and s, 60, "COMPLETED")
    assert states.count("REQUEUED") == len(attempts) - 1, states
    log = (run_dir / "log.txt").read_text()
    # every interruption wrote a fresh checkpoint at a safe point, and every restart resumed from one
    assert log.count("stop requested") == len(attempts) - 1, log
    assert log.count("resumed from ckpt_") == len(attempts) - 1, log
    assert "started fresh" in log and log.count("started fresh") == 1

    reference_dir = reference / "timelimit" / "linear" / "catch" / "seed_0"
    assert len(run_json(reference_dir)["attempts"]) == 1
    assert final_results(run_dir) == final_results(reference_dir)


def test_sigkilled_worker_is_failed_and_rerun_resumes(tmp_path):
    suite = write_suite(tmp_path, "killed", steps=4_000, every=200, episodes=8, agent="linear", profile="slow")
    runs = tmp_path / "runs"
    command = ("run", suite, "--executor", "slurm", "--cluster-profile", "slurm/ci.yaml", "--runs-dir", runs)
    run_dir = runs / "killed" / "linear" / "catch" / "seed_0"
    assert harness(*command).returncode == 0
    wait_for(lambda: len(list((run_dir / "checkpoints").glob("ckpt_*.pt.sha256"))) >= 1, 240, "a checkpoint")
    owner = json.loads((run_dir / "lock").read_text())
    os.kill(int(owner["pid"]), signal.SIGKILL)
    job_id = run_json(run_dir)["job_id"]
    wait_for(lambda: sacct_states(job_id)[-1:] == ["FAILED"], 60, f"job {job_id} FAILED in sacct")
    assert status_rows(runs)["linear/catch/seed_0"] == ("failed", job_id)

    assert harness(*command).returncode == 0  # the same command again
    wait_for(lambda: status_rows(runs)["linear/catch/seed_0"][0] == "done", 300, "the resumed cell done",
             every=3)
    data = run_json(run_dir)
    assert data["job_id"] != job_id and len(data["attempts"]) == 2
    assert "outcome" not in data["attempts"][0] or data["attempts"][0]["outcome"] != "done"
    log = (run_dir / "log.txt").read_text()
    assert "resumed from ckpt_" in log and "at epoch 0," not in log, log
    episodes = [json.loads(line) for line in (run_dir / "episodes.jsonl").read_text().splitlines()]
    keys = [tuple(e.get(k) for k in ("kind", "eval_round", "env_index", "episode_index", "env_steps"))
            for e in episodes]
    assert len(keys) == len(set(keys)), "an episode was logged twice"
    evals = [e for e in episodes if e["kind"] not in ("train", "final")]  # the periodic evaluations
    assert len(evals) == 20 * 8 and {e["eval_round"] for e in evals} == set(range(20))
    assert sum(e["kind"] == "final" for e in episodes) == 8


def test_relaunch_submits_only_missing_and_failed_cells(tmp_path):
    # at least 40 s of work per cell on any machine, so seed 1 is still running when it is checked and killed
    suite = write_suite(tmp_path, "relaunch", steps=4_000, every=1_000, episodes=8, seeds="3", agent="linear",
                        profile="slow")
    runs = tmp_path / "runs"
    base = ("run", suite, "--executor", "slurm", "--cluster-profile", "slurm/ci.yaml", "--runs-dir", runs)
    cell = {seed: runs / "relaunch" / "linear" / "catch" / f"seed_{seed}" for seed in range(3)}

    # half a sweep: seed 0 done, seed 1 killed while running, seed 2 never started
    assert harness(*base, "--seeds", "0,1").returncode == 0
    wait_for(lambda: all(CellLock.is_held(cell[s]) for s in (0, 1)), 240, "seeds 0 and 1 running")
    again = harness(*base, "--seeds", "0,1")  # live cells (lock held) are never submitted twice
    assert again.returncode == 0 and "0 cell(s) to run" in again.stdout and "submitted" not in again.stdout
    job_id = json.loads((cell[1] / "submitted.json").read_text())["job_id"]
    wait_for(lambda: any((cell[1] / "checkpoints").glob("ckpt_*.pt.sha256")), 120, "a checkpoint of seed 1")
    os.kill(int(json.loads((cell[1] / "lock").read_text())["pid"]), signal.SIGKILL)  # dies unwarned
    wait_for(lambda: sacct_states(job_id)[-1:] == ["FAILED"], 60, f"job {job_id} FAILED in sacct")
    wait_for(lambda: status_rows(runs).get("linear/catch/seed_0", ("",))[0] == "done", 300, "seed 0 done", every=3)
    rows = status_rows(runs)
    assert rows["linear/catch/seed_1"][0] == "failed" and not cell[2].exists()
    done_files = file_digests(cell[0])

    relaunch = harness(*base, "--wait", timeout=420)  # the whole sweep
    assert relaunch.returncode == 0, relaunch.stderr
    assert "2 cell(s) to run" in relaunch.stdout and "with 2 task(s)" in relaunch.stdout
    rows = status_rows(runs)
    assert {key: state for key, (state, _) in rows.items()} == {f"linear/catch/seed_{s}": "done" for s in range(3)}
    assert rows["linear/catch/seed_1"][1].split("_")[0] == rows["linear/catch/seed_2"][1].split("_")[0]
    assert rows["linear/catch/seed_1"][1] != job_id
    assert "resumed from ckpt_" in (cell[1] / "log.txt").read_text()
    assert file_digests(cell[0]) == done_files, "a finished cell was touched"

    final = harness(*base, "--wait")
    assert final.returncode == 0 and "0 cell(s) to run" in final.stdout and "submitted" not in final.stdout
    assert file_digests(cell[0]) == done_files
