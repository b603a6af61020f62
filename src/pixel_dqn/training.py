"""``train(cfg, run_dir)``: seed, build, run the DQN loop, evaluate, log, export.

A run is kill-safe: it checkpoints every ``checkpoint.every_steps`` env steps, at the end and
when it receives SIGTERM or SIGINT, and the same command in the same run directory resumes from
the newest complete checkpoint, continuing exactly as if it had never stopped.
"""

from __future__ import annotations

import json
import logging
import math
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pixel_dqn.agents.dqn import DQNAgent
from pixel_dqn.checkpoint import Checkpoint, CheckpointStore
from pixel_dqn.config import ConfigError, DQNConfig, PixelEnvConfig, validate
from pixel_dqn.envs.display import VirtualDisplay
from pixel_dqn.envs.snapshot import restore_envs, snapshot_envs
from pixel_dqn.evaluation import EVAL_FILE, MODEL_FILE, RUN_CONFIG_FILE, EvalResult, run_episodes
from pixel_dqn.metrics import MetricsWriter, Progress
from pixel_dqn.replay import ReplayBuffer
from pixel_dqn.runtime import configure_threads
from pixel_dqn.schedules import LinearSchedule
from pixel_dqn.timing import PhaseTimer

TIMING_FILE = "timing.json"
CHECKPOINT_DIR = "checkpoints"
# keys that do not change what a run computes: a resumed run may change them
RESUME_MAY_CHANGE = ("progress_interval_s", "display", "threads", "checkpoint")

log = logging.getLogger(__name__)


class TrainingInterrupted(Exception):
    """SIGTERM or SIGINT stopped training after a checkpoint was written."""

    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        super().__init__(f"{signal.Signals(signum).name} at env step {step}: checkpoint "
                         f"{checkpoint} written; rerun the same command to resume")
        self.signum = signum


class NonFiniteError(ArithmeticError):
    """The loss or the Q-values stopped being finite; training stops, no checkpoint is written."""


@dataclass(frozen=True)
class RunSeeds:
    """Independent seeds for every random stream, all derived from the one config seed."""

    tf: int
    env: int
    replay: int
    exploration: int
    eval: int

    @classmethod
    def from_seed(cls, seed: int) -> RunSeeds:
        states = np.random.SeedSequence(seed).generate_state(5).tolist()
        return cls(*(int(s) for s in states))


