"""The run loop's contract with agents and workers."""
from __future__ import annotations

import json
from pathlib import Path

from harness.loop import build_agent
from harness.suite import RunSpec, expand, load_suite

REPO = Path(__file__).resolve().parents[1]


def test_spec_survives_the_json_trip_to_a_worker() -> None:
    """Workers read their cell from JSON, where config tuples become lists; the agent must still build."""
    cells = expand(load_suite(REPO / "suites" / "sanity.yaml"), agents=["rem"])
    spec = RunSpec.from_dict(json.loads(json.dumps(cells[0].to_dict())))
    assert spec.cell_id == cells[0].cell_id
    agent, env_info, train, evaluation = build_agent(spec, "cpu")
    assert env_info.num_actions == 3 and agent.name == "rem"
    assert train.obs == evaluation.obs
