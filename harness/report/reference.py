"""The bundled reference data (`harness/reference/*.csv`, sources in its README files)."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference"

# Published agent label -> (per-game means file, per-seed file); the reproduced agent it stands beside.
PUBLISHED_ATARI: dict[str, tuple[str, str]] = {
    "IRIS": ("atari100k_published_iris.csv", "atari100k_published_iris_per_seed.csv"),
    "Δ-IRIS": ("atari100k_published_delta_iris.csv", "atari100k_published_delta_iris_per_seed.csv"),
    "REM": ("atari100k_published_rem.csv", "atari100k_published_rem_per_seed.csv"),
    "TWM": ("atari100k_published_twm.csv", "atari100k_published_twm_per_seed.csv"),
}
PUBLISHED_SUFFIX = " (published)"


def _read(name: str) -> pd.DataFrame:
    path = REFERENCE_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"reference file {path} is missing (it ships with the package)")
    return pd.read_csv(path)


def _key(game: str) -> str:
    return re.sub(r"[^a-z0-9]", "", game.lower())


@lru_cache(maxsize=1)
def human_random() -> pd.DataFrame:
    """Index: game (canonical Atari 100k spelling); columns: random, human."""
    table = _read("atari100k_reference_scores.csv")
    missing = {"game", "random", "human"} - set(table.columns)
    if missing:
        raise KeyError(f"{REFERENCE_DIR / 'atari100k_reference_scores.csv'}: missing column(s) {sorted(missing)}")
    return table.set_index("game")


def atari_games() -> list[str]:
    """The 26 games of Atari 100k."""
    return list(human_random().index)


def canonical_game(env: str) -> str | None:
    """'Pong', 'pong', 'ALE/Pong-v5', 'MsPacman' -> the reference spelling, or None if not an Atari 100k game."""
    name = env.split("/")[-1]
    name = re.sub(r"(NoFrameskip)?-v\d+$", "", name)
    lookup = {_key(game): game for game in atari_games()}
    return lookup.get(_key(name))


def human_normalized(game: str, score: float | np.ndarray) -> float | np.ndarray:
    row = human_random().loc[game]
    return (score - row["random"]) / (row["human"] - row["random"])


@lru_cache(maxsize=None)
def published_per_seed(agent: str) -> pd.DataFrame:
    """Columns: game, seed_index, score (raw returns, one row per seed and game)."""
    if agent not in PUBLISHED_ATARI:
        raise KeyError(f"no published per-seed Atari data for {agent!r}; known: {sorted(PUBLISHED_ATARI)}")
    return _read(PUBLISHED_ATARI[agent][1])


def published_means(agent: str) -> pd.Series:
    """Published per-game mean score of `agent`, indexed by game."""
    return _read(PUBLISHED_ATARI[agent][0]).set_index("game")["score"]


def published_hns_matrix(agent: str, games: list[str]) -> np.ndarray:
    """(num_seeds x len(games)) human-normalised scores of a published agent, games in the given order."""
    table = published_per_seed(agent)
    pivot = table.pivot(index="seed_index", columns="game", values="score")
    missing = [g for g in games if g not in pivot.columns]
    if missing:
        raise KeyError(f"{PUBLISHED_ATARI[agent][1]}: no scores for game(s) {missing}")
    raw = pivot[games].to_numpy(dtype=float)
    return np.stack([human_normalized(g, raw[:, i]) for i, g in enumerate(games)], axis=1)


def published_aggregates() -> pd.DataFrame:
    """Both published aggregate tables, stacked (agent, mean_hns, median_hns, iqm_hns, optimality_gap, ...)."""
    return pd.concat([_read("atari100k_published_aggregates.csv"),
                      _read("atari100k_published_aggregates_iris_delta_iris.csv")], ignore_index=True)
