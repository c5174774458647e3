"""A stop request at any point of a run (what SLURM's time-limit warning does through CellJob) must
checkpoint, and the resumed run must end exactly like an uninterrupted one. No cluster needed: the
stop event is set in-process at chosen points of the loop, as CellJob sets it from its signal handler."""
from __future__ import annotations

import threading

import pytest
import torch

import harness.loop as loop
from harness.suite import expand, load_suite
try:  # tests/ is a package or a plain folder, depending on how pytest was started
    from tests.test_slurm_cluster import final_results
except ImportError:
    from test_slurm_cluster import final_results

SUITE = """\
name: stopresume
family: sanity
envs: [catch]
budget: {agent_steps: 1000}
evaluation: {every_steps: 200, episodes: 8, final_episodes: 8, num_envs: 4}
seeds: 1
checkpoint_every_minutes: 1000
agents:
  random: {profile: tiny}
"""


@pytest.fixture(scope="module")
def cell_and_reference(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("stopresume")
    (root / "suite.yaml").write_text(SUITE)
    spec = expand(load_suite(root / "suite.yaml"))[0]
    outcome = loop.run_cell(spec, root / "reference", deterministic=True, show_progress=False, handle_signals=False)
    assert outcome == "done"
    return spec, final_results(spec.run_dir(root / "reference"))


# (env steps, n-th loop tick at that step count) where the stop is requested. The tiny random agent
# collects 100 steps per epoch with one env: ticks come after every collected step and once at the
# end of each epoch, so 600 has two ticks: the last step of the epoch's collection, then the epoch end.
STOP_POINTS = [(537, 1), (600, 1), (600, 2)]


@pytest.mark.slow
@pytest.mark.parametrize("stop_at_steps, nth_tick", STOP_POINTS, ids=["mid-collection", "collection-end", "epoch-end"])
def test_stop_anywhere_then_resume_equals_uninterrupted(cell_and_reference, tmp_path, monkeypatch, stop_at_steps,
                                                        nth_tick):
    spec, reference = cell_and_reference
    stop, seen, tick = threading.Event(), [0], loop.Run._tick

    def tick_and_maybe_stop(run: loop.Run) -> None:
        if run.loop.env_steps == stop_at_steps:
            seen[0] += 1
            if seen[0] == nth_tick:
                stop.set()
        tick(run)

    monkeypatch.setattr(loop.Run, "_tick", tick_and_maybe_stop)
    runs = tmp_path / "runs"
    assert loop.run_cell(spec, runs, deterministic=True, show_progress=False, handle_signals=False,
                         stop=stop) == "stopped"
    monkeypatch.setattr(loop.Run, "_tick", tick)
    assert loop.run_cell(spec, runs, deterministic=True, show_progress=False, handle_signals=False) == "done"

    run_dir = spec.run_dir(runs)
    assert f"{stop_at_steps} env steps" in (run_dir / "log.txt").read_text()  # resumed where it stopped
    assert final_results(run_dir) == reference
