"""Catch, the sanity game: learnable by a tiny world-model agent in minutes on a CPU.

Rules (grid G = protocol.grid, B = protocol.balls):
- The screen is a G x G grid drawn at protocol.size pixels (size % grid == 0), row 0 at the top. The
  ball (white) and the paddle (amber) each fill their cell: at 64 pixels and grid 8 an 8x8 square
  (a 4x4-pixel ball was lost by the small CPU tokenizers).
- A ball appears at row 0 in a uniformly random column and falls one row per step. The paddle sits
  on the bottom row (it starts in column G // 2) and moves each step: action 0 stay, 1 left,
  2 right (clamped at the walls).
- The step in which the ball reaches the bottom row *lands* it: the ball is caught if the paddle (after
  its move) is in the ball's column. The landing observation shows it: a caught ball is drawn over the
  paddle, so no amber is left on screen.
- protocol.reward_timing says when a landing is paid (+1 caught, -1 missed):
  - "landing" (default): in the landing step itself. The next step spawns the next ball at row 0 (the
    paddle moves in it too); the episode terminates when the B-th ball lands: B*G - 1 steps. The reward
    is an interaction of the ball's column, the paddle's column and the action.
  - "after_landing": in the next step, the one that spawns the next ball. The reward is then a function
    of the landing frame alone (no amber on screen = caught); the episode terminates with the payment of
    the B-th ball, whose frame still shows it on the bottom row: B*G steps. A diagnostic variant: it
    isolates reward prediction from the action interaction (benchmarks/RESULTS_delta_iris.md).
- Defaults worth using: grid 8, balls 3 -> 23 steps per episode.

Returns (computed exactly by dynamic programming over the landing dynamics; the payment's timing does not
change an undiscounted return):
- uniform random policy: B * (2/G - 1) (the ball column is uniform and independent of the paddle,
  so each ball is caught with probability exactly 1/G); grid 8, balls 3 -> -2.25.
- optimal policy: B (the paddle gets >= G-1 moves per ball, enough to cross the whole grid).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import gymnasium
import numpy as np

from harness.envs.observation import FrameStack, observation_space, process_rgb, transform_reward
from harness.envs.protocol import SanityProtocol

ACTION_MEANINGS = ("NOOP", "LEFT", "RIGHT")
_PADDLE_DELTA = (0, -1, 1)
_BALL_RGB = (255, 255, 255)
# Amber, not blue: in a grayscale observation (TWM) a blue (40, 140, 255) paddle is 123/255 and the
# TWM tiny latent learned the ball but not the paddle; amber is 193/255 there, still distinct from the ball.
_PADDLE_RGB = (255, 200, 0)


def _move_paddle(paddle: int, action: int, grid: int) -> int:
    return min(grid - 1, max(0, paddle + _PADDLE_DELTA[action]))


def _landing_reward(paddle: int, ball_col: int) -> float:
    return 1.0 if paddle == ball_col else -1.0


def _check(protocol: SanityProtocol) -> None:
    if protocol.grid < 2 or protocol.size % protocol.grid != 0:
        raise ValueError(f"SanityProtocol: expected grid >= 2 dividing size, got grid={protocol.grid} "
                         f"size={protocol.size}")
    if protocol.balls < 1:
        raise ValueError(f"SanityProtocol.balls: expected >= 1, got {protocol.balls}")


def _expected_return(grid: int, balls: int, optimal: bool) -> float:
    """Expected raw return of the uniform-random (optimal=False) or the optimal policy."""
    choose = max if optimal else (lambda values: sum(values) / len(values))

    @lru_cache(maxsize=None)
    def in_flight(balls_left: int, row: int, col: int, paddle: int) -> float:
        outcomes = []
        for action in range(len(_PADDLE_DELTA)):
            moved = _move_paddle(paddle, action, grid)
            if row + 1 == grid - 1:
                future = respawn(balls_left - 1, moved) if balls_left > 1 else 0.0
                outcomes.append(_landing_reward(moved, col) + future)
            else:
                outcomes.append(in_flight(balls_left, row + 1, col, moved))
        return choose(outcomes)

    @lru_cache(maxsize=None)
    def respawn(balls_left: int, paddle: int) -> float:
        outcomes = []
        for action in range(len(_PADDLE_DELTA)):
            moved = _move_paddle(paddle, action, grid)
            outcomes.append(sum(in_flight(balls_left, 0, c, moved) for c in range(grid)) / grid)
        return choose(outcomes)

    return sum(in_flight(balls, 0, c, grid // 2) for c in range(grid)) / grid


def random_return(protocol: SanityProtocol) -> float:
    """Exact expected raw episode return of the uniform random policy."""
    _check(protocol)
    return _expected_return(protocol.grid, protocol.balls, optimal=False)


def optimal_return(protocol: SanityProtocol) -> float:
    """Exact expected raw episode return of the optimal policy."""
    _check(protocol)
    return _expected_return(protocol.grid, protocol.balls, optimal=True)


class CatchEnv(gymnasium.Env):
    """Catch with the protocol's observation spec; info: raw_reward, game_over, balls_left, frames."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, protocol: SanityProtocol, seed: int):
        _check(protocol)
        self.protocol = protocol
        self.grid = protocol.grid
        self.action_space = gymnasium.spaces.Discrete(len(ACTION_MEANINGS))
        self.observation_space = observation_space(protocol.obs)
        self.seeds = {"env": int(seed)}
        self._rng = np.random.default_rng(seed)
        self._stack = FrameStack(protocol.obs)
        self._ball_row = self._ball_col = self._paddle = self._balls_left = self._steps = 0
        self._unpaid = 0.0  # the reward of a landing not paid yet ("after_landing")
        self._over = True

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self.seeds["env"] = int(seed)
        self._paddle = self.grid // 2
        self._balls_left = self.protocol.balls
        self._unpaid = 0.0
        self._spawn()
        self._steps = 0
        self._over = False
        return self._stack.reset(self._frame()), self._info(0.0)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._over:
            raise RuntimeError("CatchEnv.step() after the episode ended: call reset() first")
        if not 0 <= int(action) < len(ACTION_MEANINGS):
            raise ValueError(f"CatchEnv.step: expected an action in [0, {len(ACTION_MEANINGS)}), got {action}")
        self._paddle = _move_paddle(self._paddle, int(action), self.grid)
        reward = 0.0
        if self._ball_row == self.grid - 1:  # the ball landed in the previous step
            if self.protocol.reward_timing == "after_landing":
                reward, self._unpaid = self._unpaid, 0.0
                self._balls_left -= 1
            if self._balls_left > 0:
                self._spawn()
        else:
            self._ball_row += 1
            if self._ball_row == self.grid - 1:
                landed = _landing_reward(self._paddle, self._ball_col)
                if self.protocol.reward_timing == "after_landing":
                    self._unpaid = landed
                else:
                    reward = landed
                    self._balls_left -= 1
        self._steps += 1
        terminated = self._balls_left == 0
        self._over = terminated
        obs = self._stack.push(self._frame())
        return obs, transform_reward(reward, self.protocol.reward_transform), terminated, False, self._info(reward)

    def _spawn(self) -> None:
        self._ball_row = 0
        self._ball_col = int(self._rng.integers(self.grid))

    def _info(self, raw_reward: float) -> dict[str, Any]:
        return {"raw_reward": raw_reward, "game_over": self._balls_left == 0, "balls_left": self._balls_left,
                "frames": self._steps}

    def render(self) -> np.ndarray:
        """The full-size RGB screen, HxWx3 uint8."""
        cell = self.protocol.size // self.grid
        screen = np.zeros((self.protocol.size, self.protocol.size, 3), dtype=np.uint8)
        bottom = (self.grid - 1) * cell
        screen[bottom:bottom + cell, self._paddle * cell:(self._paddle + 1) * cell] = _PADDLE_RGB
        top, left = self._ball_row * cell, self._ball_col * cell
        screen[top:top + cell, left:left + cell] = _BALL_RGB  # drawn over the paddle when it lands there
        return screen

    def _frame(self) -> np.ndarray:
        return process_rgb(self.render(), self.protocol.obs)

    def get_state(self) -> dict[str, Any]:
        return {"ball_row": self._ball_row, "ball_col": self._ball_col, "paddle": self._paddle,
                "balls_left": self._balls_left, "unpaid": self._unpaid, "steps": self._steps, "over": self._over,
                "rng": self._rng.bit_generator.state, "stack": self._stack.get_state(), "seeds": dict(self.seeds)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._ball_row, self._ball_col, self._paddle = state["ball_row"], state["ball_col"], state["paddle"]
        self._balls_left, self._steps, self._over = state["balls_left"], state["steps"], state["over"]
        self._unpaid = state.get("unpaid", 0.0)  # absent in checkpoints written before reward_timing existed
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]
        self._stack.set_state(state["stack"])
        self.seeds = dict(state["seeds"])