def train(
    cfg: DictConfig, run_dir: Path, display: VirtualDisplay | None = None
) -> EvalResult:
    """Train the configured agent, writing everything to ``run_dir``; return the final eval.

    If ``run_dir`` holds a checkpoint of the same config, training resumes from the newest
    complete one. With ``display.virtual`` the given (or a new) ``VirtualDisplay`` is started
    first.
    """
    validate(cfg)
    store = CheckpointStore(run_dir / CHECKPOINT_DIR, cfg.checkpoint.keep)
    checkpoint = store.load_latest() if cfg.checkpoint.enabled else None
    if checkpoint is not None:
        _check_resumable(cfg, checkpoint)
    if cfg.display.virtual:
        (display or VirtualDisplay()).start()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_CONFIG_FILE).write_text(OmegaConf.to_yaml(cfg, resolve=True))
    configure_threads(cfg.threads.intra_op, cfg.threads.inter_op)
    seeds = RunSeeds.from_seed(cfg.seed)
    keras.utils.set_random_seed(seeds.tf % 2**32)  # python, numpy global, TF initialisers
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()

    make_envs = instantiate(cfg.env)
    build_model = instantiate(cfg.model)
    hparams: DQNConfig = instantiate(cfg.trainer)
    envs: gym.vector.VectorEnv = make_envs()
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    build_q_network = partial(build_model, obs_space.shape, int(action_space.n))
    total_gradient_steps = (
        max(cfg.total_steps - hparams.learning_starts, 0)
        // hparams.train_freq * hparams.gradient_steps
    )
    agent = DQNAgent(build_q_network, int(action_space.n), hparams, total_gradient_steps)
    buffer = ReplayBuffer(
        hparams.buffer_size, obs_space.shape, obs_space.dtype, np.random.default_rng(seeds.replay),
        num_envs=envs.num_envs,
        # pixel observations are frame stacks: the replay stores each frame once
        history=obs_space.shape[0] if cfg.env._target_ == PixelEnvConfig._target_ else None,
        n_step=hparams.n_step, gamma=hparams.gamma, prioritized=hparams.prioritized,
        alpha=hparams.priority_alpha, priority_eps=hparams.priority_eps,
    )

    def evaluate(episodes: int, index: int) -> EvalResult:
        return run_episodes(
            agent.greedy_actions,
            lambda n: make_envs(num_envs=n),
            episodes,
            seed=seeds.eval + index,
        )

    run = _Run(cfg, hparams, envs, agent, buffer, evaluate, store,
               np.random.default_rng(seeds.exploration))
    if checkpoint is None:
        obs, _ = envs.reset(seed=[seeds.env + i for i in range(envs.num_envs)])
        buffer.start_episodes(np.arange(envs.num_envs), obs)
        run.state = LoopState.first(obs, cfg.eval.every_steps, cfg.checkpoint.every_steps)
        metrics_position = None
    else:
        metrics_position = run.restore(checkpoint)
        print(f"resuming from {checkpoint.path} (env step {checkpoint.step})", flush=True)
    run.writer = MetricsWriter(run_dir, tensorboard=cfg.tensorboard, resume_from=metrics_position)
    run.progress = Progress(cfg.total_steps, cfg.progress_interval_s)
    try:
        with _StopSignals() as stop:
            timing = run.loop(stop)
        if cfg.checkpoint.enabled and run.saved_step != run.state.step:
            run.save_checkpoint()  # the end of training (unless resumed from it)
        timing["replay"] = {"capacity": buffer.capacity, "bytes": buffer.nbytes,
                            "bytes_per_step": buffer.bytes_per_step}
        final = evaluate(cfg.eval.final_episodes, index=-1)
    finally:
        run.progress.close()
        run.writer.close()
        run.envs.close()
    agent.online.save(run_dir / MODEL_FILE)
    (run_dir / EVAL_FILE).write_text(json.dumps(final.to_dict(), indent=2) + "\n")
    (run_dir / TIMING_FILE).write_text(json.dumps(timing, indent=2) + "\n")
    print(f"final greedy eval over {cfg.eval.final_episodes} episodes: "
          f"{_format_eval(final.summary())} -> {run_dir}", flush=True)
    return final


@dataclass
class LoopState:
    """What the training loop carries from one vector step to the next (all checkpointed)."""

    obs: np.ndarray
    episode_return: np.ndarray
    episode_length: np.ndarray
    autoreset: np.ndarray
    next_eval: int
    next_checkpoint: int | None
    step: int = 0
    episodes: int = 0
    evals: int = 0
    since_train: int = 0
    since_sync: int = 0
    seconds: float = 0.0  # wall-clock seconds of the earlier sessions of a resumed run
    recent_returns: deque = field(default_factory=lambda: deque(maxlen=20))
    last: dict = field(default_factory=lambda: {"loss": None, "mean_q": None})
    last_eval: str = "-"
    phase_seconds: dict = field(default_factory=dict)

    @classmethod
    def first(cls, obs: np.ndarray, eval_every: int, checkpoint_every: int | None) -> LoopState:
        num_envs = len(obs)
        return cls(obs=obs, episode_return=np.zeros(num_envs),
                   episode_length=np.zeros(num_envs, dtype=np.int64),
                   autoreset=np.zeros(num_envs, dtype=bool), next_eval=eval_every,
                   next_checkpoint=checkpoint_every)


