"""Protocol-exact environments: `make_env(protocol, seed)` and a synchronous `VectorEnv`.

Every env is a gymnasium.Env returning channels-first uint8 observations of `protocol.obs.shape`,
`(obs, reward, terminated, truncated, info)` with `reward` already reward_transform-ed and
`info["raw_reward"]`, `info["game_over"]`, `info["frames"]`; and `get_state()` / `set_state()` that
make the future identical (for checkpoints). Families: Atari (harness.envs.atari), Crafter
(harness.envs.crafter), Catch (harness.envs.catch).
"""
from __future__ import annotations

from typing import Any, Sequence

import gymnasium
import numpy as np

from harness.envs.protocol import AtariProtocol, CrafterProtocol, Protocol, SanityProtocol

ATARI_100K_GAMES: tuple[str, ...] = (
    "Alien", "Amidar", "Assault", "Asterix", "BankHeist", "BattleZone", "Boxing", "Breakout",
    "ChopperCommand", "CrazyClimber", "DemonAttack", "Freeway", "Frostbite", "Gopher", "Hero",
    "Jamesbond", "Kangaroo", "Krull", "KungFuMaster", "MsPacman", "Pong", "PrivateEye", "Qbert",
    "RoadRunner", "Seaquest", "UpNDown",
)


def env_names(family: str) -> list[str]:
    """The env names a suite may list for `family` ("atari": the 26 Atari 100k games)."""
    names = {"atari": list(ATARI_100K_GAMES), "crafter": ["crafter"], "sanity": ["catch"]}
    if family not in names:
        raise KeyError(f"env family: expected one of {sorted(names)}, got {family!r}")
    return names[family]


def make_env(protocol: Protocol, seed: int) -> gymnasium.Env:
    """A fresh env for `protocol`, seeded with `seed` (recorded in `env.seeds`)."""
    if isinstance(protocol, AtariProtocol):
        from harness.envs.atari import AtariEnv
        return AtariEnv(protocol, seed)
    if isinstance(protocol, CrafterProtocol):
        from harness.envs.crafter import CrafterEnv
        return CrafterEnv(protocol, seed)
    if isinstance(protocol, SanityProtocol):
        if protocol.task != "catch":
            raise KeyError(f"sanity task: expected 'catch', got {protocol.task!r}")
        from harness.envs.catch import CatchEnv
        return CatchEnv(protocol, seed)
    raise TypeError(f"make_env: expected an AtariProtocol, CrafterProtocol or SanityProtocol, got {type(protocol)}")


def num_actions(protocol: Protocol) -> int:
    """Size of the discrete action space of `protocol`'s env."""
    if isinstance(protocol, AtariProtocol):
        from harness.envs.atari import action_set
        return len(action_set(protocol))
    if isinstance(protocol, CrafterProtocol):
        from harness.envs.crafter import NUM_ACTIONS
        return NUM_ACTIONS
    if isinstance(protocol, SanityProtocol):
        from harness.envs.catch import ACTION_MEANINGS
        return len(ACTION_MEANINGS)
    raise TypeError(f"num_actions: expected a protocol, got {type(protocol)}")


def action_meanings(protocol: Protocol) -> tuple[str, ...]:
    """Human-readable action names, in action-index order."""
    if isinstance(protocol, AtariProtocol):
        from harness.envs.atari import action_meanings as atari_meanings
        return atari_meanings(protocol)
    if isinstance(protocol, CrafterProtocol):
        from harness.envs.crafter import ACTION_NAMES
        return tuple(ACTION_NAMES)
    if isinstance(protocol, SanityProtocol):
        from harness.envs.catch import ACTION_MEANINGS
        return ACTION_MEANINGS
    raise TypeError(f"action_meanings: expected a protocol, got {type(protocol)}")


class VectorEnv:
    """Synchronous, no auto-reset batch of envs; the harness loop resets finished envs itself."""

    def __init__(self, envs: Sequence[gymnasium.Env]):
        if not envs:
            raise ValueError("VectorEnv: expected at least one env")
        self.envs = list(envs)

    def __len__(self) -> int:
        return len(self.envs)

    def reset_all(self, seeds: Sequence[int | None] | None = None) -> tuple[np.ndarray, list[dict]]:
        """Reset every env (`seeds[i]` reseeds env i; None keeps its RNG stream). Returns obs [N,...], infos."""
        if seeds is not None and len(seeds) != len(self.envs):
            raise ValueError(f"VectorEnv.reset_all: expected {len(self.envs)} seeds, got {len(seeds)}")
        results = [env.reset(seed=None if seeds is None else seeds[i]) for i, env in enumerate(self.envs)]
        return np.stack([obs for obs, _ in results]), [info for _, info in results]

    def reset_one(self, index: int, seed: int | None = None) -> tuple[np.ndarray, dict]:
        return self.envs[index].reset(seed=seed)

    def step(self, actions: Sequence[int] | np.ndarray, active: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """Step env i with actions[i] for every i where active[i] (every env when active is None).

        Returns, over the stepped envs in index order: obs [M,...] uint8, rewards [M] float32,
        terminated/truncated [M] bool, infos.
        """
        if len(actions) != len(self.envs):
            raise ValueError(f"VectorEnv.step: expected {len(self.envs)} actions, got {len(actions)}")
        indices = range(len(self.envs)) if active is None else np.flatnonzero(active)
        if len(indices) == 0:
            raise ValueError("VectorEnv.step: no env is active")
        results = [self.envs[i].step(int(actions[i])) for i in indices]
        obs = np.stack([r[0] for r in results])
        rewards = np.array([r[1] for r in results], dtype=np.float32)
        terminated = np.array([r[2] for r in results], dtype=bool)
        truncated = np.array([r[3] for r in results], dtype=bool)
        return obs, rewards, terminated, truncated, [r[4] for r in results]

    def get_state(self) -> list[dict[str, Any]]:
        return [env.get_state() for env in self.envs]

    def set_state(self, states: Sequence[dict[str, Any]]) -> None:
        if len(states) != len(self.envs):
            raise ValueError(f"VectorEnv.set_state: expected {len(self.envs)} states, got {len(states)}")
        for env, state in zip(self.envs, states):
            env.set_state(state)

    def close(self) -> None:
        for env in self.envs:
            env.close()
