"""Time `build_report` on a synthetic full Atari 100k grid with the default bootstrap reps.

Grid: 4 agents x 26 games x 5 seeds; per run 200 train episodes, 20 eval rounds (19 periodic rounds of
5 episodes, then 100 final episodes at the budget). Published IRIS/Δ-IRIS/REM/TWM join the aggregates.

    PYTHONPATH=. OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_report.py
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.report import build_report
from harness.report.reference import atari_games, human_random
from harness.report.synthetic import atari_episodes, write_run

AGENTS = {"iris": 0.4, "delta_iris": 0.6, "rem": 0.6, "twm": 0.45}  # target HNS level per synthetic agent


def write_grid(runs_dir: Path, seeds: int = 5) -> int:
    rng = np.random.default_rng(0)
    table = human_random()
    count = 0
    for agent, level in AGENTS.items():
        for game in atari_games():
            random_score, human = table.loc[game, "random"], table.loc[game, "human"]
            for seed in range(seeds):
                high = random_score + (human - random_score) * level * rng.lognormal(0.0, 0.8)
                episodes = atari_episodes(rng, random_score, high, budget_steps=100_000, eval_rounds=20,
                                          eval_episodes=5, final_episodes=100, train_episodes=200)
                write_run(runs_dir, "atari100k", agent, game, seed, family="atari", episodes=episodes)
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=None, help="bootstrap reps (default: build_report's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(tmp) / "runs"
        runs = write_grid(runs_dir)
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        out = build_report(runs_dir, "atari100k", Path(tmp) / "report", reps=args.reps)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        reps_line = next(line for line in (out / "report.md").read_text().splitlines() if "Bootstrap:" in line)
        print(f"runs={runs} build_report wall={wall:.1f}s user_cpu={after.ru_utime - before.ru_utime:.1f}s "
              f"sys_cpu={after.ru_stime - before.ru_stime:.1f}s | {reps_line.split('Bootstrap:')[1].strip()}")


if __name__ == "__main__":
    main()
