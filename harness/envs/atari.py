"""Atari on the raw ALE, implementing every AtariProtocol knob (IRIS family and TWM variants).

One agent step (`step(a)`): the action is repeated `frame_skip` raw frames with rewards summed,
stopping early at game over or at the game-scope time limit. The observation is the pixel-wise max
of the last two frames played in the step (`max_pool`), each first resized (`resize_before_pool`,
IRIS: PIL bilinear per raw frame) or pooled raw then resized (TWM: cv2 INTER_AREA); grayscale frames
come from ALE's own grayscale screen (as gymnasium's AtariPreprocessing reads them). If a life is lost
and `fire_after_life_loss` (and action 1 is FIRE), FIRE is pressed for one more full skip inside the
same step, its reward added and its observation returned.

Episodes. `terminated` on game over, and on life loss (lives decreased, > 0) if `life_loss_terminal`;
the game then goes on: the next `reset()` only plays one NOOP agent step (reward discarded) if
`life_loss_reset_noop`, else nothing. A real reset (ALE reset_game) happens on the first reset, after a
game over or a truncation, when `reset()` is called mid-episode, or when reset(seed=...) reseeds:
  reset_game -> no-ops (uniform count in [noop_min, noop_max], raw frames if noop_unit == "frame")
  -> FIRE step, action-2 step (if fire_on_reset and action 1 is FIRE) -> no-op agent steps (if
  noop_unit == "step"); if the game ends during this sequence it starts over.
The reset observation is the last frame played (unpooled) or the last step's pooled observation.

Time limit (`max_frames`, `truncated=True`):
- scope "game" (IRIS): every emulator frame since the real reset counts, including no-op frames and
  the NOOP step after a life loss (IRIS's TimeLimit sits inside frame skip and no-op reset);
- scope "life" (TWM train): frame_skip per step() call since the last reset() counts (TWM's TimeLimit
  is outermost and counts agent steps; 27,000 steps = 108,000 frames), reset at every reset().
The next reset() after a truncation is a real reset.

Deliberate deviations from the reference wrappers, all confined to rare edges:
- When a step stops early (game over / time limit), the observation pools the frames actually played
  in that step; baselines' MaxAndSkip and gymnasium's AtariPreprocessing return stale buffers there.
  Only terminal observations differ, which neither IRIS nor TWM trains on.
- If the NOOP step after a life loss ends the game, a real reset follows (IRIS would keep stepping a
  finished game); a game ending during the reset sequence restarts the whole sequence.
- The no-op count comes from the env's own RNG (seeded from the construction seed + 1), not gym's.
- After a truncation the next reset() is a real reset; TWM's EpisodicLives (inside its TimeLimit)
  would play a NOOP step instead. A per-life limit of 27k steps is never reached in 100k-step runs.
- The NOOP step after a life loss does not itself trigger fire_after_life_loss (TWM's would).

info keys: raw_reward (sum of raw rewards of the step), lives, life_loss, game_over, frames (emulator
frames of this game so far), and at reset also noops (no-ops played).
"""
from __future__ import annotations

import pickle
import re
from typing import Any

import ale_py
import gymnasium
import numpy as np
from ale_py import roms

from harness.envs.observation import FrameStack, observation_space, resize, transform_reward
from harness.envs.protocol import AtariProtocol

_NOOP = 0


def rom_id(game: str) -> str:
    """"MsPacman" -> "ms_pacman" (the ale_py ROM id)."""
    rom = re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()
    if rom not in roms.get_all_rom_ids():
        raise KeyError(f"AtariProtocol.game: no ALE ROM for {game!r} (looked for {rom!r})")
    return rom


def _load_ale(protocol: AtariProtocol, seed: int) -> ale_py.ALEInterface:
    ale = ale_py.ALEInterface()
    ale.setLoggerMode(ale_py.LoggerMode.Error)
    ale.setInt("random_seed", int(seed) % (2**31))
    ale.setFloat("repeat_action_probability", float(protocol.repeat_action_probability))
    ale.setInt("frame_skip", 1)
    ale.loadROM(roms.get_rom_path(rom_id(protocol.game)))
    return ale


