"""Aggregate metrics with stratified-bootstrap CIs (rliable), and a vectorised probability of improvement.

Score matrices are (num_runs x num_games) human-normalised scores, as rliable expects. rliable draws
from numpy's global RNG, so every bootstrap here runs inside `seeded()` (state restored afterwards)
to make reports reproducible.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics as rmetrics

METRICS = ("iqm", "median", "mean", "optimality_gap")
CI_PERCENTILES = (2.5, 97.5)


def iqm(scores: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """25% trimmed mean, computed exactly as scipy.stats.trim_mean (rliable's `aggregate_iqm`) but without
    scipy's per-call wrapper overhead, which dominated the bootstrap time (axis=None: over all values)."""
    values = np.asarray(scores, dtype=float)
    values = values.reshape(-1) if axis is None else np.moveaxis(values, axis, -1)
    n = values.shape[-1]
    cut = int(0.25 * n)
    part = np.partition(values, (cut, n - cut - 1), axis=-1)
    return part[..., cut:n - cut].mean(axis=-1)


def aggregate_point(scores: np.ndarray) -> np.ndarray:
    """[IQM, median, mean, optimality gap] of a (runs x games) matrix (rliable's point-estimate formulas)."""
    return np.array([iqm(scores), rmetrics.aggregate_median(scores),
                     rmetrics.aggregate_mean(scores), rmetrics.aggregate_optimality_gap(scores)])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def aggregates_with_cis(score_dict: dict[str, np.ndarray], reps: int, seed: int = 0) -> pd.DataFrame:
    """Rows: agent, metric, value, ci_low, ci_high (95% stratified bootstrap over runs, percentile)."""
    with seeded(seed):
        points, intervals = rly.get_interval_estimates(score_dict, aggregate_point, reps=reps)
    rows = []
    for agent, point in points.items():
        for i, metric in enumerate(METRICS):
            rows.append({"agent": agent, "metric": metric, "value": float(point[i]),
                         "ci_low": float(intervals[agent][0, i]), "ci_high": float(intervals[agent][1, i])})
    return pd.DataFrame(rows)


def _poi_batched(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) averaged over games for batches: x (B, n, games), y (B, m, games) -> (B,).

    Per game this is the Mann-Whitney U statistic of x over y divided by n*m (ties count 1/2), exactly
    rliable's `probability_of_improvement` (whose 0.5 for identical columns is this same value).
    """
    greater = (x[:, :, None, :] > y[:, None, :, :]).mean(axis=(1, 2))
    ties = (x[:, :, None, :] == y[:, None, :, :]).mean(axis=(1, 2))
    return (greater + 0.5 * ties).mean(axis=-1)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) for (runs_x x games) and (runs_y x games) score matrices."""
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"probability of improvement needs the same games: {x.shape[1]} vs {y.shape[1]}")
    return float(_poi_batched(x[None], y[None])[0])


def _stratified_resample(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, runs, games): runs resampled with replacement independently within each game."""
    runs, games = scores.shape
    idx = rng.integers(0, runs, size=(reps, runs, games))
    return scores[idx, np.arange(games)[None, None, :]]


def poi_with_ci(x: np.ndarray, y: np.ndarray, reps: int, seed: int = 0, chunk: int = 500) -> tuple[float, float, float]:
    """Point estimate and 95% CI of P(X > Y); x and y resampled independently (rliable's
    StratifiedIndependentBootstrap), percentile intervals."""
    rng = np.random.default_rng(seed)
    stats = []
    for start in range(0, reps, chunk):
        n = min(chunk, reps - start)
        stats.append(_poi_batched(_stratified_resample(x, n, rng), _stratified_resample(y, n, rng)))
    low, high = np.percentile(np.concatenate(stats), CI_PERCENTILES)
    return probability_of_improvement(x, y), float(low), float(high)


def poi_table(score_dict: dict[str, np.ndarray], reps: int, seed: int = 0) -> pd.DataFrame:
    """Every ordered pair (X, Y), X != Y: P(X > Y) with its CI."""
    rows = []
    names = list(score_dict)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            p, low, high = poi_with_ci(score_dict[a], score_dict[b], reps, seed)
            rows.append({"x": a, "y": b, "p_x_better": p, "ci_low": low, "ci_high": high})
            rows.append({"x": b, "y": a, "p_x_better": 1 - p, "ci_low": 1 - high, "ci_high": 1 - low})
    return pd.DataFrame(rows, columns=["x", "y", "p_x_better", "ci_low", "ci_high"])


def _score_distribution(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of run-game scores above each tau (rliable's run-score distribution)."""
    return (scores.reshape(-1)[:, None] > taus[None, :]).mean(axis=0)


def performance_profiles(score_dict: dict[str, np.ndarray], taus: np.ndarray, reps: int,
                         seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run-score distributions with 95% CIs (rliable, vectorised profile function)."""
    with seeded(seed):
        return rly.create_performance_profile(score_dict, taus, reps=reps,
                                              custom_profile_func=_score_distribution)


def iqm_with_ci(scores: np.ndarray, reps: int, seed: int = 0, chunk: int = 500) -> tuple[float, float, float]:
    """IQM of a (runs x games) matrix with a 95% stratified-bootstrap CI, vectorised over replicates.

    Same estimator and resampling as rliable's `get_interval_estimates(aggregate_iqm)` (percentile
    method), without arch's per-replicate Python overhead: the curves need one per agent and eval round.
    """
    rng = np.random.default_rng(seed)
    stats = []
    for start in range(0, reps, chunk):
        sample = _stratified_resample(scores, min(chunk, reps - start), rng)
        stats.append(iqm(sample.reshape(len(sample), -1), axis=1))
    low, high = np.percentile(np.concatenate(stats), CI_PERCENTILES)
    return float(iqm(scores)), float(low), float(high)


def mean_with_ci(values: np.ndarray, reps: int, seed: int = 0) -> tuple[float, float, float]:
    """Mean over seeds and a 95% percentile-bootstrap CI (the CI collapses to the mean for one seed)."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(reps, len(values)))].mean(axis=1)
    low, high = np.percentile(means, CI_PERCENTILES)
    return float(values.mean()), float(low), float(high)