@dataclass
class _Run:
    """The objects of one training run and the loop over them."""

    cfg: DictConfig
    hparams: DQNConfig
    envs: gym.vector.VectorEnv
    agent: DQNAgent
    buffer: ReplayBuffer
    evaluate: Callable[[int, int], EvalResult]
    store: CheckpointStore
    rng: np.random.Generator  # exploration
    state: LoopState = None  # type: ignore[assignment]
    writer: MetricsWriter = None  # type: ignore[assignment]
    progress: Progress = None  # type: ignore[assignment]
    timer: PhaseTimer = field(default_factory=PhaseTimer)
    saved_step: int | None = None  # the env step of the newest checkpoint written or loaded

    def loop(self, stop: _StopSignals) -> dict:
        cfg, hparams, s = self.cfg, self.hparams, self.state
        envs, agent, buffer, timer, writer = (self.envs, self.agent, self.buffer, self.timer,
                                              self.writer)
        num_envs = envs.num_envs
        epsilon_at = LinearSchedule(hparams.exploration_initial_eps,
                                    hparams.exploration_final_eps, hparams.exploration_steps)
        beta_at = LinearSchedule(hparams.priority_beta_initial, 1.0, cfg.total_steps)
        session_start, session_first_step = time.perf_counter(), s.step
        start = session_start - s.seconds

        # a vector step adds up to num_envs env steps: stop before one could exceed the budget
        while s.step + num_envs <= cfg.total_steps:
            learning = s.step >= hparams.learning_starts
            epsilon = epsilon_at(s.step) if learning else 1.0
            with timer.phase("act"):
                actions = agent.act(s.obs, epsilon, self.rng)
            with timer.phase("env"):
                next_obs, rewards, terminated, truncated, _ = envs.step(actions)
            # CRUCIAL: in gymnasium 1.x a finished sub-env is reset by the NEXT step call; that
            # step carries no transition and must not be stored or counted.
            live = ~s.autoreset
            # Store `terminated`, not `terminated | truncated`: a time-limit truncation
            # bootstraps (the reset slot that follows it is what ends its n-step sums).
            with timer.phase("replay_add"):
                buffer.add(np.flatnonzero(live), actions[live], rewards[live], next_obs[live],
                           terminated[live])
                buffer.start_episodes(np.flatnonzero(s.autoreset), next_obs[s.autoreset])
            new_steps = int(live.sum())
            s.step += new_steps
            s.since_train += new_steps
            s.since_sync += new_steps
            s.episode_return[live] += rewards[live]
            s.episode_length[live] += 1
            elapsed = time.perf_counter() - start
            for i in np.flatnonzero(live & (terminated | truncated)):
                s.episodes += 1
                s.recent_returns.append(float(s.episode_return[i]))
                writer.write({
                    "kind": "train", "env_step": s.step, "episode": s.episodes,
                    "return": float(s.episode_return[i]), "length": int(s.episode_length[i]),
                    "epsilon": epsilon, **s.last, "steps_per_s": s.step / elapsed,
                    "wall_time_s": elapsed,
                })
                s.episode_return[i] = 0.0
                s.episode_length[i] = 0
            s.autoreset = terminated | truncated
            s.obs = next_obs  # CRUCIAL: the next action is chosen from the new observation

            if s.step >= hparams.learning_starts and s.since_train >= hparams.train_freq:
                phases, s.since_train = divmod(s.since_train, hparams.train_freq)
                with timer.phase("replay_sample"):
                    batches = buffer.sample(hparams.batch_size, phases * hparams.gradient_steps,
                                            beta=beta_at(s.step))
                # the target moves only at the end of a training phase (never in between)
                sync = s.since_sync >= hparams.target_update_interval
                s.since_sync = 0 if sync else s.since_sync
                with timer.phase("train_step"):
                    s.last, td_errors = agent.update(batches, sync_target=sync)
                self._check_finite(s.last, td_errors)
                with timer.phase("replay_sample"):
                    buffer.update_priorities(batches.indices, td_errors)
            if s.step >= s.next_eval:
                s.next_eval += cfg.eval.every_steps
                with timer.phase("evaluation"):
                    result = self.evaluate(cfg.eval.episodes, s.evals)
                s.evals += 1
                elapsed = time.perf_counter() - start
                summary = result.summary()
                writer.write({
                    "kind": "eval", "env_step": s.step, "episode": s.episodes,
                    "return": summary["mean"], "length": summary["mean_length"],
                    "epsilon": 0.0, **s.last, "steps_per_s": s.step / elapsed,
                    "wall_time_s": elapsed, "return_std": summary["std"],
                    "return_min": summary["min"], "return_max": summary["max"],
                })
                s.last_eval = f"{summary['mean']:.1f}"
            if self.progress.due() or s.step + num_envs > cfg.total_steps:
                session_rate = (s.step - session_first_step) / (time.perf_counter() - session_start)
                self.progress.show(s.step, {
                    "steps/s": f"{session_rate:.0f}",
                    "eps": f"{epsilon:.2f}",
                    "return": f"{np.mean(s.recent_returns):.1f}" if s.recent_returns else "-",
                    "eval": s.last_eval,
                })
            checkpoint_due = s.next_checkpoint is not None and s.step >= s.next_checkpoint
            if cfg.checkpoint.enabled and (checkpoint_due or stop.signum is not None):
                while s.next_checkpoint is not None and s.next_checkpoint <= s.step:
                    s.next_checkpoint += cfg.checkpoint.every_steps
                with timer.phase("checkpoint"):
                    path = self.save_checkpoint(time.perf_counter() - start)
                if stop.signum is not None:
                    raise TrainingInterrupted(stop.signum, s.step, path)
        total_seconds = time.perf_counter() - start
        s.seconds = total_seconds
        return {"env_steps": s.step, "seconds": total_seconds,
                "steps_per_s": s.step / total_seconds,
                "phases": timer.summary(s.step, total_seconds)}

    def _check_finite(self, metrics: dict[str, float], td_errors: np.ndarray) -> None:
        if all(map(math.isfinite, metrics.values())) and np.isfinite(td_errors).all():
            return
        kept = self.store.paths()
        where = f"the last good checkpoint is {kept[-1]}" if kept else "no checkpoint was written"
        raise NonFiniteError(
            f"non-finite loss or Q-values at env step {self.state.step} (loss "
            f"{metrics['loss']}, mean Q {metrics['mean_q']}); training stopped, {where}; "
            f"try a lower trainer.learning_rate or trainer.max_grad_norm"
        )

    def save_checkpoint(self, seconds: float | None = None) -> Path:
        """Checkpoint everything the loop needs to continue exactly from this step."""
        s = self.state
        if seconds is not None:
            s.seconds = seconds
        s.phase_seconds = dict(self.timer.seconds)
        replay_arrays, replay_info = self.buffer.state_dict()
        arrays = {**{f"agent/{k}": v for k, v in self.agent.state_dict().items()},
                  **{f"replay/{k}": v for k, v in replay_arrays.items()}}
        state = {
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "loop": s,
            "exploration_rng": self.rng.bit_generator.state,
            # not drawn from after set-up today; saved so that a future use stays resumable
            "global_rngs": (random.getstate(), np.random.get_state()),
            "replay": replay_info,
            "envs": snapshot_envs(self.envs),
            "metrics": self.writer.position(s.step),
        }
        path = self.store.save(s.step, arrays, state)
        self.saved_step = s.step
        return path

    def restore(self, checkpoint: Checkpoint) -> dict:
        """Load a checkpoint into the freshly built objects; return the metrics position."""
        state = checkpoint.state
        self.agent.load_state_dict({k.removeprefix("agent/"): v
                                    for k, v in checkpoint.arrays.items()
                                    if k.startswith("agent/")})
        self.buffer.load_state_dict({k.removeprefix("replay/"): v
                                     for k, v in checkpoint.arrays.items()
                                     if k.startswith("replay/")}, state["replay"])
        self.rng.bit_generator.state = state["exploration_rng"]
        random.setstate(state["global_rngs"][0])
        np.random.set_state(state["global_rngs"][1])
        self.envs.close()
        self.envs = restore_envs(state["envs"])
        self.state = state["loop"]
        self.saved_step = checkpoint.step
        self.timer.seconds.update(self.state.phase_seconds)
        return state["metrics"]


