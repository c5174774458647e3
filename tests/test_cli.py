"""The CLI end to end: smoke suite on the local executor, status, report, relaunch, kill + resume,
and one clear error (exit 2, nothing written) for each kind of bad input."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HELPERS = f"{REPO / 'tests' / 'helpers'}{os.pathsep}{REPO}"  # linear_agent.py, importable by workers


def harness(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": HELPERS,
                "WMBENCH_AGENT_MODULES": "linear=linear_agent", **(env or {})}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=900)


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "lock"}


@pytest.mark.slow
def test_smoke_suite_run_status_report_relaunch(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = harness("run", "suites/smoke.yaml", "--agents", "random", "--runs-dir", str(runs), "--max-parallel", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    for env in ("Asterix", "Breakout", "crafter"):
        run_json = json.loads((runs / "smoke" / "random" / env / "seed_0" / "run.json").read_text())
        assert run_json["status"] == "done" and run_json["progress"]["env_steps"] == 600
        assert run_json["attempts"][-1]["executor"] == "local"
    status = harness("status", "--runs-dir", str(runs))
    assert status.returncode == 0 and status.stdout.count(" done ") == 3 and "3 done" in status.stdout

    before = tree_digest(runs)
    report = harness("report", "--runs-dir", str(runs), "--suite", "smoke", "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Asterix" in text and "Breakout" in text and "Crafter" in text
    assert (tmp_path / "report" / "report.html").stat().st_size > 10_000  # figures embedded
    again = harness("run", "suites/smoke.yaml", "--agents", "random", "--runs-dir", str(runs))
    assert again.returncode == 0 and "0 cell(s) to run, 3 skipped" in again.stdout
    assert tree_digest(runs) == before  # neither report nor relaunch touched a finished run


SANITY = """
name: cli
family: sanity
envs: [catch]
budget: {agent_steps: 3000}
evaluation: {every_steps: 1000, episodes: 2, final_episodes: 4, num_envs: 2}
seeds: [0]
checkpoint_every_minutes: 0.00001
agents:
  linear: {profile: tiny}
"""


@pytest.mark.slow
def test_sigkilled_worker_shows_failed_and_resumes(tmp_path: Path) -> None:
    suite = tmp_path / "cli.yaml"
    suite.write_text(SANITY)
    runs = tmp_path / "runs"
    run_dir = runs / "cli" / "linear" / "catch" / "seed_0"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": HELPERS,
           "WMBENCH_AGENT_MODULES": "linear=linear_agent"}
    launcher = subprocess.Popen([sys.executable, "-m", "harness", "run", str(suite), "--runs-dir", str(runs)],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((run_dir / "checkpoints").glob("ckpt_00000[3-9].pt.sha256")):
        time.sleep(0.05)
    owner = json.loads((run_dir / "lock").read_text())
    os.kill(owner["pid"], signal.SIGKILL)  # the worker dies without warning; the launcher survives
    output, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == 1 and "failed" in output
    status = harness("status", "--runs-dir", str(runs))
    assert "failed" in status.stdout and "killed" in status.stdout

    result = harness("run", str(suite), "--runs-dir", str(runs))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resumed from ckpt_" in (run_dir / "log.txt").read_text()
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["status"] == "done" and len(run_json["attempts"]) == 2


BAD_INPUTS = [
    (["run", "suites/smoke.yaml", "--agents", "dreamer"], "--agents: 'dreamer'"),
    (["run", "suites/smoke.yaml", "--envs", "Seaquest"], "--envs: 'Seaquest'"),
    (["run", "suites/smoke.yaml", "--set", "random.nope=1"], "unknown config key 'nope'"),
    (["run", "suites/smoke.yaml", "--set", "random.steps_per_epoch=many"], "expects int"),
    (["run", "suites/smoke.yaml", "--set", "novalue"], "AGENT.KEY=VALUE"),
    (["run", "suites/smoke.yaml", "--seeds", "zero"], "--seeds"),
    (["run", "suites/missing.yaml"], "suite file not found"),
    (["run", "suites/smoke.yaml", "--executor", "slurm"], "needs --cluster-profile"),
    (["run", "suites/smoke.yaml", "--executor", "slurm", "--cluster-profile", "slurm/nowhere.yaml"], "nowhere"),
    (["run", "suites/smoke.yaml", "--cluster-profile", "slurm/ci.yaml"], "only used with --executor slurm"),
    (["preflight", "suites/smoke.yaml", "--agents", "nope"], "--agents: 'nope'"),
    (["status", "suites/missing.yaml"], "suite file not found"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
def test_bad_input_one_clear_error_nothing_written(tmp_path: Path, args: list[str], message: str) -> None:
    runs = tmp_path / "runs"
    result = harness(*args, "--runs-dir", str(runs))
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in result.stderr, result.stderr
    assert not runs.exists()


def test_runs_dir_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = harness("run", "suites/smoke.yaml", "--runs-dir", str(blocker / "runs"))
    assert result.returncode == 2 and "is not a directory" in result.stderr
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize("content,message", [
    ({"format_version": 0, "cell_id": "x", "status": "done"}, "format_version 0"),
    (None, "run.json unreadable"),
    ({"format_version": 1, "cell_id": "another", "status": "done"}, "holds cell another"),
])
def test_unusable_run_dir_is_an_error_and_left_alone(tmp_path: Path, content: dict | None, message: str) -> None:
    run_dir = tmp_path / "runs" / "smoke" / "random" / "Asterix" / "seed_0"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text("{ truncated" if content is None else json.dumps(content))
    before = tree_digest(tmp_path / "runs")
    result = harness("run", "suites/smoke.yaml", "--agents", "random", "--envs", "Asterix", "--runs-dir",
                     str(tmp_path / "runs"))
    assert result.returncode == 2 and message in result.stderr and str(run_dir) in result.stderr
    assert tree_digest(tmp_path / "runs") == before
    status = harness("status", "--runs-dir", str(tmp_path / "runs"))
    assert status.returncode == 0 and "smoke/random/Asterix/seed_0" in status.stdout
    if "format_version" in message or "unreadable" in message:
        assert "corrupt" in status.stdout


def test_dry_run_prints_grid_and_writes_nothing(tmp_path: Path) -> None:
    result = harness("run", "suites/smoke.yaml", "--runs-dir", str(tmp_path / "runs"), "--dry-run")
    assert result.returncode == 0 and "15 new" in result.stdout and "15 cell(s) to run" in result.stdout
    assert not (tmp_path / "runs").exists()


def test_list_shows_agents_suites_envs() -> None:
    result = harness("list")
    assert result.returncode == 0
    assert "random" in result.stdout and "suites/atari100k.yaml" in result.stdout and "Seaquest" in result.stdout
