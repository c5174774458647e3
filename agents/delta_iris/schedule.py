"""Epoch schedule: how many epochs collect, when each component starts, for a given budget (spec §7).

At the profile's paper budget this is the official schedule (Crafter: 1 random epoch of 100k steps +
990 epochs of 10k, then 9 train-only epochs; Atari: 2k random + 490 x 200, then 109 train-only, with
components starting after epochs 5 / 50 / 75). A smaller budget gives a proportionally shorter
schedule: the collection epochs end at the budget, and the train-only epochs and the delayed starts
are scaled by (collection epochs / paper collection epochs), rounded, so every phase still happens;
when the budget cuts the random first epoch short, its update counts shrink in proportion.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from agents.base import EpochPlan
from agents.delta_iris.config import DeltaIrisConfig


def collection_epochs(budget: int, first: int, per_epoch: int) -> int:
    return 1 + math.ceil(max(0, budget - first) / per_epoch)


@dataclass(frozen=True)
class EpochSchedule:
    budget_steps: int
    first_epoch_steps: int  # random steps of epoch 1
    steps_per_epoch: int
    collect_epochs: int  # epochs 1..collect_epochs collect
    total_epochs: int
    start_after: dict[str, int]  # component -> epochs after which it is first trained
    first_epoch_fraction: float  # first-epoch steps / the profile's; scales the epoch-1 update counts

    @classmethod
    def for_budget(cls, config: DeltaIrisConfig, budget_steps: int) -> EpochSchedule:
        if budget_steps <= 0:
            raise ValueError(f"Δ-IRIS schedule: budget_steps must be positive, got {budget_steps}")
        paper = collection_epochs(config.paper_budget_steps, config.random_steps_first_epoch, config.steps_per_epoch)
        first = min(config.random_steps_first_epoch, budget_steps)
        collect = collection_epochs(budget_steps, first, config.steps_per_epoch)
        scale = collect / paper
        starts = {name: round(getattr(config, f"train_{name}").start_after_epochs * scale)
                  for name in ("tokenizer", "world_model", "actor_critic")}
        return cls(budget_steps, first, config.steps_per_epoch, collect,
                   collect + round(config.train_only_epochs * scale), starts, first / config.random_steps_first_epoch)

    def plan(self, epochs_done: int, env_steps: int) -> EpochPlan | None:
        """Plan of epoch `epochs_done + 1`; overshoot of a previous epoch is taken off the next one."""
        if epochs_done >= self.total_epochs:
            return None
        if epochs_done == 0:
            return EpochPlan(collect_steps=self.first_epoch_steps, random_actions=True)
        if epochs_done < self.collect_epochs:
            target = min(self.first_epoch_steps + epochs_done * self.steps_per_epoch, self.budget_steps)
            return EpochPlan(collect_steps=max(0, target - env_steps))
        return EpochPlan(collect_steps=0)

    def trains(self, component: str, epoch: int) -> bool:
        """Whether `component` trains in (1-based) `epoch`."""
        return epoch > self.start_after[component]

    def updates(self, component: str, epoch: int, steps_first_epoch: int, steps_per_epoch: int) -> int:
        """Optimisation steps of `component` in `epoch`; epoch 1's are scaled with its (budget-capped) data."""
        if epoch != 1:
            return steps_per_epoch
        return max(1, round(steps_first_epoch * self.first_epoch_fraction))
