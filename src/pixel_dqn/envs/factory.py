"""Build the CartPole environments the agents see."""

from __future__ import annotations

import os
from functools import partial

import gymnasium as gym


def make_single_env(
    id: str = "CartPole-v1",
    max_episode_steps: int | None = None,
    render_mode: str | None = None,
) -> gym.Env:
    """Create one environment; the project's single call to ``gym.make``.

    ``SDL_VIDEODRIVER`` defaults to ``dummy`` so pygame never looks for a screen (headless
    servers); a value the user set is left alone.
    """
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    return gym.make(id, render_mode=render_mode, **kwargs)


def make_env(
    id: str = "CartPole-v1",
    max_episode_steps: int | None = None,
    num_envs: int = 1,
) -> gym.vector.VectorEnv:
    """Create ``num_envs`` copies of the environment behind gymnasium's vector API.

    Training and evaluation always see a vector env, so one code path acts for one env or many.
    Gymnasium 1.x resets a finished sub-env on its *next* ``step`` call (``NEXT_STEP`` mode):
    the loop must not store that step as a transition.
    """
    factory = partial(make_single_env, id=id, max_episode_steps=max_episode_steps)
    return gym.vector.SyncVectorEnv(
        [factory] * num_envs, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP
    )
