"""Δ-IRIS through the harness: a tiny Catch run end to end (collection, updates, evaluation, checkpoint)."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.delta_iris.config import tiny
from harness.loop import run_cell
from harness.store import read_jsonl
from harness.suite import expand, load_suite

torch.set_num_threads(1)

SUITE = """
name: di_harness
family: sanity
envs: [catch]
budget: {agent_steps: 100}
evaluation: {every_steps: 50, episodes: 2, final_episodes: 2, num_envs: 2}
seeds: [0]
checkpoint_every_minutes: 10
agents:
  delta_iris:
    profile: tiny
    set:
      random_steps_first_epoch: 50
      steps_per_epoch: 50
      train_tokenizer.steps_first_epoch: 2
      train_tokenizer.steps_per_epoch: 1
      train_world_model.steps_first_epoch: 2
      train_world_model.steps_per_epoch: 1
      train_actor_critic.steps_first_epoch: 1
      train_actor_critic.steps_per_epoch: 1
      train_actor_critic.batch_size: 2
"""


@pytest.mark.slow
def test_tiny_run_through_run_cell(tmp_path: Path):
    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(SUITE)
    (spec,) = expand(load_suite(suite_path))
    assert run_cell(spec, tmp_path / "runs", device="cpu", show_progress=False) == "done"
    run_dir = spec.run_dir(tmp_path / "runs")
    metrics = list(read_jsonl(run_dir / "metrics.jsonl"))
    # 2 collection epochs (50 random + 50) and the scaled train-only epochs (round(1 * 2 / 10) = 0).
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert all("world_model/latents_loss" in m and "actor_critic/values_loss" in m for m in metrics)
    episodes = list(read_jsonl(run_dir / "episodes.jsonl"))
    assert sum(e["kind"] == "final" for e in episodes) == 2
    # The imagination-fidelity benchmark reads the same run folder: one line per imagined step, then the sums,
    # under random actions and under the run's own policy.
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "delta_iris_imagination_fidelity.py"
    for actions in ("random", "policy"):
        result = subprocess.run([sys.executable, str(script), str(run_dir), "--batch", "4", "--actions", actions],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].endswith(f"actions: {actions}")
        rows = [line.split() for line in lines[2:-1]]
        assert [int(row[0]) for row in rows] == list(range(1, tiny().actor_critic.horizon + 1))
        assert all(0.0 <= float(row[1]) <= 1.0 for row in rows)  # fraction of pixels wrong
        assert lines[-1].startswith("H-step reward sum: imagined ")
