"""Evaluation under the harness's benchmark protocol, many episodes at once.

The evaluation protocol is the same for every agent; the agent only chooses its policy in
`act(..., mode="evaluate")`. `episodes` are split over `num_envs` parallel environments, each
running its share back to back (so short episodes are not over-represented), with env seeds
derived from (run seed, round) and never shared with training.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from agents.base import Agent
from harness.envs import VectorEnv, make_env
from harness.envs.protocol import Protocol


def eval_seeds(run_seed: int, round_index: int, count: int) -> list[int]:
    sequence = np.random.SeedSequence([run_seed, 7_919, round_index])
    return [int(s) for s in sequence.generate_state(count)]


def evaluate(agent: Agent, protocol: Protocol, episodes: int, num_envs: int, run_seed: int,
             round_index: int) -> list[dict[str, Any]]:
    """Runs `episodes` evaluation episodes; returns one dict per episode (return, length, ...)."""
    num_envs = max(1, min(num_envs, episodes))
    quotas = [episodes // num_envs + (1 if i < episodes % num_envs else 0) for i in range(num_envs)]
    seeds = eval_seeds(run_seed, round_index, num_envs)
    envs = VectorEnv([make_env(protocol, seed) for seed in seeds])
    try:
        obs, _ = envs.reset_all(seeds)
        state = agent.initial_state(num_envs)
        first = np.ones(num_envs, dtype=bool)
        returns = np.zeros(num_envs)
        lengths = np.zeros(num_envs, dtype=np.int64)
        done_count = [0] * num_envs
        results: list[dict[str, Any]] = []
        started = time.time()
        while len(results) < episodes:
            actions, state = agent.act(obs, state, "evaluate", first)
            first = np.zeros(num_envs, dtype=bool)
            active = np.array([done_count[i] < quotas[i] for i in range(num_envs)])  # the others finished
            stepped = np.flatnonzero(active).tolist()  # Python ints: env_index is logged as an int
            step_obs, _, terminateds, truncateds, infos = envs.step(actions, active)
            next_obs = obs.copy()
            next_obs[stepped] = step_obs
            for i, terminated, truncated, info in zip(stepped, terminateds, truncateds, infos):
                returns[i] += info["raw_reward"]
                lengths[i] += 1
                if terminated or truncated:
                    row = {"return": float(returns[i]), "length": int(lengths[i]), "truncated": bool(truncated),
                           "env_index": i, "episode_index": done_count[i],
                           "seconds": time.time() - started}
                    if "achievements" in info:
                        row["achievements"] = {k: int(v) for k, v in info["achievements"].items()}
                    results.append(row)
                    done_count[i] += 1
                    returns[i], lengths[i] = 0.0, 0
                    if done_count[i] < quotas[i]:
                        next_obs[i] = envs.reset_one(i)[0]
                        first[i] = True
            obs = next_obs
        return results
    finally:
        envs.close()