def _check_resumable(cfg: DictConfig, checkpoint: Checkpoint) -> None:
    """A run directory resumes only the run it holds: the same config, up to harmless keys."""
    saved = _flatten(checkpoint.state["config"])
    current = _flatten(OmegaConf.to_container(cfg, resolve=True))
    for key in sorted(saved.keys() | current.keys()):
        if key.split(".")[0] in RESUME_MAY_CHANGE or saved.get(key) == current.get(key):
            continue
        raise ConfigError(
            f"{key}={current.get(key)!r} differs from the checkpointed run's "
            f"{saved.get(key)!r} in {checkpoint.path.parent.parent}: rerun with the same "
            f"overrides to resume, or choose a new hydra.run.dir"
        )


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class _StopSignals:
    """Turns SIGTERM and SIGINT into a request to checkpoint and stop at the end of the step.

    A second signal while one is pending stops at once (KeyboardInterrupt). Outside the main
    thread (where handlers cannot be installed) signals keep their default behaviour.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: checkpointing at the end of this step "
              f"(send it again to stop at once)", flush=True)


def _format_eval(summary: dict) -> str:
    return (f"mean {summary['mean']:.1f} +- {summary['std']:.1f} "
            f"(min {summary['min']:.0f}, max {summary['max']:.0f})")
