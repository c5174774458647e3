"""Replay: episodes on disk and in RAM, zero-padded segments, ongoing episodes, exact resume."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.replay import Replay


def frame(value: int) -> np.ndarray:
    return np.full((3, 4, 4), value, np.uint8)


def fill(replay: Replay, env: int, first: int, steps: int, end: str | None) -> int:
    episode = replay.start_episode(env, frame(first))
    for t in range(steps):
        last = t == steps - 1
        replay.add_step(env, action=t % 3, reward=float(t), terminated=last and end == "terminated",
                        truncated=last and end == "truncated", next_obs=frame(first + t + 1))
    return episode


@pytest.mark.parametrize("on_disk", [True, False])
def test_episodes_and_segments(tmp_path: Path, on_disk: bool) -> None:
    replay = Replay((3, 4, 4), num_envs=2, directory=tmp_path / "replay" if on_disk else None)
    a = fill(replay, 0, 10, 5, "terminated")
    b = fill(replay, 1, 100, 3, None)  # still ongoing
    assert (a, b) == (0, 1) and replay.is_finished(a) and not replay.is_finished(b)
    assert list(replay.episode_lengths()) == [5, 3] and replay.num_steps == 8
    assert replay.observations(a, 0, 6)[:, 0, 0, 0].tolist() == [10, 11, 12, 13, 14, 15]
    assert replay.observations(b, 0, 4)[:, 0, 0, 0].tolist() == [100, 101, 102, 103]

    seg = replay.segment(a, -2, 10)  # left and right padding
    assert seg.mask.tolist() == [False, False, True, True, True, True, True, True, False, False]
    assert seg.step_mask.tolist() == [False, False, True, True, True, True, True, False, False, False]
    assert seg.obs[2:8, 0, 0, 0].tolist() == [10, 11, 12, 13, 14, 15] and not seg.obs[:2].any()
    assert seg.actions[2:7].tolist() == [0, 1, 2, 0, 1] and seg.rewards[2:7].tolist() == [0, 1, 2, 3, 4]
    assert seg.terminated.tolist().index(True) == 6 and not seg.truncated.any()
    if on_disk:
        assert (tmp_path / "replay" / "frames.u8").stat().st_size == 6 * 48  # only the finished episode


def test_state_dict_resumes_and_drops_uncommitted_frames(tmp_path: Path) -> None:
    replay = Replay((3, 4, 4), num_envs=1, directory=tmp_path / "replay")
    fill(replay, 0, 0, 4, "truncated")
    ongoing = fill(replay, 0, 50, 2, None)
    replay.flush()
    state = replay.state_dict()
    replay.add_step(0, 1, 1.0, True, False, frame(99))  # after the checkpoint: must vanish on resume
    fill(replay, 0, 70, 3, "terminated")

    resumed = Replay((3, 4, 4), num_envs=1, directory=tmp_path / "replay")
    resumed.load_state_dict(state)
    assert list(resumed.episode_lengths()) == [4, 2] and resumed.ongoing_episode(0) == ongoing
    assert (tmp_path / "replay" / "frames.u8").stat().st_size == 5 * 48
    resumed.add_step(0, 2, 0.5, True, False, frame(53))
    assert resumed.observations(ongoing, 0, 4)[:, 0, 0, 0].tolist() == [50, 51, 52, 53]
    assert resumed.steps(ongoing, 0, 3)["actions"].tolist() == [0, 1, 2]
    assert resumed.segment(0, 0, 5).truncated.tolist() == [False, False, False, True, False]


def test_double_start_is_an_error() -> None:
    replay = Replay((3, 4, 4))
    replay.start_episode(0, frame(0))
    with pytest.raises(RuntimeError, match="already has an ongoing episode"):
        replay.start_episode(0, frame(1))
