"""The DQN training loop: act, store, sample, update, sync, evaluate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from pixel_dqn.agents.dqn import DQNAgent
from pixel_dqn.augmentation import random_shift
from pixel_dqn.config import Config, DQNConfig, PixelEnvConfig
from pixel_dqn.envs.pixels import FRAMES_METADATA
from pixel_dqn.episodes import EpisodeTally
from pixel_dqn.networks import build_network
from pixel_dqn.replay import Batch, ReplayBuffer
from pixel_dqn.run import Run
from pixel_dqn.run_state import LoopState
from pixel_dqn.schedules import LinearSchedule
from pixel_dqn.stop_signals import StopSignals
from pixel_dqn.trainers.base import Trainer


@dataclass
class DQNLoopState(LoopState):
    """The DQN loop's own carry-over: the envs' current observations and episode tallies."""

    obs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    episodes_now: EpisodeTally = field(default_factory=lambda: EpisodeTally.start(0))
    since_train: int = 0
    since_sync: int = 0


class DQNTrainer(Trainer):
    """DQN on a vector env with a replay buffer and a target network."""

    hparams: DQNConfig

    def __init__(self, cfg: Config, run: Run) -> None:
        super().__init__(cfg, run)
        hparams, envs = self.hparams, self.envs
        obs_space, action_space = envs.single_observation_space, envs.single_action_space
        total_gradient_steps = (max(cfg.total_steps - hparams.learning_starts, 0)
                                // hparams.train_freq * hparams.gradient_steps)
        self.agent = DQNAgent(
            partial(build_network, cfg.model, obs_space.shape, int(action_space.n)),
            int(action_space.n), hparams, total_gradient_steps)
        self.buffer = ReplayBuffer(
            hparams.buffer_size, obs_space.shape, obs_space.dtype,
            np.random.default_rng(run.seeds.replay), num_envs=envs.num_envs,
            # pixel observations are frame stacks: the replay stores each frame once
            history=envs.metadata.get(FRAMES_METADATA),
            n_step=hparams.n_step, gamma=hparams.gamma, prioritized=hparams.prioritized,
            alpha=hparams.priority_alpha, priority_eps=hparams.priority_eps,
        )
        self.augment_rng = np.random.default_rng(run.seeds.augment)
        # the 4-float state has no image to shift: the same trainer config serves both inputs
        self.augment_pad = hparams.augment_pad if isinstance(cfg.env, PixelEnvConfig) else 0

    def progress_total(self) -> int:
        return self.cfg.total_steps

    def start(self) -> None:
        num_envs = self.envs.num_envs
        obs, _ = self.envs.reset(seed=[self.seeds.env + i for i in range(num_envs)])
        self.buffer.start_episodes(np.arange(num_envs), obs)
        self.state = DQNLoopState(
            next_eval=self.cfg.eval.every_steps, next_checkpoint=self.cfg.checkpoint.every_steps,
            last={"loss": None, "mean_q": None}, obs=obs,
            episodes_now=EpisodeTally.start(num_envs))

    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        return self.agent.greedy_actions(obs)

    def network(self):
        return self.agent.evaluation_network

    def also_graded(self) -> dict:
        # with a weight average, the online network it averages is graded beside it
        if self.agent.averaged is None:
            return {}
        return {"online_network": self.agent.online_greedy_actions}

    def checkpoint_state(self) -> tuple[dict[str, np.ndarray], dict]:
        replay_arrays, replay_info = self.buffer.state_dict()
        arrays = {**{f"agent/{k}": v for k, v in self.agent.state_dict().items()},
                  **{f"replay/{k}": v for k, v in replay_arrays.items()}}
        return arrays, {"replay": replay_info, "augment_rng": self.augment_rng.bit_generator.state}

    def load_checkpoint_state(self, arrays: dict[str, np.ndarray], extra: dict) -> None:
        self.agent.load_state_dict({k.removeprefix("agent/"): v for k, v in arrays.items()
                                    if k.startswith("agent/")})
        self.buffer.load_state_dict({k.removeprefix("replay/"): v for k, v in arrays.items()
                                     if k.startswith("replay/")}, extra["replay"])
        self.augment_rng.bit_generator.state = extra["augment_rng"]

    def timing_extras(self) -> dict:
        return {"replay": {"capacity": self.buffer.capacity, "bytes": self.buffer.nbytes,
                           "bytes_per_step": self.buffer.bytes_per_step}}

    def augmented(self, batches: Batch) -> Batch:
        """DrQ's random shift, drawn independently for the observations and the next ones."""
        obs_ndim = len(self.envs.single_observation_space.shape)
        pad, rng = self.augment_pad, self.augment_rng
        return batches._replace(obs=random_shift(batches.obs, pad, rng, obs_ndim),
                                next_obs=random_shift(batches.next_obs, pad, rng, obs_ndim))

    def loop(self, stop: StopSignals) -> None:
        cfg, hparams, s = self.cfg, self.hparams, self.state
        agent, buffer, timer = self.agent, self.buffer, self.timer
        num_envs = self.envs.num_envs
        epsilon_at = LinearSchedule(hparams.exploration_initial_eps,
                                    hparams.exploration_final_eps, hparams.exploration_steps)
        beta_at = LinearSchedule(hparams.priority_beta_initial, 1.0, cfg.total_steps)
        session_start, session_first_step = time.perf_counter(), s.step

        # a vector step adds up to num_envs env steps: stop before one could exceed the budget
        while s.step + num_envs <= cfg.total_steps:
            learning = s.step >= hparams.learning_starts
            epsilon = epsilon_at(s.step) if learning else 1.0
            with timer.phase("act"):
                actions = agent.act(s.obs, epsilon, self.rng)
            with timer.phase("env"):
                next_obs, rewards, terminated, truncated, _ = self.envs.step(actions)
            # a sub-env that just reset carries no transition (see EpisodeTally)
            resetting = s.episodes_now.resetting
            live = ~resetting
            # Store `terminated`, not `terminated | truncated`: a time-limit truncation
            # bootstraps (the reset slot that follows it is what ends its n-step sums).
            with timer.phase("replay_add"):
                buffer.add(np.flatnonzero(live), actions[live], rewards[live], next_obs[live],
                           terminated[live])
                buffer.start_episodes(np.flatnonzero(resetting), next_obs[resetting])
            new_steps = int(live.sum())
            s.step += new_steps
            # without the start-up burst the replay ratio counts from learning_starts, not 0
            s.since_train += new_steps if hparams.learning_starts_burst else min(
                new_steps, max(s.step - hparams.learning_starts, 0))
            s.since_sync += new_steps
            for _, episode_return, length in s.episodes_now.step(rewards, terminated, truncated):
                self.write_episode(episode_return, length, epsilon=epsilon)
            s.obs = next_obs  # CRUCIAL: the next action is chosen from the new observation

            if s.step >= hparams.learning_starts and s.since_train >= hparams.train_freq:
                phases, s.since_train = divmod(s.since_train, hparams.train_freq)
                with timer.phase("replay_sample"):
                    batches = buffer.sample(hparams.batch_size, phases * hparams.gradient_steps,
                                            beta=beta_at(s.step))
                    if self.augment_pad:
                        batches = self.augmented(batches)
                # the target moves only at the end of a training phase (never in between)
                sync = s.since_sync >= hparams.target_update_interval
                s.since_sync = 0 if sync else s.since_sync
                with timer.phase("train_step"):
                    s.last, td_errors = agent.update(batches, sync_target=sync)
                self.check_finite({**s.last, "weights_sum": agent.weights_sum()}, td_errors)
                with timer.phase("replay_sample"):
                    buffer.update_priorities(batches.indices, td_errors)
            self.evaluate_if_due()
            rate = (s.step - session_first_step) / (time.perf_counter() - session_start)
            self.show_progress(s.step, rate, final=s.step + num_envs > cfg.total_steps,
                               eps=f"{epsilon:.2f}")
            self.after_iteration(stop)
