"""benchmarks/rem_controller_probe.py: a fresh C in the true game and in a run's M, scored in the real game;
and benchmarks/imagination_fidelity.py on the same REM run."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agents.rem.config import tiny
from harness.store import CellLock, RunStore
from tiny_cells import assert_fidelity_report, run_sanity_cell

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "rem_controller_probe.py"
QUICK = {"steps_per_epoch": 50, "tokenizer.updates_per_epoch": 2, "tokenizer.batch_size": 4,
         "world_model.updates_per_epoch": 2, "world_model.batch_size": 3, "world_model.segment_blocks": 4,
         "world_model.start_after_epoch": 0, "controller.updates_per_epoch": 2, "controller.batch_size": 3,
         "controller.burn_in": 3, "controller.start_after_epoch": 0}
ROW = re.compile(r"^updates (\d+) \(\d+ s\): imagined return ([-+.\d]+), entropy ([.\d]+), value loss ([.\d]+), "
                 r"real return ([-+.\d]+)$")


def probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--updates", "2", "--every", "1", "--episodes", "2",
                           "--set", "batch_size=3", *args], capture_output=True, text=True, timeout=300)


def assert_rows(stdout: str) -> None:
    """Two rows, after updates 1 and 2: an entropy within [0, ln 3] and Catch returns within [-3, 3]."""
    rows = [ROW.match(line) for line in stdout.splitlines() if line.startswith("updates ") and "(" in line]
    assert [int(row.group(1)) for row in rows] == [1, 2], stdout
    for row in rows:
        assert 0.0 <= float(row.group(3)) <= 1.0987
        assert -3.0 <= float(row.group(5)) <= 3.0
        assert -9.0 <= float(row.group(2)) <= 9.0  # 9 imagined decisions, rewards in {-1, 0, 1}


def test_true_game_imagination():
    result = probe("--imagination", "game", "--v-updates", "2", "--set", "gamma=0.9")
    assert result.returncode == 0, result.stderr
    assert "gamma=0.9," in result.stdout  # the override reached the controller's config
    assert_rows(result.stdout)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return run_sanity_cell(tmp_path_factory.mktemp("rem_run"), "rem", QUICK)


def test_fidelity_report_on_a_rem_run(run_dir):
    config = tiny()
    assert_fidelity_report(run_dir, config.controller.imagine_horizon - config.world_model.context_blocks)


def test_run_imagination_leaves_the_run_intact_and_refuses_a_live_run(run_dir):
    frames = RunStore(run_dir).replay_dir / "frames.u8"
    size = frames.stat().st_size
    result = probe("--imagination", "model", "--run", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert "V and M loaded, replay of 100 steps" in result.stdout
    assert_rows(result.stdout)
    assert frames.stat().st_size == size

    lock = CellLock(run_dir)
    assert lock.acquire({"owner": "test"})
    try:
        live = probe("--imagination", "model", "--run", str(run_dir))
    finally:
        lock.release()
    assert live.returncode != 0 and "the run is live" in live.stderr

    bad = subprocess.run([sys.executable, str(SCRIPT), "--set", "no_such_field=1"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0 and "--set: unknown config key 'controller.no_such_field'" in bad.stderr
