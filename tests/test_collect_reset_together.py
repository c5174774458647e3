"""Collection envs that reset together (the IRIS-family collectors): an env whose episode ended idles,
uncounted, until every env has ended; then all reset. Episodes of unequal length make it visible: env 0
plays Catch with 1 ball (7 steps), env 1 with 3 balls (23 steps)."""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
import torch

import harness.loop as loop
from harness.envs import VectorEnv
from harness.envs.catch import CatchEnv
from harness.store import read_jsonl
from harness.suite import RunSpec, expand, load_suite

SUITE = """\
name: together
family: sanity
envs: [catch]
budget: {{agent_steps: 200}}
evaluation: {{every_steps: 0, episodes: 2, final_episodes: 2, num_envs: 2}}
seeds: 1
checkpoint_every_minutes: 1000
agents:
  linear: {{profile: {profile}, set: {{steps_per_epoch: {epoch_steps}}}}}
"""
VOLATILE = {"wall_time", "seconds"}


@pytest.fixture
def unequal_envs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each Run's collection env 0 plays Catch with 1 ball (same seed); env 1 keeps the suite's 3."""
    monkeypatch.setenv("WMBENCH_AGENT_MODULES", "linear=linear_agent")

    def vector_env(envs: list[CatchEnv]) -> VectorEnv:
        envs[0] = CatchEnv(dataclasses.replace(envs[0].protocol, balls=1), envs[0].seeds["env"])
        return VectorEnv(envs)

    monkeypatch.setattr(loop, "VectorEnv", vector_env)
    torch.set_num_threads(1)


def _spec(tmp_path: Path, profile: str, epoch_steps: int = 50) -> RunSpec:
    (tmp_path / "suite.yaml").write_text(SUITE.format(profile=profile, epoch_steps=epoch_steps))
    return expand(load_suite(tmp_path / "suite.yaml"))[0]


def _train_rows(spec: RunSpec, runs: Path) -> list[dict]:
    return [row for row in read_jsonl(spec.run_dir(runs) / "episodes.jsonl") if row["kind"] == "train"]


def test_envs_wait_for_each_other_and_idle_steps_are_not_counted(tmp_path: Path, unequal_envs) -> None:
    spec = _spec(tmp_path, "two_envs_together")
    assert loop.run_cell(spec, tmp_path / "runs", device="cpu", show_progress=False, handle_signals=False) == "done"
    rows = _train_rows(spec, tmp_path / "runs")
    short = [row for row in rows if row["env_index"] == 0]
    long = [row for row in rows if row["env_index"] == 1]
    assert {row["length"] for row in short} == {7} and {row["length"] for row in long} == {23}
    assert all(type(row["env_index"]) is int for row in rows)  # logged as ints, not floats
    # One round = 7 vector steps with both envs (14 counted), then 16 with env 1 alone: 30 counted steps.
    assert [row["env_steps"] for row in short] == [30 * k + 14 for k in range(len(short))]
    assert [row["env_steps"] for row in long] == [30 * (k + 1) for k in range(len(long))]
    assert len(long) == 200 // 30 and len(short) == len(long) + 1


def test_a_collection_that_overshoots_its_target_takes_the_excess_from_the_next(tmp_path: Path,
                                                                              unequal_envs) -> None:
    """43 steps per epoch: the first collection ends at 44 (at 42 both envs step, counting 2), so the second
    collects 42 and ends at 86 (not 87), as the official collector deducts its excess_steps."""
    spec = _spec(tmp_path, "two_envs_together", epoch_steps=43)
    assert loop.run_cell(spec, tmp_path / "runs", device="cpu", show_progress=False, handle_signals=False) == "done"
    ends = [row["env_steps"] for row in read_jsonl(spec.run_dir(tmp_path / "runs") / "metrics.jsonl")]
    assert ends[:2] == [44, 86]
    assert all(43 * k <= end <= 43 * k + 1 for k, end in enumerate(ends[:-1], start=1))


def test_envs_reset_on_their_own_by_default(tmp_path: Path, unequal_envs) -> None:
    spec = _spec(tmp_path, "two_envs")
    assert loop.run_cell(spec, tmp_path / "runs", device="cpu", show_progress=False, handle_signals=False) == "done"
    rows = _train_rows(spec, tmp_path / "runs")
    short = [row["env_steps"] for row in rows if row["env_index"] == 0]
    assert short == [14 * (k + 1) for k in range(200 // 14)]  # every 7 vector steps of 2 counted steps


def test_stop_while_an_env_idles_then_resume_equals_uninterrupted(tmp_path: Path, unequal_envs,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(tmp_path, "two_envs_together")
    reference = tmp_path / "reference"
    assert loop.run_cell(spec, reference, device="cpu", deterministic=True, show_progress=False,
                         handle_signals=False) == "done"
    stop, tick = threading.Event(), loop.Run._tick

    def tick_and_stop_while_idle(run: loop.Run) -> None:
        if run.loop.env_steps == 50 and run.idle.tolist() == [True, False]:  # second round, env 0 idle
            stop.set()
        tick(run)

    monkeypatch.setattr(loop.Run, "_tick", tick_and_stop_while_idle)
    runs = tmp_path / "runs"
    assert loop.run_cell(spec, runs, device="cpu", deterministic=True, show_progress=False, handle_signals=False,
                         stop=stop) == "stopped"
    monkeypatch.setattr(loop.Run, "_tick", tick)
    assert loop.run_cell(spec, runs, device="cpu", deterministic=True, show_progress=False,
                         handle_signals=False) == "done"
    strip = lambda rows: [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]  # noqa: E731
    for log in ("episodes.jsonl", "metrics.jsonl"):
        assert strip(read_jsonl(spec.run_dir(runs) / log)) == strip(read_jsonl(spec.run_dir(reference) / log))
