"""``train(cfg, run_dir)``: the wiring from a config to its trainer (seeds, threads, files).

A run is kill-safe: it checkpoints every ``checkpoint.every_steps`` env steps, at the end and
when it receives SIGTERM or SIGINT, and the same command in the same run directory resumes from
the newest complete checkpoint, continuing exactly as if it had never stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import tensorflow as tf
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pixel_dqn.checkpoint import Checkpoint, CheckpointStore
from pixel_dqn.config import DQNConfig, ReinforceConfig
from pixel_dqn.envs.display import VirtualDisplay
from pixel_dqn.evaluation import EvalResult
from pixel_dqn.flat_config import flatten_config
from pixel_dqn.metrics import MetricsWriter
from pixel_dqn.run_directory import CHECKPOINT_DIR, RUN_CONFIG_FILE
from pixel_dqn.run_state import NonFiniteError, RunSeeds, RunWriteError, TrainingInterrupted
from pixel_dqn.runtime import configure_threads
from pixel_dqn.trainer import Trainer
from pixel_dqn.trainers.dqn import DQNTrainer
from pixel_dqn.trainers.reinforce import ReinforceTrainer
from pixel_dqn.validation import ConfigError, validate

__all__ = ["CHECKPOINT_DIR", "TRAINERS", "NonFiniteError", "RunWriteError", "TrainingInterrupted",
           "build_trainer", "train"]

# the trainer of each trainer config schema (a new trainer registers here)
TRAINERS: dict[type, type[Trainer]] = {DQNConfig: DQNTrainer, ReinforceConfig: ReinforceTrainer}
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
        trainer = build_trainer(cfg, run_dir, seeds, store, writer)
    except BaseException:
        writer.close()
        raise
    return trainer.train(checkpoint)


def build_trainer(cfg: DictConfig, run_dir: Path, seeds: RunSeeds, store: CheckpointStore,
                  writer: MetricsWriter) -> Trainer:
    """The configured trainer, with its envs, networks and optimizer built."""
    hparams = instantiate(cfg.trainer)
    trainer_class = TRAINERS[type(hparams)]
    make_envs = trainer_class.env_factory(instantiate(cfg.env), hparams)
    return trainer_class(cfg, hparams, run_dir, make_envs(), make_envs, instantiate(cfg.model),
                         seeds, store, writer)


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
