"""``train(cfg, run_dir)``: seed, build, run the DQN loop, evaluate, log, export."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gymnasium as gym
import keras
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pixel_dqn.agents.dqn import DQNAgent
from pixel_dqn.config import DQNConfig, PixelEnvConfig, validate
from pixel_dqn.envs.display import VirtualDisplay
from pixel_dqn.evaluation import EVAL_FILE, MODEL_FILE, RUN_CONFIG_FILE, EvalResult, run_episodes
from pixel_dqn.metrics import MetricsWriter, Progress
from pixel_dqn.replay import ReplayBuffer
from pixel_dqn.runtime import configure_threads
from pixel_dqn.schedules import LinearSchedule
from pixel_dqn.timing import PhaseTimer

TIMING_FILE = "timing.json"


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

    With ``display.virtual`` the given (or a new) ``VirtualDisplay`` is started first.
    """
    validate(cfg)
    if cfg.display.virtual:
        (display or VirtualDisplay()).start()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_CONFIG_FILE).write_text(OmegaConf.to_yaml(cfg, resolve=True))
    configure_threads(cfg.threads.intra_op, cfg.threads.inter_op)
    seeds = RunSeeds.from_seed(cfg.seed)
    keras.utils.set_random_seed(seeds.tf % 2**32)  # python, numpy global, TF initialisers

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

    writer = MetricsWriter(run_dir, tensorboard=cfg.tensorboard)
    progress = Progress(cfg.total_steps, cfg.progress_interval_s)
    try:
        timing = _run_loop(cfg, hparams, envs, agent, buffer, seeds, evaluate, writer, progress)
        timing["replay"] = {"capacity": buffer.capacity, "bytes": buffer.nbytes,
                            "bytes_per_step": buffer.bytes_per_step}
        final = evaluate(cfg.eval.final_episodes, index=-1)
    finally:
        progress.close()
        writer.close()
        envs.close()
    agent.online.save(run_dir / MODEL_FILE)
    (run_dir / EVAL_FILE).write_text(json.dumps(final.to_dict(), indent=2) + "\n")
    (run_dir / TIMING_FILE).write_text(json.dumps(timing, indent=2) + "\n")
    print(f"final greedy eval over {cfg.eval.final_episodes} episodes: "
          f"{_format_eval(final.summary())} -> {run_dir}", flush=True)
    return final


def _run_loop(cfg, hparams, envs, agent, buffer, seeds, evaluate, writer, progress) -> dict:
    timer = PhaseTimer()
    num_envs = envs.num_envs
    rng = np.random.default_rng(seeds.exploration)
    epsilon_at = LinearSchedule(
        hparams.exploration_initial_eps, hparams.exploration_final_eps, hparams.exploration_steps
    )
    beta_at = LinearSchedule(hparams.priority_beta_initial, 1.0, cfg.total_steps)
    obs, _ = envs.reset(seed=[seeds.env + i for i in range(num_envs)])
    buffer.start_episodes(np.arange(num_envs), obs)
    episode_return = np.zeros(num_envs)
    episode_length = np.zeros(num_envs, dtype=np.int64)
    autoreset = np.zeros(num_envs, dtype=bool)
    recent_returns: deque[float] = deque(maxlen=20)
    last = {"loss": None, "mean_q": None}
    last_eval = "-"
    step = episodes = evals = 0
    since_train = since_sync = 0
    next_eval = cfg.eval.every_steps
    start = time.perf_counter()

    # a vector step adds up to num_envs env steps: stop before one could exceed the budget
    while step + num_envs <= cfg.total_steps:
        learning = step >= hparams.learning_starts
        epsilon = epsilon_at(step) if learning else 1.0
        with timer.phase("act"):
            actions = agent.act(obs, epsilon, rng)
        with timer.phase("env"):
            next_obs, rewards, terminated, truncated, _ = envs.step(actions)
        # CRUCIAL: in gymnasium 1.x a finished sub-env is reset by the NEXT step call; that step
        # carries no transition and must not be stored or counted.
        live = ~autoreset
        # Store `terminated`, not `terminated | truncated`: a time-limit truncation bootstraps
        # (the reset slot that follows it is what ends its n-step sums).
        with timer.phase("replay_add"):
            buffer.add(np.flatnonzero(live), actions[live], rewards[live], next_obs[live],
                       terminated[live])
            buffer.start_episodes(np.flatnonzero(autoreset), next_obs[autoreset])
        new_steps = int(live.sum())
        step += new_steps
        since_train += new_steps
        since_sync += new_steps
        episode_return[live] += rewards[live]
        episode_length[live] += 1
        elapsed = time.perf_counter() - start
        for i in np.flatnonzero(live & (terminated | truncated)):
            episodes += 1
            recent_returns.append(float(episode_return[i]))
            writer.write({
                "kind": "train", "env_step": step, "episode": episodes,
                "return": float(episode_return[i]), "length": int(episode_length[i]),
                "epsilon": epsilon, **last, "steps_per_s": step / elapsed, "wall_time_s": elapsed,
            })
            episode_return[i] = 0.0
            episode_length[i] = 0
        autoreset = terminated | truncated
        obs = next_obs  # CRUCIAL: the next action is chosen from the new observation

        if step >= hparams.learning_starts and since_train >= hparams.train_freq:
            phases, since_train = divmod(since_train, hparams.train_freq)
            with timer.phase("replay_sample"):
                batches = buffer.sample(hparams.batch_size, phases * hparams.gradient_steps,
                                        beta=beta_at(step))
            # the target moves only at the end of a training phase (it cannot drift between)
            sync = since_sync >= hparams.target_update_interval
            since_sync = 0 if sync else since_sync
            with timer.phase("train_step"):
                last, td_errors = agent.update(batches, sync_target=sync)
            with timer.phase("replay_sample"):
                buffer.update_priorities(batches.indices, td_errors)
        if step >= next_eval:
            next_eval += cfg.eval.every_steps
            with timer.phase("evaluation"):
                result = evaluate(cfg.eval.episodes, index=evals)
            evals += 1
            elapsed = time.perf_counter() - start
            summary = result.summary()
            writer.write({
                "kind": "eval", "env_step": step, "episode": episodes, "return": summary["mean"],
                "length": summary["mean_length"], "epsilon": 0.0, **last,
                "steps_per_s": step / elapsed, "wall_time_s": elapsed,
                "return_std": summary["std"], "return_min": summary["min"],
                "return_max": summary["max"],
            })
            last_eval = f"{summary['mean']:.1f}"
        if progress.due() or step + num_envs > cfg.total_steps:
            progress.show(step, {
                "steps/s": f"{step / (time.perf_counter() - start):.0f}",
                "eps": f"{epsilon:.2f}",
                "return": f"{np.mean(recent_returns):.1f}" if recent_returns else "-",
                "eval": last_eval,
            })
    total_seconds = time.perf_counter() - start
    return {"env_steps": step, "seconds": total_seconds, "steps_per_s": step / total_seconds,
            "phases": timer.summary(step, total_seconds)}


def _format_eval(summary: dict) -> str:
    return (f"mean {summary['mean']:.1f} +- {summary['std']:.1f} "
            f"(min {summary['min']:.0f}, max {summary['max']:.0f})")
