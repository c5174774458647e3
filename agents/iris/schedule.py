"""The IRIS epoch schedule (spec §7), scaled to the run's budget.

At the paper budget the schedule is the paper's (Atari: 500 collection epochs of 200 steps, 100
train-only epochs, components starting after epochs 5 / 25 / 50, 200 updates each per epoch).
With a smaller (or larger) budget B, the number of collection epochs follows from B, and the
train-only tail and the start epochs are scaled by (collection epochs / paper collection epochs),
so a short run keeps the same proportions; updates per epoch are unchanged, except a first-epoch burst
(`steps_first_epoch`), which is scaled by the share of the first epoch's steps the budget allows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from agents.iris.config import ComponentSchedule, TrainingConfig


@dataclass(frozen=True)
class Schedule:
    collection_epochs: int
    total_epochs: int
    start_after: dict[str, int]  # component -> last epoch in which it does not train
    first_epoch_fraction: float = 1.0  # steps collected in epoch 1 / the profile's first_epoch_steps

    def collect_steps(self, epoch: int, training: TrainingConfig, env_steps: int, budget: int) -> int:
        """Steps to collect in 1-based `epoch` (0 once the budget is reached)."""
        per_epoch = training.first_epoch_steps if (epoch == 1 and training.first_epoch_steps) else training.steps_per_epoch
        return max(0, min(per_epoch, budget - env_steps))

    def updates(self, component: str, epoch: int, schedule: ComponentSchedule) -> int:
        """Gradient steps of `component` in 1-based `epoch`."""
        if epoch <= self.start_after[component]:
            return 0
        if epoch == 1 and schedule.steps_first_epoch:
            return max(1, _round_half_up(schedule.steps_first_epoch * self.first_epoch_fraction))
        return schedule.steps_per_epoch


def build_schedule(training: TrainingConfig, budget_steps: int) -> Schedule:
    if budget_steps <= 0:
        raise ValueError(f"IRIS schedule: budget_steps must be positive, got {budget_steps}")
    first = training.first_epoch_steps or training.steps_per_epoch
    collection = 1 + math.ceil(max(0, budget_steps - first) / training.steps_per_epoch)
    scale = collection / training.collection_epochs
    tail = _round_half_up((training.epochs - training.collection_epochs) * scale)
    starts = {name: _round_half_up(getattr(training, name).start_after_epoch * scale)
              for name in ("tokenizer", "world_model", "actor_critic")}
    fraction = min(first, budget_steps) / first
    return Schedule(collection, collection + tail, starts, fraction)


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))
