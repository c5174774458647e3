"""Atari 100k section: per-game scores beside published ones, HNS aggregates with CIs, probability of
improvement, performance profiles and sample-efficiency curves."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from harness.report import figures, reference
from harness.report.document import Document
from harness.report.loading import Run
from harness.report.metrics import (aggregates_with_cis, iqm_with_ci, performance_profiles, poi_table)

PROFILE_TAUS = np.linspace(0.0, 8.0, 81)  # rliable's Atari 100k range


def _published_labels() -> dict[str, str]:
    return {agent: agent + reference.PUBLISHED_SUFFIX for agent in reference.PUBLISHED_ATARI}


def _eval_points(run: Run) -> dict[int, float]:
    """env_steps -> mean return of the evaluation at that step ("final" preferred over "eval")."""
    by_step: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for e in run.episodes:
        if e.get("kind") in ("eval", "final"):
            by_step[int(e["env_steps"])][e["kind"]].append(float(e["return"]))
    return {step: float(np.mean(kinds.get("final") or kinds["eval"])) for step, kinds in by_step.items()}


def _matrix(values: dict[str, list[tuple[int, float]]], games: list[str]) -> tuple[np.ndarray, list[str]]:
    """(runs x games) from per-game (seed, value) lists, truncated to the smallest seed count;
    returns the dropped (game, seed) entries for the warning."""
    n = min(len(values[g]) for g in games)
    dropped = [f"{g}/seed_{s}" for g in games for s, _ in sorted(values[g])[n:]]
    matrix = np.array([[v for _, v in sorted(values[g])[:n]] for g in games]).T
    return matrix, dropped


def atari_section(doc: Document, runs: list[Run], reps: int, seed: int = 0) -> dict[tuple[str, str, int], float]:
    """Adds the Atari section to `doc`; returns HNS per (agent, env, seed) of aggregated runs."""
    for run in runs:
        if run.usable and reference.canonical_game(run.env) is None:
            run.excluded_reason = f"env {run.env!r} is not an Atari 100k game (no human/random reference score)"
    agents = sorted({r.agent for r in runs if r.aggregated})
    curve_agents = sorted({r.agent for r in runs if r.usable})
    grid = sorted({g for g in (reference.canonical_game(r.env) for r in runs) if g})
    finals: dict[str, dict[str, list[tuple[int, float]]]] = {a: defaultdict(list) for a in agents}
    hns: dict[tuple[str, str, int], float] = {}
    for run in runs:
        if run.aggregated:
            game = reference.canonical_game(run.env)
            value = float(reference.human_normalized(game, run.score))
            finals[run.agent][game].append((run.seed, value))
            hns[(run.agent, run.env, run.seed)] = value
    doc.heading("Atari 100k")
    _per_game_table(doc, runs, grid, agents)

    unfinished = sorted(set(curve_agents) - set(agents))
    if unfinished:
        doc.warn(f"Atari: agent(s) {', '.join(unfinished)} have no finished run: not in the aggregates (curves only)")
    if not agents:
        doc.text("No finished Atari run yet: no aggregates.")
        _curves(doc, runs, curve_agents, grid, reps, seed, published={})
        return hns
    common = [g for g in grid if all(finals[a].get(g) for a in agents)]
    missing = {a: [g for g in grid if not finals[a].get(g)] for a in agents}
    if any(missing.values()):
        doc.warn("Atari: games of the grid with no finished run for some agent — aggregates use only the "
                 f"{len(common)} games every agent has ({', '.join(common) or 'none'}); missing: "
                 + "; ".join(f"{a}: {', '.join(m)}" for a, m in missing.items() if m))
    if len(common) < len(reference.atari_games()):
        doc.text(f"Aggregates are over {len(common)} of the 26 Atari 100k games; published agents are restricted "
                 "to the same games, so their numbers differ from the papers' 26-game values.")
    if not common:
        doc.text("No game has a finished run for every agent: no aggregates.")
        _curves(doc, runs, curve_agents, grid, reps, seed, published={})
        return hns

    score_dict: dict[str, np.ndarray] = {}
    for agent in agents:
        score_dict[agent], dropped = _matrix(finals[agent], common)
        if dropped:
            doc.warn(f"Atari: {agent} has unequal seed counts per game; aggregates use {score_dict[agent].shape[0]} "
                     f"seed(s) per game and leave out {', '.join(dropped)}")
    published = {label: reference.published_hns_matrix(agent, common) for agent, label in _published_labels().items()}
    score_dict.update(published)

    doc.heading("Aggregate human-normalised scores", 3)
    doc.text(f"rliable point estimates with 95% stratified-bootstrap CIs ({reps} reps, percentile) over "
             f"{len(common)} game(s). Rows marked 'published' are the papers' per-seed scores.")
    aggregates = aggregates_with_cis(score_dict, reps, seed)
    aggregates.insert(1, "source", ["published" if a in published else "reproduced" for a in aggregates["agent"]])
    aggregates.insert(2, "runs", [score_dict[a].shape[0] for a in aggregates["agent"]])
    doc.csv("atari_aggregates.csv", aggregates)
    wide = aggregates.assign(cell=[f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in
                                   aggregates[["value", "ci_low", "ci_high"]].itertuples(index=False)])
    doc.table(wide.pivot(index=["agent", "source", "runs"], columns="metric", values="cell")
              .reindex(columns=["iqm", "median", "mean", "optimality_gap"]).reset_index()
              .set_index("agent").loc[list(score_dict)].reset_index())
    doc.image("atari_aggregates.png", figures.aggregates_plot(aggregates), "Aggregate HNS with 95% CIs")

    doc.heading("Probability of improvement", 3)
    poi = poi_table(score_dict, reps, seed)
    doc.csv("atari_probability_of_improvement.csv", poi)
    doc.text(f"P(row > column), Mann-Whitney statistic per game averaged over {len(common)} game(s); "
             f"95% CIs ({reps} reps, independent stratified bootstrap) in atari_probability_of_improvement.csv.")
    matrix = poi.pivot(index="x", columns="y", values="p_x_better").reindex(index=list(score_dict), columns=list(score_dict))
    doc.table(matrix.reset_index().rename(columns={"x": "P(row > column)"}))

    doc.heading("Performance profiles", 3)
    profiles, cis = performance_profiles(score_dict, PROFILE_TAUS, reps, seed)
    doc.csv("atari_performance_profiles.csv", pd.DataFrame(
        [{"agent": a, "tau": t, "fraction": p, "ci_low": cis[a][0][i], "ci_high": cis[a][1][i]}
         for a, prof in profiles.items() for i, (t, p) in enumerate(zip(PROFILE_TAUS, prof))]))
    doc.image("atari_performance_profiles.png", figures.profile_plot(PROFILE_TAUS, profiles, cis),
              "Performance profiles (run-score distributions) with 95% CIs; dashed: published")
    _curves(doc, runs, curve_agents, common, reps, seed, published)
    return hns


def _per_game_table(doc: Document, runs: list[Run], grid: list[str], agents: list[str]) -> None:
    doc.heading("Per-game scores", 3)
    table = reference.human_random().loc[grid, ["random", "human"]].copy()
    for agent in agents:
        scores = defaultdict(list)
        for run in runs:
            if run.agent == agent and run.aggregated:
                scores[reference.canonical_game(run.env)].append(run.score)
        table[agent] = [np.mean(scores[g]) if scores[g] else np.nan for g in grid]
        table[f"{agent} seeds"] = [len(scores[g]) for g in grid]
        table[f"{agent} HNS"] = [round(float(reference.human_normalized(g, table.loc[g, agent])), 3) for g in grid]
    for agent, label in _published_labels().items():
        table[label] = reference.published_means(agent).reindex(grid).to_numpy()
    table = table.reset_index().rename(columns={"index": "game"})
    doc.text("Mean over seeds of each run's mean final-evaluation return (raw score); 'seeds' is the number of "
             "finished runs. Published columns are the papers' 5-seed means.")
    doc.csv("atari_per_game.csv", table)
    doc.table(table.astype({c: str for c in table.columns if c.endswith(" HNS")}), digits=1)


def _curves(doc: Document, runs: list[Run], agents: list[str], games: list[str], reps: int, seed: int,
            published: dict[str, np.ndarray]) -> None:
    """IQM HNS vs agent steps from the periodic evaluations of every usable run (partial runs included);
    a point is drawn only where every game has at least one run evaluated at that step."""
    rows = []
    for agent in agents:
        points: dict[int, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
        for run in runs:
            game = reference.canonical_game(run.env)
            if run.agent == agent and run.usable and game in games:
                for step, value in _eval_points(run).items():
                    points[step][game].append((run.seed, float(reference.human_normalized(game, value))))
        for step in sorted(points):
            if all(points[step].get(g) for g in games):
                matrix, _ = _matrix(points[step], games)
                value, low, high = iqm_with_ci(matrix, reps, seed)
                rows.append({"agent": agent, "env_steps": step, "value": value, "ci_low": low, "ci_high": high,
                             "runs_per_game": matrix.shape[0]})
    curves = pd.DataFrame(rows, columns=["agent", "env_steps", "value", "ci_low", "ci_high", "runs_per_game"])
    doc.heading("Sample-efficiency curves", 3)
    doc.csv("atari_curves.csv", curves)
    if curves.empty:
        doc.text("No evaluation round covers every aggregated game yet: no curve.")
        return
    budget = max(int(r.meta.get("budget_steps") or 0) for r in runs if r.usable) or int(curves["env_steps"].max())
    markers = pd.DataFrame([{"agent": label, "env_steps": budget, **dict(zip(("value", "ci_low", "ci_high"),
                                                                              iqm_with_ci(m, reps, seed)))}
                            for label, m in published.items()], columns=["agent", "env_steps", "value", "ci_low", "ci_high"])
    doc.text(f"IQM HNS over {len(games)} game(s) at each evaluation step with 95% stratified-bootstrap CIs ({reps} reps); "
             "published agents (final scores only) are hollow markers at the budget.")
    doc.image("atari_curves.png", figures.curve_plot(curves, markers, "IQM human-normalised score"),
              "Sample-efficiency curves: IQM HNS vs agent steps (1 step = 4 frames)")
