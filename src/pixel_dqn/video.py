"""Record one episode of any policy as an MP4 and a GIF, headless, at full resolution.

The frame is gymnasium's own 600x400 render. For a pixel agent the agent's view is shown beside
it: the newest patch and the diff of the last two (gray is zero), each enlarged 4x.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import gymnasium as gym
import imageio.v2 as imageio
import numpy as np

from pixel_dqn.evaluation import Policy

FPS = 50  # CartPole advances 0.02 s per step: real time
VIEW_SCALE = 4


@dataclass(frozen=True)
class Recording:
    mp4: Path
    gif: Path
    frames: int
    frame_size: tuple[int, int]  # height, width
    episode_return: float


def record_episode(
    policy: Policy,
    make_envs: Callable[..., gym.vector.VectorEnv],
    path_stem: Path,
    seed: int = 0,
    render_kwargs: dict | None = None,
) -> Recording:
    """Play one episode with ``policy`` on a one-env vector env and write ``<stem>.mp4/.gif``.

    ``render_kwargs`` go to ``make_envs`` so its env renders frames (``render_mode``).
    """
    envs = make_envs(num_envs=1, **(render_kwargs or {}))
    env = envs.envs[0]
    try:
        obs, _ = envs.reset(seed=[seed])
        frames = [_compose(env.render(), obs[0], step=0)]
        episode_return = 0.0
        while True:
            obs, reward, terminated, truncated, _ = envs.step(policy(obs))
            episode_return += float(reward[0])
            # the vector env resets a sub-env on the NEXT step: this is still the last state
            frames.append(_compose(env.render(), obs[0], step=len(frames)))
            if terminated[0] or truncated[0]:
                break
    finally:
        envs.close()
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    mp4, gif = path_stem.with_suffix(".mp4"), path_stem.with_suffix(".gif")
    # yuv420p needs even sizes; macro_block_size 2 pads at most one pixel
    imageio.mimwrite(mp4, frames, fps=FPS, codec="libx264", quality=8, macro_block_size=2,
                     pixelformat="yuv420p")
    imageio.mimwrite(gif, frames, duration=1000 / FPS, loop=0)
    return Recording(mp4, gif, len(frames), frames[0].shape[:2], episode_return)


def _compose(frame: np.ndarray, obs: np.ndarray, step: int) -> np.ndarray:
    """The rendered frame with its step number, and the agent's view if it sees pixels."""
    # the counter also keeps every frame distinct (GIF writers merge identical ones)
    frame = frame.copy()
    cv2.putText(frame, f"step {step}", (10, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                cv2.LINE_AA)
    if obs.dtype != np.uint8:  # the 4-float state: nothing to show
        return frame
    newest, previous = obs[-1].astype(np.int16), obs[-2].astype(np.int16)
    diff = np.clip(128 + (newest - previous), 0, 255).astype(np.uint8)
    views = [obs[-1], diff]
    views = [v if v.ndim == 3 else np.repeat(v[..., None], 3, axis=2) for v in views]
    height = frame.shape[0]
    panel = np.full((height, views[0].shape[1] * VIEW_SCALE + 20, 3), 255, np.uint8)
    top = 8
    for view, label in zip(views, ("agent's patch", "diff (gray = 0)"), strict=True):
        big = cv2.resize(view, None, fx=VIEW_SCALE, fy=VIEW_SCALE,
                         interpolation=cv2.INTER_NEAREST)[: height - top - 20]
        cv2.putText(panel, label, (10, top + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        panel[top + 20 : top + 20 + big.shape[0], 10 : 10 + big.shape[1]] = big
        top += big.shape[0] + 28
    return np.concatenate([frame, panel], axis=1)
