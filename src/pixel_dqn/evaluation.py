"""Play whole episodes with a fixed policy on vector envs and summarise the returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np

from pixel_dqn.episodes import EpisodeTally
from pixel_dqn.run_directory import MODEL_FILE, RUN_CONFIG_FILE

Policy = Callable[[np.ndarray], np.ndarray]

# why an episode ended: CartPole's two terminations, or the time limit (a truncation)
ENDINGS = ("time_limit", "pole_fell", "cart_off_track")


@dataclass(frozen=True)
class EvalResult:
    """Per-episode returns, lengths and endings, with the usual summary statistics."""

    returns: tuple[float, ...]
    lengths: tuple[int, ...]
    endings: tuple[str, ...] = ()
    """One of ``ENDINGS`` per episode (empty for envs that do not say why they ended)."""
    env_steps: int = 0
    """Env steps played, those of sub-envs playing on past their quota included: the
    interaction the evaluation cost."""

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        """mean / std / min / max of the returns, mean length, the episode count, and how many
        episodes ended each way (``ended_by``)."""
        returns = np.asarray(self.returns)
        return {
            "episodes": len(returns),
            "mean": float(returns.mean()),
            "std": float(returns.std()),
            "min": float(returns.min()),
            "max": float(returns.max()),
            "mean_length": float(np.mean(self.lengths)),
            "ended_by": {e: self.endings.count(e) for e in ENDINGS} if self.endings else {},
            "env_steps": self.env_steps,
        }

    def to_dict(self) -> dict:
        return {**self.summary(), **asdict(self)}


def run_episodes(
    policy: Policy,
    make_envs: Callable[[int], gym.vector.VectorEnv],
    num_episodes: int,
    seed: int,
    max_parallel: int = 32,
) -> EvalResult:
    """Play ``num_episodes`` full episodes, up to ``max_parallel`` at a time.

    Each sub-env plays a fixed quota of episodes (so short episodes are not over-counted) and
    starts from a seed derived from ``seed``; the same arguments give the same episodes.
    """
    num_envs = min(num_episodes, max_parallel)
    quota = np.full(num_envs, num_episodes // num_envs)
    quota[: num_episodes % num_envs] += 1
    env_seeds = np.random.SeedSequence(seed).generate_state(num_envs).tolist()
    envs = make_envs(num_envs)
    try:
        obs, _ = envs.reset(seed=env_seeds)
        tally = EpisodeTally.start(num_envs)
        finished = np.zeros(num_envs, dtype=np.int64)
        returns: list[float] = []
        lengths: list[int] = []
        endings: list[str] = []
        played = 0
        while (finished < quota).any():
            played += int(tally.live.sum())  # a resetting sub-env's step plays nothing
            obs, rewards, terminated, truncated, infos = envs.step(policy(obs))
            said = infos.get("_cart_off_track", np.zeros(num_envs, bool))  # vector info mask
            off_track = infos.get("cart_off_track", np.zeros(num_envs, bool))
            # a sub-env past its quota plays on uncounted
            for i, episode_return, length in tally.step(rewards, terminated, truncated,
                                                        counted=finished < quota):
                returns.append(episode_return)
                lengths.append(length)
                if not terminated[i]:
                    endings.append("time_limit")
                elif said[i]:
                    endings.append("cart_off_track" if off_track[i] else "pole_fell")
                finished[i] += 1
    finally:
        envs.close()
    # endings are known only if every env said why it terminated (any CartPole does)
    known = len(endings) == len(returns)
    return EvalResult(tuple(returns), tuple(lengths), tuple(endings) if known else (), played)


@dataclass(frozen=True)
class RunPolicy:
    """A trained run's greedy policy and the env factory its config describes."""

    policy: Policy
    make_envs: Callable[..., gym.vector.VectorEnv]
    pixels: bool


def load_run_policy(run_dir: Path, max_episode_steps: int | None = None) -> RunPolicy:
    """The greedy policy of a finished training run, and its env (time limit overridable)."""
    config_file, model_file = run_dir / RUN_CONFIG_FILE, run_dir / MODEL_FILE
    for path in (config_file, model_file):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: run_dir must be a finished run written by scripts/train.py"
            )
    from omegaconf import OmegaConf

    from pixel_dqn.config import PixelEnvConfig, load_config
    from pixel_dqn.envs.factory import make_envs

    # deferred: TensorFlow loads only past the checks
    from pixel_dqn.networks import greedy_policy, load_q_network

    env_cfg = load_config(OmegaConf.load(config_file), source=str(config_file)).env
    if max_episode_steps is not None:
        env_cfg = replace(env_cfg, max_episode_steps=max_episode_steps)
    return RunPolicy(greedy_policy(load_q_network(model_file)), partial(make_envs, env_cfg),
                     isinstance(env_cfg, PixelEnvConfig))

