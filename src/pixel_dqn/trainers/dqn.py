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
    vector_steps: int = 0  # steps of the vector env (a seed stack's seeds train on its ticks)


class DQNTrainer(Trainer):
    """DQN on a vector env with a replay buffer and a target network."""

    hparams: DQNConfig

    def __init__(self, cfg: Config, run: Run, agent: DQNAgent | None = None) -> None:
        """``agent``: the agent to train (a seed stack passes one seed's view of its agent);
        by default a ``DQNAgent`` of the config's network."""
        super().__init__(cfg, run)
        hparams, envs = self.hparams, self.envs
        obs_space = envs.single_observation_space
        self.agent = agent or DQNAgent(
            partial(build_network, cfg.model, obs_space.shape, int(envs.single_action_space.n)),
            int(envs.single_action_space.n), hparams, total_gradient_steps(cfg))
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
        self.epsilon_at = LinearSchedule(hparams.exploration_initial_eps,
                                         hparams.exploration_final_eps, hparams.exploration_steps)
        self.beta_at = LinearSchedule(hparams.priority_beta_initial, 1.0, cfg.total_steps)

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
        s, agent, timer = self.state, self.agent, self.timer
        session_start, session_first_step = time.perf_counter(), s.step
        while self.budget_left():
            epsilon = self.epsilon()
            with timer.phase("act"):
                actions = agent.act(s.obs, epsilon, self.rng)
            self.play(actions, epsilon)
            phases = self.phases_due()
            if phases:
                batches, sync = self.sample_phase(phases)
                with timer.phase("train_step"):
                    metrics, td_errors = agent.update(batches, sync_target=sync)
                self.learned(batches, metrics, agent.weights_sum(), td_errors)
            self.evaluate_if_due()
            rate = (s.step - session_first_step) / (time.perf_counter() - session_start)
            self.show_progress(s.step, rate, final=not self.budget_left(),
                               eps=f"{epsilon:.2f}")
            self.after_iteration(stop)

    # -- the steps of the loop (a seed stack runs them for each of its seeds) -------------------
    def budget_left(self) -> bool:
        """Whether another vector step fits the budget (it adds up to num_envs env steps)."""
        return self.state.step + self.envs.num_envs <= self.cfg.total_steps

    def epsilon(self) -> float:
        """Exploration now: 1 before learning starts, then the linear schedule."""
        step = self.state.step
        return self.epsilon_at(step) if step >= self.hparams.learning_starts else 1.0

    def play(self, actions: np.ndarray, epsilon: float) -> None:
        """One vector step with ``actions``: store the transitions, count steps and episodes."""
        s, hparams, buffer = self.state, self.hparams, self.buffer
        with self.timer.phase("env"):
            next_obs, rewards, terminated, truncated, _ = self.envs.step(actions)
        # a sub-env that just reset carries no transition (see EpisodeTally)
        resetting = s.episodes_now.resetting
        live = ~resetting
        # Store `terminated`, not `terminated | truncated`: a time-limit truncation
        # bootstraps (the reset slot that follows it is what ends its n-step sums).
        with self.timer.phase("replay_add"):
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
        s.vector_steps += 1

    def phases_due(self) -> int:
        """Training phases due now (usually 0 or 1), taken off the count."""
        s, hparams = self.state, self.hparams
        if s.step < hparams.learning_starts or s.since_train < hparams.train_freq:
            return 0
        phases, s.since_train = divmod(s.since_train, hparams.train_freq)
        return phases

    def sample_phase(self, phases: int) -> tuple[Batch, bool]:
        """The batches of ``phases`` training phases (augmented) and whether the target moves
        after them (only at the end of a phase, never in between)."""
        s, hparams = self.state, self.hparams
        with self.timer.phase("replay_sample"):
            batches = self.buffer.sample(hparams.batch_size, phases * hparams.gradient_steps,
                                         beta=self.beta_at(s.step))
            if self.augment_pad:
                batches = self.augmented(batches)
        sync = s.since_sync >= hparams.target_update_interval
        s.since_sync = 0 if sync else s.since_sync
        return batches, sync

    def learned(self, batches: Batch, metrics: dict, weights_sum: float,
                td_errors: np.ndarray) -> None:
        """After the update: keep its metrics, stop if anything went non-finite, and set the
        sampled transitions' priorities from their TD errors."""
        self.state.last = metrics
        self.check_finite({**metrics, "weights_sum": weights_sum}, td_errors)
        with self.timer.phase("replay_sample"):
            self.buffer.update_priorities(batches.indices, td_errors)


def total_gradient_steps(cfg: Config) -> int:
    """The gradient steps a run of ``cfg`` takes (the learning-rate decay's length)."""
    hparams = cfg.trainer
    return (max(cfg.total_steps - hparams.learning_starts, 0) // hparams.train_freq
            * hparams.gradient_steps)
