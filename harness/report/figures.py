"""PNG figures (matplotlib, Agg backend). Published agents are drawn dashed / hollow and labelled."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.report.reference import PUBLISHED_SUFFIX  # noqa: E402


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _style(label: str) -> dict:
    return {"linestyle": "--"} if label.endswith(PUBLISHED_SUFFIX) else {"linestyle": "-"}


def aggregates_plot(aggregates: pd.DataFrame) -> bytes:
    """One panel per metric: point estimate and 95% CI per agent."""
    metrics = list(dict.fromkeys(aggregates["metric"]))
    agents = list(dict.fromkeys(aggregates["agent"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 0.45 * len(agents) + 1.2), sharey=True)
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        sub = aggregates[aggregates["metric"] == metric].set_index("agent").loc[agents]
        y = np.arange(len(agents))
        ax.hlines(y, sub["ci_low"], sub["ci_high"], linewidth=6, alpha=0.5)
        ax.plot(sub["value"], y, "k|", markersize=14)
        ax.set_title(metric.replace("_", " "))
        ax.set_yticks(y, agents)
        ax.set_xlabel("human-normalised score")
    return _png(fig)


def profile_plot(taus: np.ndarray, profiles: dict[str, np.ndarray], cis: dict[str, np.ndarray]) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, profile in profiles.items():
        line, = ax.plot(taus, profile, label=label, **_style(label))
        ax.fill_between(taus, cis[label][0], cis[label][1], color=line.get_color(), alpha=0.15)
    ax.set_xlabel("human-normalised score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def curve_plot(curves: pd.DataFrame, markers: pd.DataFrame, ylabel: str, xlabel: str = "agent steps") -> bytes:
    """curves: agent, env_steps, value, ci_low, ci_high; markers: single points (published agents)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for agent, sub in curves.groupby("agent", sort=True):
        sub = sub.sort_values("env_steps")
        line, = ax.plot(sub["env_steps"], sub["value"], marker=".", label=agent, **_style(agent))
        ax.fill_between(sub["env_steps"], sub["ci_low"], sub["ci_high"], color=line.get_color(), alpha=0.2)
    for row in markers.itertuples(index=False):
        ax.errorbar([row.env_steps], [row.value], yerr=[[row.value - row.ci_low], [row.ci_high - row.value]],
                    fmt="o", mfc="none", capsize=3, label=row.agent)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def success_rates_plot(rates: pd.DataFrame, achievements: tuple[str, ...], title: str) -> bytes:
    """rates: one row per agent, columns rate_<achievement> in percent (log-scaled bars)."""
    fig, ax = plt.subplots(figsize=(12, 4.5))
    width = 0.8 / max(1, len(rates))
    x = np.arange(len(achievements))
    for i, row in enumerate(rates.itertuples(index=False)):
        values = [getattr(row, f"rate_{a}") for a in achievements]
        ax.bar(x + i * width, values, width, label=row.agent)
    ax.set_xticks(x + 0.4 - width / 2, [a.replace("_", " ") for a in achievements], rotation=60, ha="right")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(0, 100)
    ax.set_ylabel("success rate (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)