_ACTION_SETS: dict[tuple[str, bool], tuple[ale_py.Action, ...]] = {}


def action_set(protocol: AtariProtocol) -> tuple[ale_py.Action, ...]:
    """ALE action ids in agent-action order (the minimal set unless full_action_space)."""
    key = (protocol.game, protocol.full_action_space)
    if key not in _ACTION_SETS:
        ale = _load_ale(protocol, 0)
        actions = ale.getLegalActionSet() if protocol.full_action_space else ale.getMinimalActionSet()
        _ACTION_SETS[key] = tuple(actions)
    return _ACTION_SETS[key]


def action_meanings(protocol: AtariProtocol) -> tuple[str, ...]:
    return tuple(a.name for a in action_set(protocol))


def _check(protocol: AtariProtocol) -> None:
    problems = []
    if protocol.frame_skip < 1:
        problems.append(f"frame_skip >= 1 (got {protocol.frame_skip})")
    if protocol.noop_max > 0 and not 0 <= protocol.noop_min <= protocol.noop_max:
        problems.append(f"0 <= noop_min <= noop_max (got {protocol.noop_min}, {protocol.noop_max})")
    if protocol.max_frames is not None and protocol.max_frames < 1:
        problems.append(f"max_frames >= 1 or None (got {protocol.max_frames})")
    if problems:
        raise ValueError(f"AtariProtocol({protocol.game}): expected " + "; ".join(problems))


