"""The run loop's contract with agents and workers."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from harness.envs import protocol as protocols
from harness.launch.plan import preflight
from harness.loop import build_agent, run_cell
from harness.store import RunDirError
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


SHORT_SUITE = """\
name: protocols
family: sanity
envs: [catch]
budget: {agent_steps: 300}
evaluation: {every_steps: 0, episodes: 2, final_episodes: 2, num_envs: 2}
seeds: 1
agents:
  random: {profile: tiny}
"""


def test_an_epoch_that_crosses_several_evaluation_marks_is_evaluated_once(tmp_path: Path) -> None:
    """Epochs of 100 steps and a mark every 40: one evaluation after each epoch, at 100, 200 and 300 steps."""
    (tmp_path / "suite.yaml").write_text(SHORT_SUITE.replace("every_steps: 0", "every_steps: 40"))
    spec = expand(load_suite(tmp_path / "suite.yaml"))[0]
    assert run_cell(spec, tmp_path / "runs", device="cpu", show_progress=False, handle_signals=False) == "done"
    lines = (spec.run_dir(tmp_path / "runs") / "log.txt").read_text().splitlines()
    periodic = [line.split(" at ")[1].split(" steps")[0] for line in lines if "periodic evaluation" in line]
    assert periodic == ["100", "200", "300"]


def _stopped_run(tmp_path: Path) -> tuple[RunSpec, Path, Path]:
    """A cell stopped at its first safe point: run.json and a checkpoint exist, as after a preemption."""
    (tmp_path / "suite.yaml").write_text(SHORT_SUITE)
    spec = expand(load_suite(tmp_path / "suite.yaml"))[0]
    stop = threading.Event()
    stop.set()
    runs = tmp_path / "runs"
    assert run_cell(spec, runs, device="cpu", show_progress=False, handle_signals=False, stop=stop) == "stopped"
    return spec, runs, spec.run_dir(runs) / "run.json"


def _edit(run_json: Path, edit) -> None:
    data = json.loads(run_json.read_text())
    edit(data)
    run_json.write_text(json.dumps(data))


def test_resume_refuses_a_run_recorded_under_another_protocol(tmp_path: Path) -> None:
    """If a protocol default changed since the run started, resuming must not switch its environments."""
    spec, runs, run_json = _stopped_run(tmp_path)
    _edit(run_json, lambda data: data["train_protocol"].update(balls=2))
    before = {path.name: path.read_bytes() for path in run_json.parent.iterdir() if path.is_file()}
    found = preflight(load_suite(tmp_path / "suite.yaml"), [spec], runs, None)  # before a sweep is submitted
    assert [line for line in found if "train_protocol.balls: recorded 2, now 3" in line and str(run_json) in line]
    with pytest.raises(RunDirError) as refused:
        run_cell(spec, runs, device="cpu", show_progress=False, handle_signals=False)
    assert str(run_json) in str(refused.value)
    assert "train_protocol.balls: recorded 2, now 3" in str(refused.value)
    assert "eval_protocol" not in str(refused.value)
    after = {path.name: path.read_bytes() for path in run_json.parent.iterdir() if path.is_file()}
    assert after == before  # nothing the run computed (or its record) was touched


def test_resume_accepts_a_record_without_knobs_added_since(tmp_path: Path) -> None:
    """A knob added later with the old behaviour as its default (reward_timing) does not block a resume."""
    spec, runs, run_json = _stopped_run(tmp_path)
    _edit(run_json, lambda data: [data[key].pop("reward_timing") for key in ("train_protocol", "eval_protocol")])
    assert preflight(load_suite(tmp_path / "suite.yaml"), [spec], runs, None) == []
    assert run_cell(spec, runs, device="cpu", show_progress=False, handle_signals=False) == "done"
    assert json.loads(run_json.read_text())["train_protocol"]["reward_timing"] == "landing"


def test_protocol_differences_name_each_changed_knob() -> None:
    current = protocols.eval_protocol("atari", "Pong", {})
    recorded = protocols.to_dict(current)
    assert protocols.differences(recorded, current) == []
    recorded.update(noop_max=30, dropped_knob=1)
    recorded.pop("time_limit_scope")  # absent: counts as its default, which is what it is now
    recorded["obs"] = {**recorded["obs"], "size": 84}
    assert protocols.differences(recorded, current) == [
        "dropped_knob: recorded 1, a knob that no longer exists", "noop_max: recorded 30, now 1",
        "obs.size: recorded 84, now 64"]
    assert protocols.differences(protocols.to_dict(protocols.eval_protocol("sanity", "catch", {})), current) == [
        "family: recorded 'sanity', now 'atari'"]
