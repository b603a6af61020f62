"""The pixel state: a wrapper whose observations are uint8 screen patches around the cart."""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np

OBS_MODES = ("diff", "diff_current", "stack")


class PatchRenderer(Protocol):
    shape: tuple[int, ...]  # (height, width) for gray, (height, width, 3) for RGB

    def patch(self, env: gym.Env) -> np.ndarray: ...


def frames_for(mode: str, stack: int) -> int:
    """How many consecutive patches an observation of ``mode`` carries."""
    if mode not in OBS_MODES:
        raise ValueError(f"unknown observation mode {mode!r}; valid: {', '.join(OBS_MODES)}")
    return stack if mode == "stack" else 2


class PixelObservation(gym.Wrapper):
    """Replaces CartPole's state by the last patches of the screen around the cart.

    The observation is ``frames`` uint8 patches, oldest first, along the channel axis (one byte
    per pixel: the replay stores frames, never floats). ``diff`` and ``diff_current`` carry the
    previous and the current patch, and the network's first layer forms ``current - previous``
    (see ``pixel_state``); ``stack`` carries the last ``frames`` patches. On ``reset`` the
    history is refilled with the first patch, so the first diff of an episode is zero.
    Reward, termination and truncation are untouched.
    """

    def __init__(self, env: gym.Env, renderer: PatchRenderer, frames: int) -> None:
        super().__init__(env)
        self._renderer = renderer
        height, width = renderer.shape[:2]
        self._channels = 1 if len(renderer.shape) == 2 else renderer.shape[2]
        self._history = np.zeros((height, width, frames * self._channels), np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, self._history.shape, np.uint8)

    def _patch(self) -> np.ndarray:
        patch = self._renderer.patch(self.env)
        return patch[..., None] if patch.ndim == 2 else patch

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        _, info = self.env.reset(**kwargs)
        self._history[:] = np.tile(self._patch(), (1, 1, self._history.shape[2] // self._channels))
        return self._history.copy(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        _, reward, terminated, truncated, info = self.env.step(action)
        c = self._channels
        self._history[..., :-c] = self._history[..., c:]  # drop the oldest patch
        self._history[..., -c:] = self._patch()
        return self._history.copy(), reward, terminated, truncated, info


def pixel_state(frames: np.ndarray, mode: str, channels: int = 1) -> np.ndarray:
    """What the network sees, from a batch of observations (..., H, W, frames * channels).

    ``diff``: current - previous, in [-1, 1]; ``diff_current``: the current patch in [0, 1] and
    that diff; ``stack``: every patch in [0, 1]. Works on numpy arrays and on tensors.
    """
    import keras

    x = keras.ops.cast(frames, "float32") / 255.0
    if mode == "stack":
        return x
    previous, current = x[..., -2 * channels : -channels], x[..., -channels:]
    diff = current - previous
    if mode == "diff":
        return diff
    if mode == "diff_current":
        return keras.ops.concatenate([current, diff], axis=-1)
    raise ValueError(f"unknown observation mode {mode!r}; valid: {', '.join(OBS_MODES)}")
