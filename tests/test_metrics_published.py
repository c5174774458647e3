"""Our metric code on the bundled published per-seed scores reproduces the published aggregates."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.report import reference
from harness.report.metrics import aggregate_point

torch.set_num_threads(1)

# agent label in our code -> its row in the published aggregate tables
PUBLISHED_ROWS = {
    "IRIS": ("IRIS", "IRIS paper"),
    "Δ-IRIS": ("Delta-IRIS (released Atari config)", "recomputed"),
    "REM": ("REM", "recomputed"),
    "TWM": ("TWM", "recomputed"),
}


def published_row(agent: str) -> dict:
    name, source = PUBLISHED_ROWS[agent]
    table = reference.published_aggregates()
    rows = table[(table["agent"] == name) & table["source"].str.contains(source)]
    assert len(rows) == 1, f"expected one aggregate row for {name} ({source})"
    return rows.iloc[0].to_dict()


@pytest.mark.parametrize("agent", list(PUBLISHED_ROWS))
def test_published_aggregates_recomputed_to_three_decimals(agent):
    scores = reference.published_hns_matrix(agent, reference.atari_games())
    assert scores.shape == (5, 26)
    iqm, median, mean, gap = aggregate_point(scores)
    row = published_row(agent)
    assert round(iqm, 3) == pytest.approx(row["iqm_hns"], abs=1e-9)
    assert round(median, 3) == pytest.approx(row["median_hns"], abs=1e-9)
    assert round(mean, 3) == pytest.approx(row["mean_hns"], abs=1e-9)
    assert round(gap, 3) == pytest.approx(row["optimality_gap"], abs=1e-9)
    superhuman = int((scores.mean(axis=0) >= 1).sum())
    assert superhuman == row["superhuman_games"]


def test_iris_headline_numbers():
    iqm, median, mean, gap = aggregate_point(reference.published_hns_matrix("IRIS", reference.atari_games()))
    assert (round(iqm, 3), round(median, 3), round(mean, 3), round(gap, 3)) == (0.501, 0.289, 1.046, 0.512)


def test_rem_matches_rem_paper_table_1():
    table = reference.published_aggregates()
    paper = table[(table["agent"] == "REM") & table["source"].str.startswith("REM paper Table 1")].iloc[0]
    values = np.round(aggregate_point(reference.published_hns_matrix("REM", reference.atari_games())), 3)
    assert list(values) == [paper["iqm_hns"], paper["median_hns"], paper["mean_hns"], paper["optimality_gap"]]


def test_published_per_seed_means_equal_published_per_game_means():
    for agent in reference.PUBLISHED_ATARI:
        per_seed = reference.published_per_seed(agent).groupby("game")["score"].mean()
        means = reference.published_means(agent)
        np.testing.assert_allclose(per_seed.loc[means.index], means, atol=0.051, err_msg=agent)


def test_game_names_are_canonicalised():
    assert reference.canonical_game("ALE/MsPacman-v5") == "MsPacman"
    assert reference.canonical_game("ms_pacman") == "MsPacman"
    assert reference.canonical_game("PongNoFrameskip-v4") == "Pong"
    assert reference.canonical_game("Tetris") is None


def test_reference_files_are_byte_identical_to_shared_copies():
    from pathlib import Path

    shared = Path("/work/shared/reference")
    if not shared.is_dir():
        pytest.skip("shared reference folder not present on this machine")
    for source in shared.iterdir():
        assert (reference.REFERENCE_DIR / source.name).read_bytes() == source.read_bytes(), source.name
