"""Cluster profiles (slurm/*.yaml): loading, validation errors, and submitit parameters. No cluster needed."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import submitit
import yaml

from harness.launch.profile import ClusterProfile, ClusterProfileError, load_cluster_profile

REPO = Path(__file__).resolve().parents[1]
MINIMAL = "partition: debug\ntimeout_min: 3\n"


def write(tmp_path: Path, text: str, name: str = "prof.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ci_profile_matches_the_test_cluster():
    profile = load_cluster_profile(REPO / "slurm" / "ci.yaml")
    assert profile.name == "ci"
    assert profile.partition == "debug"
    assert profile.gpus_per_node == 0 and profile.cpus_per_task == 1
    assert profile.mem_gb is not None and profile.mem_gb <= 4
    # NOTES.md: with a delay >= the limit the job is signalled at once; keep the delay below it
    assert 2 <= profile.timeout_min <= 10 and 0 < profile.signal_delay_s < profile.timeout_min * 60
    assert profile.account is None and profile.setup == () and profile.additional_parameters == {}


def test_bare_name_resolves_to_the_slurm_folder():
    by_name, by_path = load_cluster_profile("ci"), load_cluster_profile(REPO / "slurm" / "ci.yaml")
    assert by_name.source == REPO / "slurm" / "ci.yaml"
    assert dataclasses.replace(by_name, source=None) == dataclasses.replace(by_path, source=None)
    assert load_cluster_profile("example").source == REPO / "slurm" / "example.yaml"


def test_example_profile_sets_every_key_and_submitit_accepts_them(tmp_path):
    profile = load_cluster_profile(REPO / "slurm" / "example.yaml")
    text = (REPO / "slurm" / "example.yaml").read_text()
    assert set(yaml.safe_load(text)) == {f for f in ClusterProfile.__dataclass_fields__} - {"name", "source"}
    params = profile.executor_parameters()
    assert params["slurm_partition"] == "gpu"
    assert params["timeout_min"] == 1440 and type(params["timeout_min"]) is int
    assert params["gpus_per_node"] == 1 and params["cpus_per_task"] == 8 and params["mem_gb"] == 64
    assert params["slurm_array_parallelism"] == 32 and params["slurm_signal_delay_s"] == 300
    assert params["slurm_account"] == "my_project" and params["slurm_qos"] == "normal"
    assert "slurm_constraint" not in params  # null in the example
    assert params["slurm_additional_parameters"]["exclude"] == "node[013-014]"
    assert params["slurm_setup"][1] == "module load cuda/12.1"
    # submitit validates slurm_* names even when it builds another executor
    executor = submitit.AutoExecutor(folder=tmp_path, cluster="debug", **profile.executor_init_kwargs())
    executor.update_parameters(**params)
    with pytest.raises(NameError):
        executor.update_parameters(slurm_not_an_option=1)


def test_minimal_profile_defaults_and_omitted_options(tmp_path):
    profile = load_cluster_profile(write(tmp_path, MINIMAL))
    assert profile.timeout_min == 3 and profile.max_retries == 3
    params = profile.executor_parameters()
    assert params == {"slurm_partition": "debug", "timeout_min": 3, "cpus_per_task": 1,
                      "slurm_array_parallelism": 64, "slurm_signal_delay_s": 120}
    assert profile.executor_init_kwargs() == {"slurm_max_num_timeout": 3}


def test_constraint_and_nulls(tmp_path):
    text = MINIMAL + "constraint: 'a100|h100'\nmem_gb: 7.5\naccount: null\nsetup: null\nmax_retries: 0\n"
    profile = load_cluster_profile(write(tmp_path, text))
    params = profile.executor_parameters()
    assert params["slurm_constraint"] == "a100|h100" and params["mem_gb"] == 7.5
    assert "slurm_account" not in params and "slurm_setup" not in params
    assert profile.executor_init_kwargs() == {"slurm_max_num_timeout": 0}


BAD_PROFILES = [
    # (file text, fragments the single error message must contain)
    ("partition: debug\n", ["missing required key 'timeout_min'"]),
    ("timeout_min: 3\n", ["missing required key 'partition'"]),
    (MINIMAL + "gpus_per_nod: 1\n", ["unknown key 'gpus_per_nod'", "did you mean 'gpus_per_node'"]),
    (MINIMAL + "time: 5\n", ["unknown key 'time'", "known keys"]),
    ("partition: debug\ntimeout_min: 2.5\n", ["'timeout_min'", "an integer >= 1", "2.5"]),
    ("partition: debug\ntimeout_min: '60'\n", ["'timeout_min'", "an integer >= 1", "'60'"]),
    ("partition: debug\ntimeout_min: true\n", ["'timeout_min'", "an integer >= 1", "True"]),
    ("partition: debug\ntimeout_min: 0\n", ["'timeout_min'", "an integer >= 1"]),
    (MINIMAL + "gpus_per_node: -1\n", ["'gpus_per_node'", "an integer >= 0"]),
    (MINIMAL + "cpus_per_task: 0\n", ["'cpus_per_task'", "an integer >= 1"]),
    (MINIMAL + "mem_gb: 8G\n", ["'mem_gb'", "a number > 0", "'8G'"]),
    (MINIMAL + "mem_gb: .nan\n", ["'mem_gb'", "a number > 0"]),
    ("partition: [a, b]\ntimeout_min: 3\n", ["'partition'", "a non-empty string"]),
    ("partition: ''\ntimeout_min: 3\n", ["'partition'", "a non-empty string"]),
    (MINIMAL + "array_parallelism: 0\n", ["'array_parallelism'", "an integer >= 1"]),
    (MINIMAL + "max_retries: -2\n", ["'max_retries'", "an integer >= 0"]),
    (MINIMAL + "setup: module load cuda\n", ["'setup'", "a list of non-empty shell lines"]),
    (MINIMAL + "setup: ['ok', 3]\n", ["'setup'", "a list of non-empty shell lines"]),
    (MINIMAL + "additional_parameters: [exclude]\n", ["'additional_parameters'", "a mapping"]),
    (MINIMAL + "additional_parameters: {partition: gpu}\n", ["'additional_parameters'", "profile key 'partition'"]),
    (MINIMAL + "additional_parameters: {cpus_per_task: 4}\n", ["profile key 'cpus_per_task'"]),
    (MINIMAL + "additional_parameters: {exclude: {a: 1}}\n", ["'additional_parameters'", "'exclude'"]),
    (MINIMAL + "signal_delay_s: 180\n", ["'signal_delay_s'", "timeout_min=3 is 180 s", "got 180"]),
    (MINIMAL + "signal_delay_s: -1\n", ["'signal_delay_s'", "an integer >= 0"]),
    ("- partition: debug\n", ["expected a mapping of profile keys", "got list"]),
    ("", ["expected a mapping of profile keys", "got NoneType"]),
    ("partition: debug\n  timeout_min: 3\n", ["not valid YAML"]),
    ("partition: [debug\n", ["not valid YAML", "line"]),
]


@pytest.mark.parametrize("text, fragments", BAD_PROFILES)
def test_bad_profile_gives_one_error_naming_file_and_key(tmp_path, text, fragments):
    path = write(tmp_path, text)
    with pytest.raises(ClusterProfileError) as info:
        load_cluster_profile(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_several_problems_are_reported_together(tmp_path):
    path = write(tmp_path, "timeout_min: x\nbogus: 1\n")
    with pytest.raises(ClusterProfileError) as info:
        load_cluster_profile(path)
    message = str(info.value)
    assert "unknown key 'bogus'" in message and "missing required key 'partition'" in message
    assert "'timeout_min': expected an integer >= 1, got 'x'" in message


def test_missing_file_names_path_and_known_profiles(tmp_path):
    with pytest.raises(ClusterProfileError, match="cluster profile not found") as info:
        load_cluster_profile(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in str(info.value)
    with pytest.raises(ClusterProfileError) as info:
        load_cluster_profile("no_such_cluster")
    message = str(info.value)
    assert "no_such_cluster.yaml" in message and "'ci'" in message and "'example'" in message


def test_directory_is_not_a_profile(tmp_path):
    with pytest.raises(ClusterProfileError, match="not found"):
        load_cluster_profile(tmp_path)


def test_profile_is_immutable(tmp_path):
    profile = load_cluster_profile(write(tmp_path, MINIMAL))
    with pytest.raises(AttributeError):
        profile.timeout_min = 10  # type: ignore[misc]
