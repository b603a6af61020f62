"""Build the CartPole environments the agents see: the 4-float state or screen patches."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial

import gymnasium as gym

from pixel_dqn.config import EnvConfig, PixelEnvConfig, StateEnvConfig
from pixel_dqn.envs.pixels import PatchRenderer, PixelObservation, frames_for
from pixel_dqn.envs.screen import (
    CropWindow,
    FastPatchRenderer,
    PygamePatchRenderer,
    StackedPatchRenderer,
)

VECTOR_MODES = ("sync", "async")
RENDERERS = ("fast", "pygame")
PIXELS = PixelEnvConfig()  # the keyword defaults below are the config schema's


class CartOffTrackInfo(gym.Wrapper):
    """Says why a CartPole episode terminated: ``info["cart_off_track"]`` is True when the cart
    left the track (|x| > x_threshold), False when the pole fell. Nothing else changes."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            info = {**info, "cart_off_track": bool(
                abs(self.env.unwrapped.state[0]) > self.env.unwrapped.x_threshold)}
        return obs, reward, terminated, truncated, info


def make_single_env(
    id: str = EnvConfig.id,
    max_episode_steps: int | None = EnvConfig.max_episode_steps,
    render_mode: str | None = None,
) -> gym.Env:
    """Create one environment; the project's single call to ``gym.make``.

    ``SDL_VIDEODRIVER`` defaults to ``dummy`` so pygame never looks for a screen (headless
    servers); a value the user set is left alone. A CartPole reports in its info why an
    episode terminated (``CartOffTrackInfo``).
    """
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    env = gym.make(id, render_mode=render_mode, **kwargs)
    return CartOffTrackInfo(env) if hasattr(env.unwrapped, "x_threshold") else env


def make_patch_renderer(
    renderer: str = PIXELS.renderer,
    band: Sequence[float] = tuple(PIXELS.band),
    window: float = PIXELS.window,
    size: Sequence[int] = tuple(PIXELS.size),
    gray: bool = PIXELS.gray,
    follow: float = PIXELS.follow,
) -> PatchRenderer:
    """The ``fast`` or ``pygame`` patch renderer for a crop window (see ``envs.screen``)."""
    if renderer not in RENDERERS:
        raise ValueError(f"unknown renderer {renderer!r}; valid: {', '.join(RENDERERS)}")
    crop = CropWindow(band=(float(band[0]), float(band[1])), window=float(window),
                      size=(int(size[0]), int(size[1])), follow=float(follow))
    renderer_class = FastPatchRenderer if renderer == "fast" else PygamePatchRenderer
    return renderer_class(crop, gray)


def make_single_pixel_env(
    id: str = PIXELS.id,
    max_episode_steps: int | None = PIXELS.max_episode_steps,
    renderer: str | PatchRenderer = PIXELS.renderer,
    obs_mode: str = PIXELS.obs_mode,
    stack: int = PIXELS.stack,
    diff_lag: int = PIXELS.diff_lag,
    **crop_kwargs,
) -> gym.Env:
    """One CartPole whose observations are uint8 patches around the cart (see PixelObservation).

    ``renderer`` is a name (``crop_kwargs`` then go to ``make_patch_renderer``) or a renderer
    object, which several envs may share (the fast renderer memoises patches).
    """
    patches = make_patch_renderer(renderer, **crop_kwargs) if isinstance(renderer, str) else (
        renderer)
    env = make_single_env(id, max_episode_steps, render_mode="rgb_array")
    return PixelObservation(env, patches, frames_for(obs_mode, stack, diff_lag))


def vectorize(factory: Callable[[], gym.Env], num_envs: int, mode: str) -> gym.vector.VectorEnv:
    """``num_envs`` copies behind gymnasium's vector API, in this process or in subprocesses.

    Gymnasium 1.x resets a finished sub-env on its *next* ``step`` call (``NEXT_STEP`` mode):
    the loop must not store that step as a transition.
    """
    if mode not in VECTOR_MODES:
        raise ValueError(f"unknown vector mode {mode!r}; valid: {', '.join(VECTOR_MODES)}")
    vector_class = gym.vector.SyncVectorEnv if mode == "sync" else gym.vector.AsyncVectorEnv
    return vector_class([factory] * num_envs, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)


def make_env(
    id: str = StateEnvConfig.id,
    max_episode_steps: int | None = StateEnvConfig.max_episode_steps,
    num_envs: int = StateEnvConfig.num_envs,
    vector_mode: str = StateEnvConfig.vector_mode,
    render_mode: str | None = None,
) -> gym.vector.VectorEnv:
    """State CartPole as a vector env: training and evaluation always see one.

    ``render_mode="rgb_array"`` makes its sub-envs render frames (for videos).
    """
    factory = partial(make_single_env, id=id, max_episode_steps=max_episode_steps,
                      render_mode=render_mode)
    return vectorize(factory, num_envs, vector_mode)


def make_pixel_env(
    id: str = PIXELS.id,
    max_episode_steps: int | None = PIXELS.max_episode_steps,
    num_envs: int = PIXELS.num_envs,
    vector_mode: str = PIXELS.vector_mode,
    renderer: str = PIXELS.renderer,
    band: Sequence[float] = tuple(PIXELS.band),
    window: float = PIXELS.window,
    size: Sequence[int] = tuple(PIXELS.size),
    gray: bool = PIXELS.gray,
    obs_mode: str = PIXELS.obs_mode,
    stack: int = PIXELS.stack,
    follow: float = PIXELS.follow,
    diff_lag: int = PIXELS.diff_lag,
    track_rows: int = PIXELS.track_rows,
) -> gym.vector.VectorEnv:
    """Pixel CartPole as a vector env, its sub-envs sharing one renderer (one patch memo).

    With ``track_rows`` a coarse view of the whole track (the same band, ``track_rows`` high,
    as wide as the patch, fixed on the screen) is stacked under the patch around the cart.
    """
    patches = make_patch_renderer(renderer, band, window, size, gray, follow)
    if track_rows:
        track = make_patch_renderer(renderer, band, 1.0, (track_rows, size[1]), gray, 0.0)
        patches = StackedPatchRenderer([patches, track])
    factory = partial(make_single_pixel_env, id=id, max_episode_steps=max_episode_steps,
                      renderer=patches, obs_mode=obs_mode, stack=stack, diff_lag=diff_lag)
    return vectorize(factory, num_envs, vector_mode)
