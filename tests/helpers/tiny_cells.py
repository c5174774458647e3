"""A `tiny` agent through the harness on a 100-step Catch suite, and the imagination-fidelity report on its
run folder (benchmarks/imagination_fidelity.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.loop import run_cell
from harness.suite import expand, load_suite

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "imagination_fidelity.py"
SUITE = """
name: {agent}_harness
family: sanity
envs: [catch]
budget: {{agent_steps: 100}}
evaluation: {{every_steps: 50, episodes: 2, final_episodes: 2, num_envs: 2}}
seeds: [0]
checkpoint_every_minutes: 10
agents:
  {agent}:
    profile: tiny
    set:
"""


def run_sanity_cell(tmp_path: Path, agent: str, overrides: dict[str, Any]) -> Path:
    """Runs the agent's `tiny` profile with these config overrides to completion; returns its run folder."""
    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(SUITE.format(agent=agent) + "".join(f"      {k}: {v}\n" for k, v in overrides.items()))
    (spec,) = expand(load_suite(suite_path))
    assert run_cell(spec, tmp_path / "runs", device="cpu", show_progress=False) == "done"
    return spec.run_dir(tmp_path / "runs")


def assert_fidelity_report(run_dir: Path, horizon: int) -> None:
    """One line per imagined step (1..horizon) with a wrong-pixel fraction in [0, 1], then the reward sums;
    under random actions and under the run's own policy."""
    for actions in ("random", "policy"):
        result = subprocess.run([sys.executable, str(SCRIPT), str(run_dir), "--batch", "4", "--actions", actions],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].endswith(f"actions: {actions}")
        rows = [line.split() for line in lines[2:-1]]
        assert [int(row[0]) for row in rows] == list(range(1, horizon + 1))
        assert all(0.0 <= float(row[1]) <= 1.0 for row in rows)  # fraction of pixels wrong
        assert lines[-1].startswith("H-step reward sum: imagined ")
