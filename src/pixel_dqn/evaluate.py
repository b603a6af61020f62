"""Play episodes with a trained run's greedy policy or the hard-coded baseline; print
mean/std/min/max; optionally record an episode as MP4 and GIF.

    python -m pixel_dqn.evaluate run_dir=outputs/2026-11-25/10-00-00_cartpole_state-mlp-dqn-seed0 \\
        episodes=100 seed=0 [max_episode_steps=200] [video=true]
    python -m pixel_dqn.evaluate policy=heuristic episodes=500 max_episode_steps=200 [video=true]

(also ``pixel-dqn-evaluate``, or ``python scripts/evaluate.py`` in a checkout).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pixel_dqn.cli import UserError, exit_on_user_error, quiet_tensorflow_logs

POLICIES = ("run", "heuristic")


@dataclass
class EvaluateArgs:
    run_dir: str | None = None
    """A run directory written by scripts/train.py (for policy=run)."""
    policy: str = "run"
    """``run``: the run's greedy policy; ``heuristic``: push toward the tilt (state CartPole)."""
    episodes: int = 100
    """Episodes to play."""
    seed: int = 0
    """Seed of the evaluation episodes (independent of the training seed)."""
    max_episode_steps: int | None = None
    """Override the env's time limit (e.g. 200 to compare with the seed notebook)."""
    video: bool = False
    """Also record one episode (seeded by ``seed``) as MP4 and GIF."""
    video_dir: str | None = None
    """Where the videos go (default: <run_dir>/videos, or outputs/videos for the heuristic)."""
    trace: int = 0
    """Also play this many episodes one at a time (seeds ``seed``, ``seed + 1``, ...) and print,
    for each, its length, how it ended, the cart-pole state at its end and the range of the
    cart's position: how the failures happen."""


def parse_args(argv: list[str]) -> EvaluateArgs:
    try:
        args = OmegaConf.merge(OmegaConf.structured(EvaluateArgs), OmegaConf.from_dotlist(argv))
        args = OmegaConf.to_object(args)
    except OmegaConfBaseException as error:
        first_line = str(error).splitlines()[0]
        raise UserError(f"{first_line} (valid keys: run_dir, policy, episodes, seed, "
                        f"max_episode_steps, video, video_dir, trace; e.g. run_dir=outputs/... "
                        f"episodes=100)") from None
    if args.policy not in POLICIES:
        raise UserError(f"policy={args.policy!r} is invalid: must be one of {', '.join(POLICIES)}")
    if args.policy == "run" and args.run_dir is None:
        raise UserError("run_dir is missing: give run_dir=<a run directory> or policy=heuristic")
    if args.episodes < 1:
        raise UserError(f"episodes={args.episodes} is invalid: must be a positive integer")
    if args.max_episode_steps is not None and args.max_episode_steps < 1:
        raise UserError(f"max_episode_steps={args.max_episode_steps} is invalid: must be a "
                        f"positive integer")
    return args


def main(argv: list[str]) -> None:
    """Evaluate as ``argv`` (``key=value`` words) asks; a user mistake exits 2 in one line."""
    quiet_tensorflow_logs()
    with exit_on_user_error():
        args = parse_args(argv)
        from pixel_dqn.evaluation import load_run_policy, run_episodes

        if args.policy == "heuristic":
            from pixel_dqn.config import StateEnvConfig
            from pixel_dqn.envs import make_envs as make_state_envs
            from pixel_dqn.policies import push_toward_tilt

            policy, pixels = push_toward_tilt, False
            state = StateEnvConfig(max_episode_steps=args.max_episode_steps)
            make_envs = partial(make_state_envs, state)
            video_dir = Path(args.video_dir or "outputs/videos")
        else:
            try:
                run = load_run_policy(Path(args.run_dir), args.max_episode_steps)
            except FileNotFoundError as error:
                raise UserError(str(error)) from None
            policy, make_envs, pixels = run.policy, run.make_envs, run.pixels
            video_dir = Path(args.video_dir or Path(args.run_dir) / "videos")
    result = run_episodes(policy, lambda n: make_envs(num_envs=n), args.episodes, args.seed)
    summary = result.summary()
    print(json.dumps(summary))
    print(f"{summary['episodes']} episodes ({args.policy}): mean {summary['mean']:.1f} "
          f"std {summary['std']:.1f} min {summary['min']:.0f} max {summary['max']:.0f}")
    for line in trace_episodes(policy, make_envs, args.trace, args.seed):
        print(line)
    if args.video:
        from pixel_dqn.video import record_episode

        stem = video_dir / f"{args.policy}_episode_seed{args.seed}"
        # pixel envs always render frames; the state env must be asked to
        recording = record_episode(policy, make_envs, stem, seed=args.seed,
                                   render_kwargs=None if pixels else {"render_mode": "rgb_array"})
        height, width = recording.frame_size
        print(f"video: {recording.mp4} and {recording.gif} ({recording.frames} frames of "
              f"{width}x{height}, return {recording.episode_return:.0f})")


def trace_episodes(policy, make_envs, episodes: int, seed: int) -> list[str]:
    """One line per episode: length, ending, the final (x, x_dot, theta, theta_dot), x range."""
    import numpy as np

    envs, lines = make_envs(num_envs=1), []
    cartpole = envs.envs[0].unwrapped
    for episode in range(episodes):
        obs, _ = envs.reset(seed=seed + episode)
        xs, length, done = [], 0, False
        while not done:
            obs, _, terminated, truncated, _ = envs.step(policy(obs))
            length += 1
            xs.append(cartpole.state[0])
            done = bool(terminated[0] or truncated[0])
        x, x_dot, theta, theta_dot = np.asarray(cartpole.state, float)
        ending = "time limit" if not terminated[0] else (
            "cart off track" if abs(x) > cartpole.x_threshold else "pole fell")
        lines.append(f"episode {episode} (seed {seed + episode}): {length} steps, {ending}; at "
                     f"the end x {x:+.2f}, x_dot {x_dot:+.2f}, theta {theta:+.3f}, theta_dot "
                     f"{theta_dot:+.2f}; x over the episode [{min(xs):+.2f}, {max(xs):+.2f}]")
    envs.close()
    return lines


def run() -> None:
    """The console script ``pixel-dqn-evaluate``."""
    main(sys.argv[1:])


if __name__ == "__main__":
    run()
