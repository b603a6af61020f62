"""Build the CartPole environments the agents see: the 4-float state or screen patches."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import gymnasium as gym

from pixel_dqn.config import RENDERERS, VECTOR_MODES, EnvConfig, PixelEnvConfig
from pixel_dqn.envs.pixels import PatchRenderer, PixelObservation, frames_for
from pixel_dqn.envs.screen import (
    CropWindow,
    FastPatchRenderer,
    PygamePatchRenderer,
    StackedPatchRenderer,
)


class CartOffTrackInfo(gym.Wrapper):
    """Says why a CartPole episode terminated: ``info["cart_off_track"]`` is True when the cart
    left the track (|x| > x_threshold), False when the pole fell. Nothing else changes."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            info = {**info, "cart_off_track": bool(
                abs(self.env.unwrapped.state[0]) > self.env.unwrapped.x_threshold)}
        return obs, reward, terminated, truncated, info


def make_single_env(id: str, max_episode_steps: int | None, render_mode: str | None) -> gym.Env:
    """Create one environment; the project's single call to ``gym.make``.

    ``max_episode_steps=None`` keeps the env's own time limit. ``SDL_VIDEODRIVER`` defaults to
    ``dummy`` so pygame never looks for a screen (headless servers); a value the user set is
    left alone. A CartPole reports in its info why an episode terminated (``CartOffTrackInfo``).
    """
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    env = gym.make(id, render_mode=render_mode, **kwargs)
    return CartOffTrackInfo(env) if hasattr(env.unwrapped, "x_threshold") else env


def make_patch_renderer(renderer: str, crop: CropWindow, gray: bool) -> PatchRenderer:
    """The ``fast`` or ``pygame`` patch renderer of a crop window (see ``envs.screen``)."""
    if renderer not in RENDERERS:
        raise ValueError(f"unknown renderer {renderer!r}; valid: {', '.join(RENDERERS)}")
    renderer_class = FastPatchRenderer if renderer == "fast" else PygamePatchRenderer
    return renderer_class(crop, gray)


def make_env_renderer(env: PixelEnvConfig) -> PatchRenderer:
    """The renderer of a pixel env config: the patch around the cart, with the track view
    stacked under it if ``env.track_rows``."""
    patches = make_patch_renderer(env.renderer, CropWindow.around_cart(env), env.gray)
    if env.track_rows:
        track = make_patch_renderer(env.renderer, CropWindow.whole_track(env), env.gray)
        patches = StackedPatchRenderer([patches, track])
    return patches


def make_single_pixel_env(env: PixelEnvConfig, renderer: PatchRenderer | None = None) -> gym.Env:
    """One CartPole whose observations are uint8 patches around the cart (see PixelObservation).

    ``renderer`` (default: the config's own) may be shared by several envs (the fast renderer
    memoises patches).
    """
    patches = make_env_renderer(env) if renderer is None else renderer
    single = make_single_env(env.id, env.max_episode_steps, render_mode="rgb_array")
    return PixelObservation(single, patches, frames_for(env.obs_mode, env.stack, env.diff_lag))


def vectorize(factory: Callable[[], gym.Env], num_envs: int, mode: str) -> gym.vector.VectorEnv:
    """``num_envs`` copies behind gymnasium's vector API, in this process or in subprocesses.

    Gymnasium 1.x resets a finished sub-env on its *next* ``step`` call (``NEXT_STEP`` mode):
    the loop must not store that step as a transition.
    """
    if mode not in VECTOR_MODES:
        raise ValueError(f"unknown vector mode {mode!r}; valid: {', '.join(VECTOR_MODES)}")
    vector_class = gym.vector.SyncVectorEnv if mode == "sync" else gym.vector.AsyncVectorEnv
    return vector_class([factory] * num_envs, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)


def make_env(env: EnvConfig, render_mode: str | None = None) -> gym.vector.VectorEnv:
    """State CartPole as a vector env: training and evaluation always see one.

    ``render_mode="rgb_array"`` makes its sub-envs render frames (for videos).
    """
    factory = partial(make_single_env, env.id, env.max_episode_steps, render_mode)
    return vectorize(factory, env.num_envs, env.vector_mode)


def make_pixel_env(env: PixelEnvConfig) -> gym.vector.VectorEnv:
    """Pixel CartPole as a vector env, its sub-envs sharing one renderer (one patch memo)."""
    factory = partial(make_single_pixel_env, env, make_env_renderer(env))
    return vectorize(factory, env.num_envs, env.vector_mode)


def make_envs(env: EnvConfig, num_envs: int | None = None,
              render_mode: str | None = None) -> gym.vector.VectorEnv:
    """The vector env an env config describes (``num_envs`` sub-envs instead of the config's,
    if given). ``render_mode="rgb_array"`` makes a state env's sub-envs render frames (a
    pixel env's always do)."""
    if num_envs is not None:
        env = replace(env, num_envs=num_envs)
    if isinstance(env, PixelEnvConfig):
        return make_pixel_env(env)
    return make_env(env, render_mode)
