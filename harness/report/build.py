"""`build_report`: run directories -> reports/<suite>/ (report.md, report.html, CSVs, PNGs)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from harness.report.atari import atari_section
from harness.report.crafter_scores import crafter_section
from harness.report.document import Document
from harness.report.loading import Run, discover_suites, episodes_table, load_suite, runs_table

# 2,000 reps keeps a full Atari grid (4 reproduced + 4 published agents x 26 games x 5 seeds) under
# 2 minutes on 2 shared cores (benchmarks/RESULTS_report.md); rliable's own default is 50,000.
DEFAULT_REPS = 2_000
BOOTSTRAP_SEED = 0


def check_protocols(doc: Document, runs: list[Run]) -> None:
    """Aggregate only the majority eval-protocol fingerprint of each family; exclude and list the rest."""
    by_family: dict[str, Counter] = {}
    for run in runs:
        if run.usable:
            by_family.setdefault(run.family, Counter())[run.fingerprint] += 1
    for family, counts in sorted(by_family.items()):
        if len(counts) < 2:
            continue
        majority = max(sorted(counts), key=lambda fp: counts[fp])
        others = {fp: n for fp, n in counts.items() if fp != majority}
        doc.warn(f"{family}: runs were evaluated under different protocols (eval_fingerprint). Only the majority "
                 f"fingerprint {majority} ({counts[majority]} runs) is aggregated; excluded: "
                 + ", ".join(f"{fp} ({n} runs)" for fp, n in sorted(others.items()))
                 + ". See 'Runs not aggregated'.")
        for run in runs:
            if run.usable and run.family == family and run.fingerprint != majority:
                run.excluded_reason = f"eval_fingerprint {run.fingerprint} differs from the suite's majority {majority}"


def generic_section(doc: Document, runs: list[Run], family: str) -> None:
    """Families without a normalisation (e.g. the sanity task): mean final return per env and agent."""
    doc.heading(f"{family} environments")
    rows = [{"agent": r.agent, "env": r.env, "seed": r.seed, "score": r.score} for r in runs if r.aggregated]
    if not rows:
        doc.text("No finished runs.")
        return
    table = pd.DataFrame(rows).groupby(["agent", "env"])["score"].agg(["mean", "std", "count"]).reset_index()
    doc.csv(f"{family}_scores.csv", table)
    doc.text("Mean over seeds of each run's mean final-evaluation return (std and number of seeds beside it).")
    doc.table(table)


def speed_section(doc: Document, table: pd.DataFrame) -> None:
    doc.heading("Speed and cost")
    usable = table[table["reason"].str.startswith("partial") | table["aggregated"]]
    if usable.empty:
        doc.text("No readable runs.")
        return
    speed = usable.groupby(["family", "agent"]).agg(
        runs=("seed", "count"), mean_fps=("fps", "mean"), wall_hours=("wall_seconds", lambda s: s.sum() / 3600),
        gpu_hours=("gpu_hours", "sum")).reset_index()
    doc.text("FPS = environment frames per wall-clock second (mean over runs); wall-clock and GPU-hours summed "
             "over runs (finished and partial).")
    doc.csv("speed.csv", speed)
    doc.table(speed, digits=2)


def not_aggregated_section(doc: Document, runs: list[Run]) -> None:
    doc.heading("Runs not aggregated")
    rows = [{"agent": r.agent, "env": r.env, "seed": r.seed, "reason": r.not_aggregated_reason, "path": str(r.path)}
            for r in runs if not r.aggregated]
    skipped = [r for r in runs if r.skipped_lines]
    if rows:
        doc.text(f"{len(rows)} run director{'y' if len(rows) == 1 else 'ies'} not in the aggregates "
                 "(partial runs still feed the sample-efficiency curves):")
        doc.table(pd.DataFrame(rows))
    else:
        doc.text("None: every run directory is finished and aggregated.")
    if skipped:
        doc.text("Unparsable episodes.jsonl lines skipped (e.g. a line truncated by a crash): "
                 + ", ".join(f"{r.agent}/{r.env}/seed_{r.seed}: {r.skipped_lines}" for r in skipped))


def report_suite(runs_dir: Path, suite: str, out_dir: Path, reps: int) -> Path:
    if out_dir.resolve().is_relative_to(runs_dir.resolve()):
        raise ValueError(f"report output {out_dir} is inside the runs directory {runs_dir}, which is read-only")
    runs = load_suite(runs_dir, suite)
    doc = Document(title=f"wmbench report — suite {suite}")
    check_protocols(doc, runs)
    doc.text(f"{len(runs)} run directories under {runs_dir / suite}; {sum(r.aggregated for r in runs)} aggregated. "
             f"Per-run score = mean return over its final evaluation episodes. Bootstrap: {reps} reps, seed "
             f"{BOOTSTRAP_SEED}.")
    hns: dict = {}
    families = sorted({r.family for r in runs if r.usable})
    for family in families:
        members = [r for r in runs if r.family == family]
        if family == "atari":
            hns = atari_section(doc, members, reps, BOOTSTRAP_SEED)
        elif family == "crafter":
            crafter_section(doc, members, reps, BOOTSTRAP_SEED)
        else:
            generic_section(doc, members, family)
    table = runs_table(runs, hns)
    speed_section(doc, table)
    not_aggregated_section(doc, runs)
    doc.csv("runs.csv", table)
    doc.csv("episodes.csv", episodes_table(runs))
    doc.write(out_dir)
    return out_dir


def build_report(runs_dir: Path, suite: str | None, out_dir: Path | None, *, reps: int | None = None) -> Path:
    """Write reports/<suite>/ for one suite, or one report per suite found (`suite=None`; then `out_dir`,
    default `reports/`, is the parent and is returned). Never writes under runs_dir."""
    runs_dir = Path(runs_dir)
    reps = DEFAULT_REPS if reps is None else int(reps)
    if reps < 1:
        raise ValueError(f"reps must be a positive number of bootstrap replications, got {reps}")
    if suite is not None:
        return report_suite(runs_dir, suite, Path(out_dir) if out_dir else Path("reports") / suite, reps)
    base = Path(out_dir) if out_dir else Path("reports")
    suites = discover_suites(runs_dir)
    if not suites:
        raise FileNotFoundError(f"no suite directories under {runs_dir}")
    for name in suites:
        report_suite(runs_dir, name, base / name, reps)
    return base

