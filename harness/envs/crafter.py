"""Crafter (crafter==1.8.3) as a gymnasium.Env, and the Crafter score.

`crafter.Env` speaks the old gym API (obs, reward, done, info). Here: death (health <= 0, which
crafter reports as info["discount"] == 0) -> terminated; reaching `length` steps alive -> truncated.
Observations are channels-first uint8 of `protocol.obs.shape` (crafter renders `size` x `size` RGB;
the observation spec may resize, grayscale and stack). Episodes are seeded by crafter itself from
(seed, episode index), so a fixed construction seed gives a fixed sequence of worlds.

info keys on reset and every step: achievements (the 22 per-episode counters, a fresh dict),
inventory (a fresh dict), raw_reward (crafter's reward before reward_transform), discount,
game_over (terminated or truncated), frames (steps in this episode).
"""
from __future__ import annotations

import pickle
from typing import Any, Mapping, Sequence

import crafter
import gymnasium
import numpy as np

from harness.envs.observation import FrameStack, observation_space, process_rgb, transform_reward
from harness.envs.protocol import CrafterProtocol

ACHIEVEMENTS: tuple[str, ...] = (
    "collect_coal", "collect_diamond", "collect_drink", "collect_iron", "collect_sapling", "collect_stone",
    "collect_wood", "defeat_skeleton", "defeat_zombie", "eat_cow", "eat_plant", "make_iron_pickaxe",
    "make_iron_sword", "make_stone_pickaxe", "make_stone_sword", "make_wood_pickaxe", "make_wood_sword",
    "place_furnace", "place_plant", "place_stone", "place_table", "wake_up",
)
ACTION_NAMES: tuple[str, ...] = tuple(crafter.constants.actions)
NUM_ACTIONS = len(ACTION_NAMES)


def crafter_score(success_rates_percent: Mapping[str, float] | Sequence[float] | np.ndarray) -> float:
    """Crafter score: exp(mean_i ln(1 + s_i)) - 1 over the 22 success rates s_i in percent [0, 100].

    A mapping must name exactly the 22 ACHIEVEMENTS; an array must hold 22 rates in that order.
    """
    if isinstance(success_rates_percent, Mapping):
        missing = sorted(set(ACHIEVEMENTS) - set(success_rates_percent))
        extra = sorted(set(success_rates_percent) - set(ACHIEVEMENTS))
        if missing or extra:
            raise KeyError(f"crafter_score: expected the 22 Crafter achievements; missing {missing}, unknown {extra}")
        rates = np.array([success_rates_percent[name] for name in ACHIEVEMENTS], dtype=np.float64)
    else:
        rates = np.asarray(success_rates_percent, dtype=np.float64)
        if rates.shape != (len(ACHIEVEMENTS),):
            raise ValueError(f"crafter_score: expected {len(ACHIEVEMENTS)} success rates, got shape {rates.shape}")
    if not np.all((rates >= 0) & (rates <= 100)):
        raise ValueError(f"crafter_score: expected success rates in percent within [0, 100], got {rates.tolist()}")
    return float(np.exp(np.mean(np.log1p(rates))) - 1.0)


class CrafterEnv(gymnasium.Env):
    """Crafter under `protocol`, seeded by `seed` (env.seeds: {"crafter": ...})."""

    def __init__(self, protocol: CrafterProtocol, seed: int):
        if protocol.task != "crafter":
            raise KeyError(f"CrafterProtocol.task: expected 'crafter', got {protocol.task!r}")
        if protocol.length < 1 or protocol.size < 1:
            raise ValueError(f"CrafterProtocol: expected length >= 1 and size >= 1, got {protocol.length}, {protocol.size}")
        self.protocol = protocol
        self.seeds = {"crafter": int(seed)}
        self._env = self._make(int(seed))
        self.action_space = gymnasium.spaces.Discrete(NUM_ACTIONS)
        self.observation_space = observation_space(protocol.obs)
        self._stack = FrameStack(protocol.obs)
        self._over = True

    def _make(self, seed: int) -> crafter.Env:
        p = self.protocol
        return crafter.Env(size=(p.size, p.size), length=p.length, reward=p.reward, seed=seed)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self.seeds = {"crafter": int(seed)}
            self._env = self._make(int(seed))
        frame = self._env.reset()
        self._over = False
        obs = self._stack.reset(process_rgb(frame, self.protocol.obs))
        player = self._env._player
        info = {"achievements": dict(player.achievements), "inventory": dict(player.inventory), "raw_reward": 0.0,
                "discount": 1.0, "game_over": False, "frames": 0}
        return obs, info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._over:
            raise RuntimeError("CrafterEnv.step() after the episode ended: call reset() first")
        if not 0 <= int(action) < NUM_ACTIONS:
            raise ValueError(f"CrafterEnv.step: expected an action in [0, {NUM_ACTIONS}), got {action}")
        frame, reward, done, crafter_info = self._env.step(int(action))
        terminated = bool(crafter_info["discount"] == 0.0)
        truncated = bool(done and not terminated)
        self._over = bool(done)
        obs = self._stack.push(process_rgb(frame, self.protocol.obs))
        info = {"achievements": dict(crafter_info["achievements"]), "inventory": dict(crafter_info["inventory"]),
                "raw_reward": float(reward), "discount": float(crafter_info["discount"]),
                "game_over": bool(done), "frames": int(self._env._step)}
        return obs, transform_reward(reward, self.protocol.reward_transform), terminated, truncated, info

    def get_state(self) -> dict[str, Any]:
        """The whole crafter.Env (world, objects, RNG, step and episode counters) pickled, plus the stack."""
        return {"crafter": pickle.dumps(self._env), "over": self._over, "stack": self._stack.get_state(),
                "seeds": dict(self.seeds)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._env = pickle.loads(state["crafter"])
        self._over = state["over"]
        self._stack.set_state(state["stack"])
        self.seeds = dict(state["seeds"])
