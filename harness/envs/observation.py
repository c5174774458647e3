"""Observation post-processing shared by every env: resize, grayscale, channels-first frame stack.

Frames inside an env are handled as HxW (grayscale) or HxWx3 (RGB) uint8 arrays; what an env
returns is channels-first `ObservationSpec.shape` uint8 (a stack of the last `frame_stack` frames,
oldest first; a reset fills every slot with the reset frame).
"""
from __future__ import annotations

from collections import deque
from typing import Any

import cv2
import numpy as np
from PIL import Image

from harness.envs.protocol import ObservationSpec


def resize(frame: np.ndarray, size: int, interpolation: str) -> np.ndarray:
    """Resize an HxW or HxWx3 uint8 frame to size x size.

    "bilinear" is PIL `Image.resize(BILINEAR)` (what IRIS used, bit-exact); "area" is cv2 INTER_AREA
    (what gymnasium's AtariPreprocessing, hence TWM, used).
    """
    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    if interpolation == "bilinear":
        return np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR))
    if interpolation == "area":
        return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
    raise ValueError(f"ObservationSpec.interpolation: expected 'bilinear' or 'area', got {interpolation!r}")


def rgb_to_gray(frame: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma as PIL's convert("L") computes it (for envs with no native grayscale screen)."""
    return np.asarray(Image.fromarray(frame).convert("L"))


def to_channels_first(frame: np.ndarray) -> np.ndarray:
    return frame[None] if frame.ndim == 2 else np.ascontiguousarray(frame.transpose(2, 0, 1))


class FrameStack:
    """The last `spec.frame_stack` processed frames, stacked channels-first."""

    def __init__(self, spec: ObservationSpec):
        if spec.frame_stack < 1:
            raise ValueError(f"ObservationSpec.frame_stack: expected >= 1, got {spec.frame_stack}")
        self.spec = spec
        self._frames: deque[np.ndarray] = deque(maxlen=spec.frame_stack)

    def reset(self, frame: np.ndarray) -> np.ndarray:
        self._frames.clear()
        for _ in range(self.spec.frame_stack):
            self._frames.append(frame)
        return self.observation()

    def push(self, frame: np.ndarray) -> np.ndarray:
        self._frames.append(frame)
        return self.observation()

    def observation(self) -> np.ndarray:
        return np.concatenate([to_channels_first(f) for f in self._frames], axis=0)

    def get_state(self) -> dict[str, Any]:
        """Plain Python values only (bytes and lists), so checkpoints need no numpy unpickling."""
        return {"frames": [f.tobytes() for f in self._frames], "shapes": [list(f.shape) for f in self._frames]}

    def set_state(self, state: dict[str, Any]) -> None:
        self._frames.clear()
        for data, shape in zip(state["frames"], state["shapes"]):
            self._frames.append(np.frombuffer(data, dtype=np.uint8).reshape(shape).copy())


def process_rgb(frame: np.ndarray, spec: ObservationSpec) -> np.ndarray:
    """An HxWx3 RGB frame (Catch, Crafter) to the spec's size and colour (still channels-last)."""
    frame = resize(frame, spec.size, spec.interpolation)
    return rgb_to_gray(frame) if spec.grayscale else frame


def observation_space(spec: ObservationSpec) -> Any:
    import gymnasium
    return gymnasium.spaces.Box(0, 255, shape=spec.shape, dtype=np.uint8)


def transform_reward(reward: float, transform: str) -> float:
    """The protocol's reward_transform ("none", "sign", "tanh") applied to a raw reward."""
    if transform == "none":
        return float(reward)
    if transform == "sign":
        return float(np.sign(reward))
    if transform == "tanh":
        return float(np.tanh(reward))
    raise ValueError(f"reward_transform: expected 'none', 'sign' or 'tanh', got {transform!r}")
