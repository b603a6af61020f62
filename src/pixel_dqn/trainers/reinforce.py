"""The REINFORCE training loop: play a batch of episodes, then one policy-gradient update."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from pixel_dqn.agents.reinforce import ReinforceAgent, discount_and_normalize_rewards
from pixel_dqn.config import Config, ConfigError, EnvConfig, ReinforceConfig
from pixel_dqn.networks import build_network
from pixel_dqn.run import Run
from pixel_dqn.run_state import LoopState
from pixel_dqn.stop_signals import StopSignals
from pixel_dqn.trainers.base import Trainer


@dataclass
class ReinforceLoopState(LoopState):
    updates: int = 0


@dataclass(frozen=True)
class Episodes:
    """The steps of a batch of finished episodes, concatenated episode after episode."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: list[np.ndarray]  # per episode


class ReinforceTrainer(Trainer):
    """REINFORCE with a Bernoulli policy network; episodes are played side by side."""

    progress_units = "update"

    hparams: ReinforceConfig

    @staticmethod
    def env_config(cfg: Config) -> EnvConfig:
        # one sub-env per episode of an update; every episode of the run is capped
        return replace(cfg.env, num_envs=cfg.trainer.episodes_per_update,
                       max_episode_steps=cfg.trainer.max_episode_steps)

    def __init__(self, cfg: Config, run: Run) -> None:
        super().__init__(cfg, run)
        envs, hparams = self.envs, self.hparams
        if envs.single_action_space.n != 2:
            raise ConfigError(f"trainer=reinforce needs a two-action env, not "
                              f"{envs.single_action_space.n} actions")
        build = partial(build_network, cfg.model, envs.single_observation_space.shape, 2,
                        head="policy")
        self.agent = ReinforceAgent(build, hparams.learning_rate)

    def progress_total(self) -> int:
        return self.hparams.updates

    def start(self) -> None:
        self.state = ReinforceLoopState(next_eval=self.cfg.eval.every_steps,
                                        next_checkpoint=self.cfg.checkpoint.every_steps,
                                        last={"loss": None})

    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        return self.agent.greedy_actions(obs)

    def network(self):
        return self.agent.policy

    def checkpoint_state(self) -> tuple[dict[str, np.ndarray], dict]:
        return self.agent.state_dict(), {}

    def load_checkpoint_state(self, arrays: dict[str, np.ndarray], extra: dict) -> None:
        self.agent.load_state_dict(arrays)

    def play_episodes(self) -> Episodes:
        """One full episode per sub-env with the current policy (finished ones wait)."""
        envs = self.envs
        num_envs = envs.num_envs
        # seeded once; later resets continue the envs' own generators
        seeds = None if self.state.updates else [self.seeds.env + i for i in range(num_envs)]
        obs, _ = envs.reset(seed=seeds)
        steps_obs, steps_actions, steps_rewards, steps_env = [], [], [], []
        running = np.ones(num_envs, bool)
        while running.any():
            actions = self.agent.act(obs, self.rng)
            next_obs, rewards, terminated, truncated, _ = envs.step(actions)
            live = np.flatnonzero(running)
            steps_obs.append(obs[live])
            steps_actions.append(actions[live])
            steps_rewards.append(rewards[live])
            steps_env.append(live)
            running &= ~(terminated | truncated)
            obs = next_obs
        env_ids = np.concatenate(steps_env)
        order = np.argsort(env_ids, kind="stable")  # episode after episode, steps in order
        rewards = np.concatenate(steps_rewards)[order]
        lengths = np.bincount(env_ids, minlength=num_envs)
        return Episodes(obs=np.concatenate(steps_obs)[order],
                        actions=np.concatenate(steps_actions)[order],
                        rewards=np.split(rewards, np.cumsum(lengths)[:-1]))

    def loop(self, stop: StopSignals) -> None:
        s, hparams, timer = self.state, self.hparams, self.timer
        session_start, session_first_step = time.perf_counter(), s.step
        while s.updates < hparams.updates:
            with timer.phase("play"):
                episodes = self.play_episodes()
            advantages = np.concatenate(
                discount_and_normalize_rewards(episodes.rewards, hparams.gamma))
            with timer.phase("train_step"):
                loss = self.agent.update(episodes.obs, episodes.actions, advantages)
            s.last = {"loss": loss}
            self.check_finite(s.last)
            s.updates += 1
            for rewards in episodes.rewards:
                s.step += len(rewards)
                self.write_episode(float(rewards.sum()), len(rewards))
            self.evaluate_if_due()
            rate = (s.step - session_first_step) / (time.perf_counter() - session_start)
            self.show_progress(s.updates, rate, final=s.updates == hparams.updates)
            self.after_iteration(stop)
