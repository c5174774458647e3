"""A run killed with SIGKILL at many moments and resumed ends exactly like an uninterrupted run.

Exactness covers evaluation returns, every logged episode and training metric, and the final
weights; the runs use the small learning agent of tests/helpers (weights, optimizer, RNGs).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.store import RunStore, read_jsonl

REPO = Path(__file__).resolve().parents[1]
HELPERS = f"{REPO / 'tests' / 'helpers'}{os.pathsep}{REPO}"  # linear_agent.py, importable by workers
SUITE = """
name: resume
family: sanity
envs: [catch]
budget: {agent_steps: 700}
evaluation: {every_steps: 200, episodes: 4, final_episodes: 8, num_envs: 2}
seeds: [3]
checkpoint_every_minutes: 0.00001
agents:
  linear: {profile: two_envs}
"""
VOLATILE = {"wall_time", "seconds"}


def _env() -> dict[str, str]:
    return {**os.environ, "WMBENCH_AGENT_MODULES": "linear=linear_agent", "PYTHONPATH": HELPERS,
            "OMP_NUM_THREADS": "1"}


def _command(suite: Path, runs: Path) -> list[str]:
    return [sys.executable, "-m", "harness", "run", str(suite), "--runs-dir", str(runs), "--executor", "debug",
            "--deterministic", "--skip-preflight"]


def _run(suite: Path, runs: Path, fault: str | None = None) -> int:
    env = _env()
    if fault:
        env["WMBENCH_FAULT"] = fault
    return subprocess.run(_command(suite, runs), env=env, cwd=REPO, capture_output=True, timeout=300).returncode


def _run_and_kill_after_epoch(suite: Path, runs: Path, epoch: int, extra_seconds: float) -> None:
    """SIGKILLs the worker `extra_seconds` after it logged its `epoch`-th epoch (mid-collection,
    mid-update or mid-evaluation, depending on the delay)."""
    metrics = runs / "resume" / "linear" / "catch" / "seed_3" / "metrics.jsonl"
    process = subprocess.Popen(_command(suite, runs), env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if len(read_jsonl(metrics)) >= epoch:
            break
        time.sleep(0.01)
    time.sleep(extra_seconds)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)


def _result(runs: Path) -> tuple[list[dict], list[dict], dict[str, torch.Tensor]]:
    run_dir = runs / "resume" / "linear" / "catch" / "seed_3"
    strip = lambda rows: [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]  # noqa: E731
    store = RunStore(run_dir)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "done"
    _, payload = next(store.iter_valid_checkpoints())
    return (strip(read_jsonl(run_dir / "episodes.jsonl")), strip(read_jsonl(run_dir / "metrics.jsonl")),
            payload["agent"]["policy"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple]:
    root = tmp_path_factory.mktemp("reference")
    suite = root / "resume.yaml"
    suite.write_text(SUITE)
    assert _run(suite, root / "runs") == 0
    return suite, _result(root / "runs")


def _assert_same(result: tuple, reference: tuple) -> None:
    episodes, metrics, weights = result
    ref_episodes, ref_metrics, ref_weights = reference
    assert [r for r in episodes if r["kind"] != "train"] == [r for r in ref_episodes if r["kind"] != "train"]
    assert episodes == ref_episodes
    assert metrics == ref_metrics
    for name in ref_weights:
        assert torch.equal(weights[name], ref_weights[name]), name


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["checkpoint_mid_write:3", "checkpoint_before_digest:5", "checkpoint_mid_write:9"])
def test_kill_inside_checkpoint_write_resumes_exactly(tmp_path: Path, reference, fault: str) -> None:
    suite, expected = reference
    runs = tmp_path / "runs"
    assert _run(suite, runs, fault=fault) == -signal.SIGKILL
    log = (runs / "resume/linear/catch/seed_3/log.txt").read_text()
    assert "done" not in log.splitlines()[-1]
    assert _run(suite, runs) == 0
    log = (runs / "resume/linear/catch/seed_3/log.txt").read_text()
    if fault.startswith("checkpoint_before_digest"):
        assert "corrupt or incomplete" in log  # the newest .pt had no checksum: the previous one was used
    assert "resumed from" in log
    _assert_same(_result(runs), expected)


@pytest.mark.slow
def test_kill_at_random_moments_resumes_exactly(tmp_path: Path, reference) -> None:
    suite, expected = reference
    runs = tmp_path / "runs"
    rng = random.Random(0)
    for epoch in (2, 6, 11):  # several kills of the same run, at different points of its life
        _run_and_kill_after_epoch(suite, runs, epoch, rng.uniform(0.0, 0.15))
    assert _run(suite, runs) == 0
    assert (runs / "resume/linear/catch/seed_3/log.txt").read_text().count("resumed from") >= 1
    _assert_same(_result(runs), expected)


def test_corrupt_newest_checkpoint_falls_back(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    store.save_checkpoint(1, {"value": 1})
    newest = store.save_checkpoint(2, {"value": 2})
    newest.write_bytes(newest.read_bytes()[:-10])  # truncated
    path, payload = next(store.iter_valid_checkpoints())
    assert payload == {"value": 1} and path.name == "ckpt_000001.pt"
    assert "ckpt_000002.pt is corrupt" in (tmp_path / "run" / "log.txt").read_text()
