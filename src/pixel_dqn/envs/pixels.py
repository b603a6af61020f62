"""The pixel state: a wrapper whose observations are uint8 screen patches around the cart."""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from pixel_dqn.config import OBS_MODES

FRAMES_METADATA = "observation_frames"
"""``env.metadata`` key of a pixel env (and its vector env): the patches one observation
stacks along its first axis. A replay stores each patch once and rebuilds observations."""


class PatchRenderer(Protocol):
    shape: tuple[int, ...]  # (height, width) for gray, (height, width, 3) for RGB

    def patch(self, env: gym.Env) -> np.ndarray: ...


def frames_for(mode: str, stack: int, diff_lag: int) -> int:
    """How many consecutive patches an observation of ``mode`` carries: ``stack`` for a stack,
    ``diff_lag + 1`` for the diff modes (the diff subtracts the oldest from the newest)."""
    if mode not in OBS_MODES:
        raise ValueError(f"unknown observation mode {mode!r}; valid: {', '.join(OBS_MODES)}")
    return stack if mode == "stack" else diff_lag + 1


class PixelObservation(gym.Wrapper):
    """Replaces CartPole's state by the last patches of the screen around the cart.

    The observation is ``frames`` uint8 patches, oldest first, along a leading frame axis:
    ``(frames, height, width)`` for gray, ``(frames, height, width, 3)`` for RGB (one byte per
    pixel: the replay stores frames, never floats). ``diff`` and ``diff_current`` carry the
    previous and the current patch, and the network's first layer forms ``current - previous``
    (``pixel_dqn.networks.pixel_state``); ``stack`` carries the last ``frames`` patches. On
    ``reset`` the history is refilled with the first patch, so the first diff of an episode is
    zero.
    Reward, termination and truncation are untouched.
    """

    def __init__(self, env: gym.Env, renderer: PatchRenderer, frames: int) -> None:
        super().__init__(env)
        self._renderer = renderer
        self._history = np.zeros((frames, *renderer.shape), np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, self._history.shape, np.uint8)
        self.metadata = {**env.metadata, FRAMES_METADATA: frames}

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        _, info = self.env.reset(**kwargs)
        self._history[:] = self._renderer.patch(self.env)
        return self._history.copy(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        _, reward, terminated, truncated, info = self.env.step(action)
        self._history[:-1] = self._history[1:]  # drop the oldest patch
        self._history[-1] = self._renderer.patch(self.env)
        return self._history.copy(), reward, terminated, truncated, info