class AtariEnv(gymnasium.Env):
    """The ALE game of `protocol`, seeded by `seed` (env.seeds: {"ale": ..., "noop": ...})."""

    def __init__(self, protocol: AtariProtocol, seed: int):
        _check(protocol)
        self.protocol = protocol
        self.obs_spec = protocol.obs
        self.seeds = {"ale": int(seed), "noop": int(seed) + 1}
        self.ale = _load_ale(protocol, self.seeds["ale"])
        self.actions = action_set(protocol)
        self.action_space = gymnasium.spaces.Discrete(len(self.actions))
        self.observation_space = observation_space(protocol.obs)
        self.has_fire = len(self.actions) >= 3 and self.actions[1] == ale_py.Action.FIRE
        self._rng = np.random.default_rng(self.seeds["noop"])
        self._stack = FrameStack(protocol.obs)
        self._game_frames = 0  # emulator frames since the real reset
        self._life_frames = 0  # frame_skip per step() since the last reset() (scope "life")
        self._lives = 0
        self._status = "fresh"  # fresh | running | life_lost | needs_real_reset

    # --- raw frames ---------------------------------------------------------------------------
    def _screen(self) -> np.ndarray:
        return self.ale.getScreenGrayscale() if self.obs_spec.grayscale else self.ale.getScreenRGB()

    def _game_limit_hit(self) -> bool:
        p = self.protocol
        return p.time_limit_scope == "game" and p.max_frames is not None and self._game_frames >= p.max_frames

    def _process(self, screens: list[np.ndarray]) -> np.ndarray:
        """The observation frame from the last one or two raw screens of a step."""
        spec = self.obs_spec
        if not self.protocol.max_pool or len(screens) == 1:
            return resize(screens[-1], spec.size, spec.interpolation)
        if spec.resize_before_pool:
            return np.maximum(*(resize(s, spec.size, spec.interpolation) for s in screens[-2:]))
        return resize(np.maximum(screens[-2], screens[-1]), spec.size, spec.interpolation)

    def _skip(self, action: ale_py.Action) -> tuple[float, np.ndarray, bool]:
        """Repeat an ALE action up to frame_skip frames: (summed raw reward, obs frame, stopped early)."""
        reward, screens = 0.0, []
        for _ in range(self.protocol.frame_skip):
            reward += self.ale.act(action)
            self._game_frames += 1
            screens = [*screens[-1:], self._screen()]
            if self.ale.game_over() or self._game_limit_hit():
                return reward, self._process(screens), True
        return reward, self._process(screens), False

    # --- gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self.seeds = {"ale": int(seed), "noop": int(seed) + 1}
            self.ale = _load_ale(self.protocol, self.seeds["ale"])
            self._rng = np.random.default_rng(self.seeds["noop"])
            self._status = "fresh"
        self._life_frames = 0
        if self._status == "life_lost" and self.protocol.life_loss_reset_noop:
            _, frame, stopped = self._skip(self.actions[_NOOP])
            self._lives = self.ale.lives()
            if not stopped:
                self._status = "running"
                return self._stack.reset(frame), self._info(0.0, noops=0)
        elif self._status == "life_lost":
            self._status = "running"
            return self._stack.observation(), self._info(0.0, noops=0)
        frame, noops = self._real_reset()
        self._status = "running"
        return self._stack.reset(frame), self._info(0.0, noops=noops)

    def _real_reset(self) -> tuple[np.ndarray, int]:
        p = self.protocol
        while True:
            self.ale.reset_game()
            self._game_frames = 0
            frame = resize(self._screen(), self.obs_spec.size, self.obs_spec.interpolation)
            noops = int(self._rng.integers(p.noop_min, p.noop_max + 1)) if p.noop_max > 0 else 0
            ended = False
            if p.noop_unit == "frame":
                for _ in range(noops):
                    self.ale.act(self.actions[_NOOP])
                    self._game_frames += 1
                    ended = self.ale.game_over() or self._game_limit_hit()
                    if ended:
                        break
                frame = resize(self._screen(), self.obs_spec.size, self.obs_spec.interpolation)
            sequence = [1, 2] if p.fire_on_reset and self.has_fire else []
            sequence += [_NOOP] * noops if p.noop_unit == "step" else []
            for agent_action in sequence:
                if ended:
                    break
                _, frame, ended = self._skip(self.actions[agent_action])
            if not ended:
                self._lives = self.ale.lives()
                return frame, noops

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._status != "running":
            raise RuntimeError(f"AtariEnv({self.protocol.game}).step() in state {self._status!r}: call reset() first")
        if not 0 <= int(action) < len(self.actions):
            raise ValueError(f"AtariEnv({self.protocol.game}).step: expected an action in [0, {len(self.actions)}), got {action}")
        p = self.protocol
        reward, frame, _ = self._skip(self.actions[int(action)])
        lives = self.ale.lives()
        life_loss = lives < self._lives
        if life_loss and p.fire_after_life_loss and self.has_fire and not self.ale.game_over() \
                and not self._game_limit_hit():
            fire_reward, frame, _ = self._skip(self.actions[1])
            reward += fire_reward
            lives = self.ale.lives()
        self._lives = lives
        self._life_frames += p.frame_skip
        game_over = self.ale.game_over()
        terminated = game_over or (p.life_loss_terminal and life_loss and lives > 0)
        truncated = not terminated and (self._game_limit_hit() or (
            p.time_limit_scope == "life" and p.max_frames is not None and self._life_frames >= p.max_frames))
        if game_over or truncated:
            self._status = "needs_real_reset"
        elif terminated:
            self._status = "life_lost"
        obs = self._stack.push(frame)
        info = self._info(reward, life_loss=life_loss)
        return obs, transform_reward(reward, p.reward_transform), bool(terminated), bool(truncated), info

    def _info(self, raw_reward: float, life_loss: bool = False, **extra: Any) -> dict[str, Any]:
        return {"raw_reward": float(raw_reward), "lives": int(self._lives), "life_loss": life_loss,
                "game_over": bool(self.ale.game_over()), "frames": self._game_frames, **extra}

    # --- checkpointing ------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {"ale": pickle.dumps(self.ale.cloneState(include_rng=True)), "game_frames": self._game_frames,
                "life_frames": self._life_frames, "lives": self._lives, "status": self._status,
                "rng": self._rng.bit_generator.state, "stack": self._stack.get_state(), "seeds": dict(self.seeds)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.ale.restoreState(pickle.loads(state["ale"]))
        self._game_frames, self._life_frames = state["game_frames"], state["life_frames"]
        self._lives, self._status = state["lives"], state["status"]
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]
        self._stack.set_state(state["stack"])
        self.seeds = dict(state["seeds"])
