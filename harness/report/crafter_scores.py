"""Crafter success rates and score, at budgets, under two labelled definitions.

- "benchmark (Hafner 2022)": every training episode that ended within the budget;
- "Δ-IRIS-style": the separate evaluation episodes of the latest eval round at or under the budget
  ("final" episodes count as the round at their env_steps, preferred over an eval round there).
Per run: success rate of an achievement = % of those episodes in which it was unlocked at least once;
Crafter score = exp(mean_i ln(1 + s_i)) - 1 over the 22 rates s_i in percent. Across seeds: mean and a
percentile-bootstrap CI (per-seed scores first, as in crafter's own analysis scripts).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.envs.crafter import ACHIEVEMENTS, crafter_score  # the env module owns the definitions
from harness.report.loading import Run
from harness.report.metrics import mean_with_ci
from harness.report.reference import REFERENCE_DIR

BENCHMARK = "benchmark (Hafner 2022): all training episodes within the budget"
EVAL_STYLE = "Δ-IRIS-style: separate evaluation episodes (the eval round at/under the budget)"
STEP_UNIT = 1_000_000


def budgets(runs: list[Run]) -> list[int]:
    """1M, 2M, ... up to the largest env_steps logged; for runs shorter than 1M, their budget."""
    largest = max((e["env_steps"] for r in runs for e in r.episodes), default=0)
    if largest >= STEP_UNIT:
        return list(range(STEP_UNIT, int(largest) + 1, STEP_UNIT))
    declared = {int(r.meta["budget_steps"]) for r in runs if r.meta.get("budget_steps")}
    return sorted(declared) or ([int(largest)] if largest else [])


def episodes_at_budget(run: Run, budget: int, definition: str) -> list[dict]:
    if definition == BENCHMARK:
        return [e for e in run.episodes if e.get("kind") == "train" and e["env_steps"] <= budget]
    rounds: dict[int, dict[str, list[dict]]] = {}
    for e in run.episodes:
        if e.get("kind") in ("eval", "final") and e["env_steps"] <= budget:
            rounds.setdefault(int(e["env_steps"]), {}).setdefault(e["kind"], []).append(e)
    if not rounds:
        return []
    latest = rounds[max(rounds)]
    return latest.get("final") or latest["eval"]


def success_rates(episodes: list[dict]) -> np.ndarray:
    """% of episodes unlocking each achievement at least once, in ACHIEVEMENTS order."""
    unlocked = np.array([[(e.get("achievements") or {}).get(a, 0) > 0 for a in ACHIEVEMENTS] for e in episodes])
    return 100.0 * unlocked.mean(axis=0)


def crafter_tables(runs: list[Run], reps: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per-run table, per-agent score table with CIs, per-agent achievement success rates).

    Per-run rows: agent, seed, definition, budget_steps, episodes, score, return, rate_<achievement>...
    """
    rows = []
    grid = budgets(runs)
    for run in runs:  # a partial run counts at the budgets it has reached
        for budget in grid:
            for definition in (BENCHMARK, EVAL_STYLE):
                episodes = episodes_at_budget(run, budget, definition)
                if not episodes or budget > run.env_steps_done:
                    continue
                rates = success_rates(episodes)
                row = {"agent": run.agent, "env": run.env, "seed": run.seed, "definition": definition,
                       "budget_steps": budget, "episodes": len(episodes), "score": crafter_score(rates),
                       "return": float(np.mean([e["return"] for e in episodes]))}
                row.update({f"rate_{a}": r for a, r in zip(ACHIEVEMENTS, rates)})
                rows.append(row)
    per_run = pd.DataFrame(rows)
    if per_run.empty:
        return per_run, pd.DataFrame(), pd.DataFrame()
    keys = ["agent", "definition", "budget_steps"]
    summary = []
    for (agent, definition, budget), group in per_run.groupby(keys, sort=True):
        score, low, high = mean_with_ci(group["score"].to_numpy(), reps, seed)
        ret, ret_low, ret_high = mean_with_ci(group["return"].to_numpy(), reps, seed)
        summary.append({"agent": agent, "definition": definition, "budget_steps": budget, "seeds": len(group),
                        "score": score, "score_ci_low": low, "score_ci_high": high,
                        "return": ret, "return_ci_low": ret_low, "return_ci_high": ret_high})
    rate_columns = [f"rate_{a}" for a in ACHIEVEMENTS]
    rates = per_run.groupby(keys, sort=True)[rate_columns].mean().reset_index()
    return per_run, pd.DataFrame(summary), rates


def crafter_section(doc, runs: list[Run], reps: int, seed: int = 0) -> None:
    """Adds the Crafter section (tables, CSVs, figures) to a report Document."""
    from harness.report import figures

    doc.heading("Crafter")
    per_run, summary, rates = crafter_tables([r for r in runs if r.usable], reps, seed)
    if per_run.empty:
        doc.text("No Crafter episodes within any budget yet.")
        return
    doc.csv("crafter_per_run.csv", per_run)
    doc.csv("crafter_scores.csv", summary)
    doc.csv("crafter_success_rates.csv", rates)
    doc.text("Crafter score = exp(mean ln(1 + s_i)) − 1 over the 22 success rates s_i (%), per seed, then the mean "
             f"over seeds with a 95% percentile-bootstrap CI ({reps} reps). Two definitions, both shown: "
             f"[{BENCHMARK}] and [{EVAL_STYLE}]. A partial run counts at the budgets it has reached.")
    published = pd.read_csv(REFERENCE_DIR / "crafter_published.csv")
    doc.heading("Published Crafter values", 3)
    doc.text("Every numeric Crafter value found in the papers (sources: harness/reference/README_iris_delta_iris.md); "
             "labelled published, not recomputed.")
    doc.table(published.assign(agent=published["agent"] + " (published)"), digits=1)
    for definition in (BENCHMARK, EVAL_STYLE):
        sub = summary[summary["definition"] == definition]
        if sub.empty:
            continue
        doc.heading(f"Score — {definition}", 3)
        doc.table(sub.drop(columns="definition"), digits=2)
        final = rates[(rates["definition"] == definition)]
        final = final[final["budget_steps"] == final.groupby("agent")["budget_steps"].transform("max")]
        table = final.set_index("agent")[[f"rate_{a}" for a in ACHIEVEMENTS]].T
        table.index = list(ACHIEVEMENTS)
        doc.text("Success rates (%) at each agent's largest budget: "
                 + ", ".join(f"{a} {b:,} steps" for a, b in zip(final["agent"], final["budget_steps"])))
        doc.table(table.reset_index().rename(columns={"index": "achievement"}), digits=1)
        tag = "benchmark" if definition == BENCHMARK else "eval"
        doc.image(f"crafter_success_rates_{tag}.png", figures.success_rates_plot(final, ACHIEVEMENTS, definition),
                  f"Per-achievement success rates — {definition}")
        curve = sub.rename(columns={"score": "value", "score_ci_low": "ci_low", "score_ci_high": "ci_high",
                                    "budget_steps": "env_steps"})
        doc.image(f"crafter_score_{tag}.png", figures.curve_plot(curve, curve.iloc[:0], "Crafter score (%)"),
                  f"Crafter score vs budget with 95% CIs over seeds — {definition}")
