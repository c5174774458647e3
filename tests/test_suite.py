"""Suite loading, validation errors (file, key, expectation) and grid expansion."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.suite import SuiteError, expand, load_suite, parse_seeds, parse_sets

REPO = Path(__file__).resolve().parents[1]
VALID = """
name: t
family: sanity
envs: [catch]
budget: {agent_steps: 100}
evaluation: {every_steps: 50, episodes: 2, final_episodes: 4, num_envs: 2}
seeds: 2
agents:
  random: {profile: tiny}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_shipped_suites_load_and_expand() -> None:
    atari = load_suite(REPO / "suites" / "atari100k.yaml")
    assert len(atari.envs) == 26 and atari.budget_steps == {"atari": 100_000} and atari.seeds == tuple(range(5))
    assert atari.evaluation.final_episodes == 100
    crafter = load_suite(REPO / "suites" / "crafter.yaml")
    assert crafter.budget_steps == {"crafter": 10_000_000}
    assert crafter.report_budgets_frames == tuple(range(1_000_000, 10_000_001, 1_000_000))
    smoke = load_suite(REPO / "suites" / "smoke.yaml")
    assert {family for family, _ in smoke.envs} == {"atari", "crafter"}
    cells = expand(smoke, agents=["random"])
    assert {(c.env, c.family, c.frames_per_step) for c in cells} == {
        ("Asterix", "atari", 4), ("Breakout", "atari", 4), ("crafter", "crafter", 1)}
    load_suite(REPO / "suites" / "sanity.yaml")


def test_cell_ids_are_stable_and_depend_on_config(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, VALID))
    first = [c.cell_id for c in expand(suite)]
    assert first == [c.cell_id for c in expand(load_suite(write(tmp_path, VALID)))]
    assert len(set(first)) == 2  # two seeds
    changed = expand(suite, sets={"random": {"steps_per_epoch": 7}})
    assert changed[0].config["steps_per_epoch"] == 7 and changed[0].cell_id != first[0]
    assert [c.seed for c in expand(suite, seeds=(4, 9))] == [4, 9]


def test_frames_budget_converts_per_family(tmp_path: Path) -> None:
    text = VALID.replace("family: sanity\nenvs: [catch]", "envs: {atari: [Pong], sanity: [catch]}")
    text = text.replace("agent_steps: 100", "frames: 400")
    suite = load_suite(write(tmp_path, text))
    assert suite.budget_steps == {"atari": 100, "sanity": 400}


MALFORMED = [
    ("name: [unclosed", "not valid YAML"),
    ("- a list", "<top level>"),
    (VALID.replace("name: t\n", ""), "'name'"),
    (VALID.replace("name: t", "name: 'bad name'"), "'name'"),
    (VALID.replace("family: sanity", "family: mujoco"), "'family'"),
    (VALID.replace("envs: [catch]", "envs: [pong]"), "'envs'"),
    (VALID.replace("envs: [catch]", "envs: []"), "'envs'"),
    (VALID.replace("agent_steps: 100", "agent_steps: -5"), "'budget.agent_steps'"),
    (VALID.replace("agent_steps: 100", "agent_steps: 0"), "'budget.agent_steps'"),
    (VALID.replace("{agent_steps: 100}", "{agent_steps: 100, frames: 400}"), "'budget'"),
    (VALID.replace("family: sanity\nenvs: [catch]", "family: atari\nenvs: [Pong]").replace(
        "agent_steps: 100", "frames: 401"), "'budget.frames'"),
    (VALID.replace("every_steps: 50", "every_steps: 500"), "'evaluation.every_steps'"),
    (VALID.replace("final_episodes: 4", "final_episodes: 0"), "'evaluation.final_episodes'"),
    (VALID.replace("num_envs: 2}", "num_envs: 2, speed: 3}"), "'evaluation.speed'"),
    (VALID.replace("seeds: 2", "seeds: [1, 1]"), "'seeds'"),
    (VALID.replace("seeds: 2", "seeds: two"), "'seeds'"),
    (VALID.replace("random: {profile: tiny}", "random: {profile: huge}"), "'agents.random.profile'"),
    (VALID.replace("random: {profile: tiny}", "dreamer: {profile: tiny}"), "'agents.dreamer'"),
    (VALID.replace("random: {profile: tiny}", "random: {profile: tiny, set: {nope: 1}}"), "unknown config key 'nope'"),
    (VALID.replace("random: {profile: tiny}", "random: {profile: tiny, set: {steps_per_epoch: abc}}"),
     "'steps_per_epoch' expects int"),
    (VALID + "train_protocol: {sticky: true}\n", "'train_protocol.sticky'"),
    (VALID + "colour: blue\n", "'colour'"),
    (VALID + "report_budgets_frames: [1000]\n", "'report_budgets_frames'"),
]


@pytest.mark.parametrize("text,key", MALFORMED)
def test_malformed_suites_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SuiteError) as error:
        expand(load_suite(path))
    assert str(path) in str(error.value) and key in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.yaml"]  # nothing written


def test_missing_suite_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="suite file not found"):
        load_suite(tmp_path / "nope.yaml")


@pytest.mark.parametrize("kwargs,message", [
    ({"agents": ["iris2"]}, "--agents: 'iris2'"),
    ({"envs": ["Pong"]}, "--envs: 'Pong'"),
    ({"sets": {"random": {"no_such_key": 1}}}, "unknown config key 'no_such_key'"),
    ({"sets": {"rem": {"x": 1}}}, "--set rem.*"),
])
def test_bad_selections(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(SuiteError, match=message.replace("*", r"\*").replace(".", r"\.")):
        expand(load_suite(write(tmp_path, VALID)), **kwargs)


def test_cli_value_parsers() -> None:
    assert parse_seeds("3") == (0, 1, 2) and parse_seeds("0,5") == (0, 5)
    assert parse_sets(["iris.world_model.num_layers=4", "iris.tokenizer.lr=0.0001"]) == {
        "iris": {"world_model.num_layers": 4, "tokenizer.lr": 1e-4}}
    with pytest.raises(SuiteError, match="--seeds"):
        parse_seeds("x")
    with pytest.raises(SuiteError, match="AGENT.KEY=VALUE"):
        parse_sets(["novalue"])
