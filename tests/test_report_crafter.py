"""Crafter part of the report: success rates and Crafter score under both definitions, by hand."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from harness.report import build_report
from harness.report.crafter_scores import ACHIEVEMENTS, BENCHMARK, EVAL_STYLE, budgets, crafter_score
from harness.report.loading import Run
from harness.report.synthetic import write_run

torch.set_num_threads(1)

SUITE = "crafter_small"


def episode(kind: str, step: int, unlocked: list[str], ret: float, round_: int | None = None) -> dict:
    achievements = {a: (2 if a in unlocked else 0) for a in ACHIEVEMENTS}
    return {"kind": kind, "env_steps": step, "frames": step, "return": ret, "length": 100,
            "eval_round": round_, "wall_time": 0.0, "achievements": achievements}


def crafter_episodes(seed: int) -> list[dict]:
    extra = ["collect_wood"] if seed == 0 else []
    return [
        episode("train", 500, ["wake_up"], 1.0),
        episode("train", 1000, ["wake_up", "collect_sapling"] + extra, 2.0),
        episode("train", 2000, ["wake_up", "place_table"], 3.0),
        episode("train", 2500, ACHIEVEMENTS, 22.0),  # beyond the 2,000-step budget: never counted
        episode("eval", 1000, ["eat_cow"], 1.0, 1),
        episode("eval", 1000, [], 0.0, 1),
        episode("eval", 2000, ["eat_cow", "wake_up"], 2.0, 2),
        episode("final", 2000, ["wake_up"], 1.0, 2),
        episode("final", 2000, ["wake_up", "collect_drink"], 2.0, 2),
    ]


def score_of(rates: dict[str, float]) -> float:
    values = np.array([rates.get(a, 0.0) for a in ACHIEVEMENTS])
    return float(np.exp(np.mean(np.log(1 + values))) - 1)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        write_run(runs_dir, SUITE, "delta_iris", "crafter", seed, family="crafter", budget_steps=2000,
                  episodes=crafter_episodes(seed))
    return build_report(runs_dir, SUITE, tmp_path_factory.mktemp("out") / SUITE, reps=50)


def test_crafter_score_definition():
    assert crafter_score([0.0] * 22) == pytest.approx(0.0)
    assert crafter_score([100.0] * 22) == pytest.approx(100.0)
    rates = [100.0] + [0.0] * 21
    assert crafter_score(rates) == pytest.approx(np.exp(np.log(101) / 22) - 1)
    assert len(ACHIEVEMENTS) == 22 and sorted(ACHIEVEMENTS) == list(ACHIEVEMENTS)


def test_achievement_names_match_the_crafter_package():
    crafter_constants = pytest.importorskip("crafter.constants")
    assert tuple(sorted(crafter_constants.achievements)) == ACHIEVEMENTS


def test_budgets_are_millions_or_the_run_budget():
    big = Run(path=None, suite="s", agent="a", env="crafter", seed=0, meta={"budget_steps": 10_000_000},
              episodes=[{"kind": "train", "env_steps": 3_200_000, "return": 0.0}])
    small = Run(path=None, suite="s", agent="a", env="crafter", seed=0, meta={"budget_steps": 2000},
                episodes=[{"kind": "train", "env_steps": 1500, "return": 0.0}])
    assert budgets([big]) == [1_000_000, 2_000_000, 3_000_000]
    assert budgets([small]) == [2000]


def test_per_run_scores_by_hand(out):
    per_run = pd.read_csv(out / "crafter_per_run.csv")
    bench0 = per_run[(per_run.seed == 0) & (per_run.definition == BENCHMARK)].iloc[0]
    rates = {"wake_up": 100.0, "collect_sapling": 100 / 3, "collect_wood": 100 / 3, "place_table": 100 / 3}
    assert bench0.episodes == 3 and bench0.budget_steps == 2000
    assert bench0.score == pytest.approx(score_of(rates))
    assert bench0.rate_collect_sapling == pytest.approx(100 / 3)
    assert bench0["return"] == pytest.approx(2.0)
    eval0 = per_run[(per_run.seed == 0) & (per_run.definition == EVAL_STYLE)].iloc[0]
    assert eval0.episodes == 2  # the final episodes are preferred over the eval round at the same step
    assert eval0.score == pytest.approx(score_of({"wake_up": 100.0, "collect_drink": 50.0}))
    assert eval0.rate_eat_cow == 0.0


def test_scores_across_seeds_and_report_text(out):
    summary = pd.read_csv(out / "crafter_scores.csv")
    bench = summary[summary.definition == BENCHMARK].iloc[0]
    seed1 = score_of({"wake_up": 100.0, "collect_sapling": 100 / 3, "place_table": 100 / 3})
    seed0 = score_of({"wake_up": 100.0, "collect_sapling": 100 / 3, "collect_wood": 100 / 3, "place_table": 100 / 3})
    assert bench.seeds == 2 and bench.score == pytest.approx((seed0 + seed1) / 2)
    assert bench.score_ci_low <= bench.score <= bench.score_ci_high
    rates = pd.read_csv(out / "crafter_success_rates.csv")
    assert rates[rates.definition == BENCHMARK].iloc[0].rate_collect_wood == pytest.approx(100 / 6)
    md = (out / "report.md").read_text()
    assert "benchmark (Hafner 2022)" in md and "Δ-IRIS-style" in md and "50 reps" in md
    assert (out / "crafter_success_rates_benchmark.png").is_file() and (out / "crafter_score_eval.png").is_file()
