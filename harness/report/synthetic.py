"""Synthetic run directories in the harness format, for the report's tests and benchmark."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def write_run(runs_dir: Path, suite: str, agent: str, env: str, seed: int, *, family: str,
              episodes: list[dict[str, Any]], status: str = "done", budget_steps: int = 100_000,
              fingerprint: str = "fp-default", **meta: Any) -> Path:
    """One `<suite>/<agent>/<env>/seed_<k>/` directory with run.json and episodes.jsonl."""
    run_dir = runs_dir / suite / agent / env / f"seed_{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    run_json = {
        "format_version": 1, "cell_id": f"{agent}-{env}-{seed}", "suite": suite, "agent": agent,
        "profile": suite, "env": env, "family": family, "seed": seed, "budget_steps": budget_steps,
        "frames_per_step": 4 if family == "atari" else 1, "config": {}, "train_protocol": {},
        "eval_protocol": {}, "eval_fingerprint": fingerprint, "status": status,
        "progress": {"env_steps": max((e["env_steps"] for e in episodes), default=0), "epoch": 1,
                     "updated_at": "2026-01-01T00:00:00Z"},
        "wall_seconds": 3600.0, "fps": 100.0, "gpu_hours": 1.0, "device": "cpu", "attempts": [], "provenance": {},
    }
    run_json.update(meta)
    (run_dir / "run.json").write_text(json.dumps(run_json))
    with (run_dir / "episodes.jsonl").open("w") as handle:
        for episode in episodes:
            handle.write(json.dumps(episode) + "\n")
    return run_dir


def atari_episodes(rng: np.random.Generator, low: float, high: float, *, budget_steps: int, eval_rounds: int,
                   eval_episodes: int, final_episodes: int, train_episodes: int) -> list[dict[str, Any]]:
    """Returns improving from `low` towards `high` over training; final episodes around `high`."""
    episodes = []
    for i in range(train_episodes):
        step = (i + 1) * budget_steps // max(1, train_episodes)
        episodes.append({"kind": "train", "env_steps": step, "frames": 4 * step, "length": 100,
                         "return": float(rng.normal(low, 1.0)), "game_return": None, "wall_time": float(i)})
    for r in range(1, eval_rounds + 1):
        step = r * budget_steps // eval_rounds
        centre = low + (high - low) * r / eval_rounds
        kind, count = ("final", final_episodes) if r == eval_rounds else ("eval", eval_episodes)
        for _ in range(count):
            episodes.append({"kind": kind, "env_steps": step, "frames": 4 * step, "length": 500, "eval_round": r,
                             "return": float(rng.normal(centre, abs(centre) * 0.1 + 1)), "wall_time": float(r)})
    return episodes
