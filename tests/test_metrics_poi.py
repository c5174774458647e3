"""The vectorised probability of improvement and IQM bootstrap agree with rliable."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from rliable import library as rly
from rliable import metrics as rmetrics

from harness.report import metrics

torch.set_num_threads(1)


@pytest.mark.parametrize("runs_x,runs_y", [(5, 5), (3, 7), (1, 4)])
def test_probability_of_improvement_equals_rliable(runs_x, runs_y):
    rng = np.random.default_rng(runs_x * 10 + runs_y)
    x = rng.integers(0, 4, size=(runs_x, 6)).astype(float)  # small integers: plenty of ties
    y = rng.integers(0, 4, size=(runs_y, 6)).astype(float)
    y[:, 0] = x[0, 0]  # a column of equal values
    expected = rmetrics.probability_of_improvement(x, y)
    assert metrics.probability_of_improvement(x, y) == pytest.approx(expected, abs=1e-12)
    assert metrics.probability_of_improvement(y, x) == pytest.approx(1 - expected, abs=1e-12)


def test_identical_scores_give_one_half():
    x = np.arange(12.0).reshape(3, 4)
    assert rmetrics.probability_of_improvement(x, x) == metrics.probability_of_improvement(x, x) == 0.5


def test_poi_table_has_every_ordered_pair_with_ci_around_point():
    rng = np.random.default_rng(0)
    scores = {"a": rng.normal(1, 1, (5, 8)), "b": rng.normal(0, 1, (5, 8)), "c": rng.normal(0, 1, (4, 8))}
    table = metrics.poi_table(scores, reps=200)
    assert len(table) == 6
    assert (table["ci_low"] <= table["p_x_better"] + 1e-12).all() and (table["p_x_better"] <= table["ci_high"] + 1e-12).all()
    ab = table[(table.x == "a") & (table.y == "b")].iloc[0]
    assert ab.p_x_better == pytest.approx(rmetrics.probability_of_improvement(scores["a"], scores["b"]))
    assert ab.p_x_better > 0.5


def test_iqm_bootstrap_matches_rliable_interval():
    rng = np.random.default_rng(1)
    scores = rng.lognormal(0, 1, size=(5, 26))
    value, low, high = metrics.iqm_with_ci(scores, reps=2000, seed=0)
    with metrics.seeded(0):
        points, cis = rly.get_interval_estimates(
            {"x": scores}, lambda s: np.array([rmetrics.aggregate_iqm(s)]), reps=2000)
    assert value == pytest.approx(points["x"][0], abs=1e-12)
    width = cis["x"][1, 0] - cis["x"][0, 0]
    assert low == pytest.approx(cis["x"][0, 0], abs=0.1 * width)  # same estimator, different random draws
    assert high == pytest.approx(cis["x"][1, 0], abs=0.1 * width)


def test_mean_with_ci_single_seed_collapses():
    assert metrics.mean_with_ci(np.array([3.0]), reps=50) == (3.0, 3.0, 3.0)


@pytest.mark.parametrize("shape", [(5, 26), (3, 7), (1, 1), (2, 3)])
def test_fast_iqm_equals_rliable(shape):
    scores = np.random.default_rng(sum(shape)).normal(size=shape)
    assert metrics.iqm(scores) == pytest.approx(rmetrics.aggregate_iqm(scores), abs=1e-12)
    batched = metrics.iqm(np.stack([scores.reshape(-1), -scores.reshape(-1)]), axis=1)
    assert batched[1] == pytest.approx(rmetrics.aggregate_iqm(-scores), abs=1e-12)
