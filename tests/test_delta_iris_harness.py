"""Δ-IRIS through the harness: a tiny Catch run end to end (collection, updates, evaluation, checkpoint)."""
from pathlib import Path

import pytest
import torch

from tiny_cells import assert_fidelity_report, run_sanity_cell

from agents.delta_iris.config import tiny
from harness.store import read_jsonl

torch.set_num_threads(1)

QUICK = {  # a 50-step random epoch and one of 50, with a few updates each
    "random_steps_first_epoch": 50, "steps_per_epoch": 50,
    "train_tokenizer.steps_first_epoch": 2, "train_tokenizer.steps_per_epoch": 1,
    "train_world_model.steps_first_epoch": 2, "train_world_model.steps_per_epoch": 1,
    "train_actor_critic.steps_first_epoch": 1, "train_actor_critic.steps_per_epoch": 1,
    "train_actor_critic.batch_size": 2,
}


@pytest.mark.slow
def test_tiny_run_through_run_cell(tmp_path: Path):
    run_dir = run_sanity_cell(tmp_path, "delta_iris", QUICK)
    metrics = list(read_jsonl(run_dir / "metrics.jsonl"))
    # 2 collection epochs (50 random + 50) and the scaled train-only epochs (round(1 * 2 / 10) = 0).
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert all("world_model/latents_loss" in m and "actor_critic/values_loss" in m for m in metrics)
    episodes = list(read_jsonl(run_dir / "episodes.jsonl"))
    assert sum(e["kind"] == "final" for e in episodes) == 2
    # The imagination-fidelity benchmark reads the same run folder.
    assert_fidelity_report(run_dir, tiny().actor_critic.horizon)
