"""Checks shared by the environment tests: checkpoint-safe states and replayable rollouts."""
from __future__ import annotations

from typing import Any, Callable, Iterable


def assert_plain(value: Any) -> None:
    """Env states hold only builtins (bytes, numbers, strings, lists, dicts): safe in any checkpoint."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str)
            assert_plain(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            assert_plain(item)
    else:
        assert value is None or isinstance(value, (bytes, int, float, str, bool)), type(value)


def rollout(env: Any, actions: Iterable[int], info_view: Callable[[dict], Any] = lambda info: info) -> list:
    """Everything `env` emits over `actions` (resetting after each episode end), as comparable values."""
    out: list = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(int(action))
        out.append((obs.tobytes(), reward, terminated, truncated, info_view(info)))
        if terminated or truncated:
            obs, info = env.reset()
            out.append((obs.tobytes(), info_view(info)))
    return out
