"""build_report on synthetic Atari run directories, including broken and mismatched runs."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch

from harness.report import build_report, reference
from harness.report.synthetic import write_run

torch.set_num_threads(1)

SUITE = "atari_small"
AGENTS = ("iris", "rem")
GAMES = ("Pong", "Breakout", "MsPacman")
SEEDS = (0, 1)


def episodes_for(agent: str, game: str, seed: int) -> list[dict]:
    """Deterministic returns: two eval rounds (3 episodes), then 4 final episodes; a few train lives."""
    base = {"iris": 1.0, "rem": 2.0}[agent] * (GAMES.index(game) + 1) * 10 + seed
    episodes = [{"kind": "train", "env_steps": 100 * i, "frames": 400 * i, "return": 1.0, "game_return": 5.0,
                 "length": 50, "wall_time": float(i)} for i in range(1, 4)]
    for round_, step in ((1, 500), (2, 1000)):
        episodes += [{"kind": "eval", "env_steps": step, "frames": 4 * step, "return": base * round_ / 2 + k,
                      "length": 100, "eval_round": round_, "wall_time": 1.0} for k in range(3)]
    episodes += [{"kind": "final", "env_steps": 1000, "frames": 4000, "return": base + k, "length": 100,
                  "eval_round": 3, "wall_time": 2.0} for k in range(4)]
    return episodes


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("runs")
    for agent in AGENTS:
        for game in GAMES:
            for seed in SEEDS:
                write_run(runs_dir, SUITE, agent, game, seed, family="atari", budget_steps=1000,
                          episodes=episodes_for(agent, game, seed))
    # broken or mismatched run directories
    corrupt = write_run(runs_dir, SUITE, "iris", "Pong", 7, family="atari", episodes=episodes_for("iris", "Pong", 7))
    (corrupt / "run.json").write_text('{"format_version": 1, "suite": ')
    old = write_run(runs_dir, SUITE, "iris", "Pong", 8, family="atari", episodes=episodes_for("iris", "Pong", 8),
                    format_version=0)
    other = write_run(runs_dir, SUITE, "rem", "Pong", 9, family="atari", fingerprint="fp-other",
                      episodes=episodes_for("rem", "Pong", 9))
    partial = write_run(runs_dir, SUITE, "rem", "Breakout", 5, family="atari", status="running",
                        episodes=[e for e in episodes_for("rem", "Breakout", 5) if e["kind"] != "final"])
    (runs_dir / SUITE / "iris" / "Pong" / "seed_6").mkdir()  # no run.json at all
    truncated = runs_dir / SUITE / "iris" / "Breakout" / "seed_1" / "episodes.jsonl"
    with truncated.open("a") as handle:
        handle.write('{"kind": "final", "env_steps": 1000, "ret')
    before = tree_hash(runs_dir)
    out = build_report(runs_dir, SUITE, tmp_path_factory.mktemp("out") / SUITE, reps=100)
    return {"runs_dir": runs_dir, "out": out, "before": before, "corrupt": corrupt, "old": old, "other": other,
            "partial": partial}


def test_report_files_exist_and_html_is_self_contained(report):
    out = report["out"]
    for name in ("report.md", "report.html", "runs.csv", "episodes.csv", "atari_per_game.csv", "atari_aggregates.csv",
                 "atari_probability_of_improvement.csv", "atari_curves.csv", "atari_performance_profiles.png",
                 "atari_curves.png", "atari_aggregates.png", "speed.csv"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert ".png'" not in html and not list(out.glob(".*.tmp"))


def test_runs_dir_is_untouched(report):
    assert tree_hash(report["runs_dir"]) == report["before"]


def test_fingerprint_warning_and_not_aggregated_list(report):
    for text in ((report["out"] / "report.md").read_text(), (report["out"] / "report.html").read_text()):
        assert "WARNING" in text and "fp-other" in text and "majority" in text
        assert "Runs not aggregated" in text
    md = (report["out"] / "report.md").read_text()
    assert md.index("WARNING") < md.index("## Atari")
    section = md[md.index("## Runs not aggregated"):]
    assert "run.json unparsable" in section and "format_version=0" in section and "run.json missing" in section
    assert "eval_fingerprint fp-other" in section and "status='running'" in section
    assert "iris/Breakout/seed_1: 1" in section  # the truncated episodes line was skipped


def test_runs_csv_scores_and_hns_by_hand(report):
    runs = pd.read_csv(report["out"] / "runs.csv")
    assert len(runs) == 12 + 5
    assert runs["aggregated"].sum() == 12
    row = runs[(runs.agent == "rem") & (runs.env == "MsPacman") & (runs.seed == 1)].iloc[0]
    final = [2.0 * 3 * 10 + 1 + k for k in range(4)]  # base + k
    assert row.score == pytest.approx(np.mean(final))
    ref = reference.human_random().loc["MsPacman"]
    assert row.hns == pytest.approx((np.mean(final) - ref.random) / (ref.human - ref.random))
    assert row.status == "done" and row.n_final_episodes == 4
    bad = runs[runs.path.str.endswith("seed_7")].iloc[0]
    assert not bad.aggregated and "unparsable" in bad.reason


def test_per_game_table_and_aggregates_by_hand(report):
    per_game = pd.read_csv(report["out"] / "atari_per_game.csv").set_index("game")
    assert per_game.loc["Pong", "iris"] == pytest.approx(np.mean([10 + s + 1.5 for s in SEEDS]))
    assert per_game.loc["Pong", "iris seeds"] == 2
    assert per_game.loc["Pong", "REM (published)"] == reference.published_means("REM")["Pong"]
    aggregates = pd.read_csv(report["out"] / "atari_aggregates.csv")
    hns = np.array([[float(reference.human_normalized(g, 2.0 * (GAMES.index(g) + 1) * 10 + s + 1.5)) for g in sorted(GAMES)]
                    for s in SEEDS])
    rem = aggregates[(aggregates.agent == "rem")].set_index("metric")
    assert rem.loc["iqm", "value"] == pytest.approx(scipy.stats.trim_mean(hns, 0.25, axis=None))
    assert rem.loc["mean", "value"] == pytest.approx(hns.mean())
    assert rem.loc["optimality_gap", "value"] == pytest.approx(1 - np.minimum(hns, 1).mean())
    assert rem.loc["iqm", "ci_low"] <= rem.loc["iqm", "value"] <= rem.loc["iqm", "ci_high"]
    published = aggregates[aggregates.source == "published"]
    assert set(published.agent) == {"IRIS (published)", "Δ-IRIS (published)", "REM (published)", "TWM (published)"}
    assert (published.runs == 5).all()


def test_curves_use_eval_rounds_and_partial_runs(report):
    curves = pd.read_csv(report["out"] / "atari_curves.csv")
    assert sorted(curves[curves.agent == "iris"].env_steps) == [500, 1000]
    rem_500 = curves[(curves.agent == "rem") & (curves.env_steps == 500)].iloc[0]
    assert rem_500.runs_per_game == 2  # Breakout has 3 runs at step 500 (incl. the partial one): truncated to 2
    poi = pd.read_csv(report["out"] / "atari_probability_of_improvement.csv")
    assert poi[(poi.x == "rem") & (poi.y == "iris")].p_x_better.iloc[0] == pytest.approx(1.0)


def test_missing_suite_and_every_suite(report, tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_suite"):
        build_report(report["runs_dir"], "no_such_suite", tmp_path / "x", reps=10)
    with pytest.raises(ValueError, match="read-only"):
        build_report(report["runs_dir"], SUITE, report["runs_dir"] / "report", reps=10)
    base = build_report(report["runs_dir"], None, tmp_path / "all", reps=20)
    assert (base / SUITE / "report.md").is_file()


def test_suite_without_finished_runs_still_reports(tmp_path):
    runs_dir = tmp_path / "runs"
    write_run(runs_dir, "early", "twm", "Pong", 0, family="atari", status="running", budget_steps=1000,
              episodes=[e for e in episodes_for("rem", "Pong", 0) if e["kind"] != "final"])
    broken = write_run(runs_dir, "early", "iris", "Pong", 0, family="atari", episodes=[])
    (broken / "run.json").write_text("[1, 2]")
    (runs_dir / "empty_suite").mkdir()
    out = build_report(runs_dir, "early", tmp_path / "out", reps=10)
    md = (out / "report.md").read_text()
    assert "No finished Atari run yet" in md and "twm have no finished run" in md
    assert "expected a JSON object" in md and "status='running'" in md
    assert sorted(pd.read_csv(out / "atari_curves.csv").env_steps) == [500, 1000]
    empty = build_report(runs_dir, "empty_suite", tmp_path / "empty", reps=10)
    assert "None: every run directory" in (empty / "report.md").read_text()
    assert pd.read_csv(empty / "runs.csv").empty
