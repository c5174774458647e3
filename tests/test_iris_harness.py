"""IRIS through the harness: a tiny Catch run end to end, then the imagination-fidelity benchmark on its folder."""
from pathlib import Path

import pytest
import torch

from tiny_cells import assert_fidelity_report, run_sanity_cell

from agents.iris.config import tiny
from harness.store import read_jsonl

torch.set_num_threads(1)

QUICK = {  # a 50-step random epoch and one of 50, with a few updates each
    "training.first_epoch_steps": 50, "training.steps_per_epoch": 50,
    "training.tokenizer.steps_first_epoch": 2, "training.tokenizer.steps_per_epoch": 1,
    "training.world_model.steps_first_epoch": 2, "training.world_model.steps_per_epoch": 1,
    "training.actor_critic.steps_per_epoch": 1, "training.actor_critic.batch_size": 2,
}


@pytest.mark.slow
def test_tiny_run_through_run_cell_and_fidelity_report(tmp_path: Path):
    run_dir = run_sanity_cell(tmp_path, "iris", QUICK)
    metrics = list(read_jsonl(run_dir / "metrics.jsonl"))
    assert metrics and "world_model/reward" in metrics[0] and "actor_critic/value" in metrics[-1]
    assert sum(e["kind"] == "final" for e in read_jsonl(run_dir / "episodes.jsonl")) == 2
    assert_fidelity_report(run_dir, tiny().actor_critic.horizon)
