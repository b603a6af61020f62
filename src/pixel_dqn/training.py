"""``train(cfg, run_dir)``: seed, build, run the configured trainer's loop, evaluate, export.

A run is kill-safe: it checkpoints every ``checkpoint.every_steps`` env steps, at the end and
when it receives SIGTERM or SIGINT, and the same command in the same run directory resumes from
the newest complete checkpoint, continuing exactly as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
from pathlib import Path

import keras
import tensorflow as tf
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pixel_dqn.checkpoint import Checkpoint, CheckpointStore
from pixel_dqn.config import DQNConfig, ReinforceConfig, flatten_config
from pixel_dqn.envs.display import VirtualDisplay
from pixel_dqn.evaluation import EvalResult
from pixel_dqn.metrics import MetricsWriter
from pixel_dqn.run import NonFiniteError, Run, RunSeeds, RunWriteError, TrainingInterrupted
from pixel_dqn.run_directory import (
    CHECKPOINT_DIR,
    EVAL_FILE,
    MODEL_FILE,
    RUN_CONFIG_FILE,
    TIMING_FILE,
)
from pixel_dqn.runtime import configure_threads
from pixel_dqn.stop_signals import StopSignals
from pixel_dqn.trainers.dqn import DQNRun
from pixel_dqn.trainers.reinforce import ReinforceRun
from pixel_dqn.validation import ConfigError, validate

__all__ = ["CHECKPOINT_DIR", "NonFiniteError", "RunWriteError", "TrainingInterrupted", "build_run",
           "train"]

# the run class of each trainer config schema (a new trainer registers here)
TRAINERS: dict[type, type[Run]] = {DQNConfig: DQNRun, ReinforceConfig: ReinforceRun}
# a write to the run directory failed for want of room: say what survived, in one line
RUN_DIR_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
# keys that do not change what a run computes: a resumed run may change them
RESUME_MAY_CHANGE = ("progress_interval_s", "display", "threads", "checkpoint")

log = logging.getLogger(__name__)


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

    # a resumed run's metrics.csv is cut back to where its checkpoint left it
    writer = MetricsWriter(run_dir, tensorboard=cfg.tensorboard,
                           resume_from=None if checkpoint is None else checkpoint.state["metrics"])
    try:
        run = build_run(cfg, seeds, store, writer)
    except BaseException:
        writer.close()
        raise
    if checkpoint is None:
        run.start()
    else:
        run.restore(checkpoint)
        print(f"resuming from {checkpoint.path} (env step {checkpoint.step})", flush=True)
    try:
        run.begin_session()
        with StopSignals() as stop:
            run.loop(stop)
        final = _finish(cfg, run, run_dir)
    except OSError as error:
        if error.errno not in RUN_DIR_FULL:
            raise
        raise RunWriteError(run_dir, run.state.step, error, store.paths()) from error
    finally:
        run.progress.close()
        with contextlib.suppress(OSError):  # rows are flushed as written: nothing is lost
            run.writer.close()
        run.envs.close()
    return final


def _finish(cfg: DictConfig, run: Run, run_dir: Path) -> EvalResult:
    """The last checkpoint, the final evaluation (of the kept network with ``eval.keep_best``),
    then model.keras, eval.json and timing.json."""
    timing = run.timing()
    if cfg.checkpoint.enabled and run.saved_step != run.state.step:
        run.save_checkpoint()  # the end of training (unless resumed from it)
    final = run.evaluate(cfg.eval.final_episodes, index=-1)
    last_network = None
    if cfg.eval.keep_best and run.state.best is not None:
        last_network = final
        run.network().set_weights(run.state.best[2])
        final = run.evaluate(cfg.eval.final_episodes, index=-1)
    run.network().save(run_dir / MODEL_FILE)
    record = final.to_dict()
    if last_network is not None:
        record["last_network"] = last_network.summary()
        best_eval, best_step, _ = run.state.best
        record["kept_from"] = {"env_step": best_step, "periodic_eval": best_eval}
        print(f"the last network's final eval: {_format_eval(last_network.summary())}; "
              f"below: the network kept at env step {best_step} (periodic eval {best_eval:.1f})",
              flush=True)
    (run_dir / EVAL_FILE).write_text(json.dumps(record, indent=2) + "\n")
    (run_dir / TIMING_FILE).write_text(json.dumps(timing, indent=2) + "\n")
    print(f"final greedy eval over {cfg.eval.final_episodes} episodes: "
          f"{_format_eval(final.summary())} -> {run_dir}", flush=True)
    return final


def build_run(cfg: DictConfig, seeds: RunSeeds, store: CheckpointStore,
              writer: MetricsWriter) -> Run:
    """The configured trainer's run, with its envs, networks and optimizer built."""
    hparams = instantiate(cfg.trainer)
    run_class = TRAINERS[type(hparams)]
    make_envs = run_class.env_factory(instantiate(cfg.env), hparams)
    return run_class(cfg, hparams, make_envs(), make_envs, instantiate(cfg.model), seeds, store,
                     writer)


def _check_resumable(cfg: DictConfig, checkpoint: Checkpoint) -> None:
    """A run directory resumes only the run it holds: the same config, up to harmless keys."""
    saved = flatten_config(checkpoint.state["config"])
    current = flatten_config(OmegaConf.to_container(cfg, resolve=True))
    for key in sorted(saved.keys() | current.keys()):
        if key.split(".")[0] in RESUME_MAY_CHANGE or saved.get(key) == current.get(key):
            continue
        raise ConfigError(
            f"{key}={current.get(key)!r} differs from the checkpointed run's "
            f"{saved.get(key)!r} in {checkpoint.path.parent.parent}: rerun with the same "
            f"overrides to resume, or choose a new hydra.run.dir"
        )



def _format_eval(summary: dict) -> str:
    endings = ", ".join(f"{count} {ending.replace('_', ' ')}"
                        for ending, count in summary["ended_by"].items() if count)
    return (f"mean {summary['mean']:.1f} +- {summary['std']:.1f} "
            f"(min {summary['min']:.0f}, max {summary['max']:.0f})"
            + (f"; ended by: {endings}" if endings else ""))
