"""``Run``: the one owner of a training run's resources.

A run opens its directory, its checkpoints (and the one it resumes from), its metrics and its
envs together, and closes them together, whatever ends it. A run is kill-safe: it checkpoints
every ``checkpoint.every_steps`` env steps, at the end and when it receives SIGTERM or SIGINT,
and the same command in the same run directory resumes from the newest complete checkpoint,
continuing exactly as if it had never stopped.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from functools import partial
from pathlib import Path
from types import TracebackType

import gymnasium as gym
import keras
import tensorflow as tf
from omegaconf import OmegaConf

from pixel_dqn.checkpoint import Checkpoint, CheckpointStore
from pixel_dqn.config import Config, EnvConfig
from pixel_dqn.envs.factory import make_envs
from pixel_dqn.envs.snapshot import restore_envs
from pixel_dqn.metrics import MetricsWriter
from pixel_dqn.run_directory import CHECKPOINT_DIR, RUN_CONFIG_FILE
from pixel_dqn.run_state import RunSeeds
from pixel_dqn.runtime import configure_threads

# keys that do not change what a run computes: a resumed run may change them
RESUME_MAY_CHANGE = ("progress_interval_s", "display", "threads", "checkpoint")


class Run:
    """Everything one training run owns: its directory and ``config.yaml``, its checkpoint
    store and the checkpoint it resumes from (if any), its seeds, its metrics writer and its
    training envs (``envs``; ``make_envs(n)`` builds evaluation envs of the same config).

    Entering sets the process up for the run (threads, seeds, op determinism) and opens
    everything; leaving closes what it opened, whatever ended the run.
    """

    def __init__(self, cfg: Config, run_dir: Path, env_cfg: EnvConfig) -> None:
        self.cfg, self.dir, self.env_cfg = cfg, run_dir, env_cfg
        self.store = CheckpointStore(run_dir / CHECKPOINT_DIR, cfg.checkpoint.keep)
        # a run directory resumes only the run it holds: the same config, up to harmless keys
        self.checkpoint: Checkpoint | None = self.store.load_latest(
            asdict(cfg), RESUME_MAY_CHANGE) if cfg.checkpoint.enabled else None
        self.seeds = RunSeeds.from_seed(cfg.seed)
        self._stack = contextlib.ExitStack()

    def make_envs(self, num_envs: int | None = None) -> gym.vector.VectorEnv:
        """Fresh envs of the run's env config (``num_envs`` of them, if given); the caller
        closes them."""
        return make_envs(self.env_cfg, num_envs)

    def __enter__(self) -> Run:
        cfg, checkpoint = self.cfg, self.checkpoint
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / RUN_CONFIG_FILE).write_text(OmegaConf.to_yaml(asdict(cfg)))
        configure_threads(cfg.threads.intra_op, cfg.threads.inter_op)
        keras.utils.set_random_seed(self.seeds.tf % 2**32)  # python, numpy global, TF initialisers
        if cfg.deterministic:
            tf.config.experimental.enable_op_determinism()
        with contextlib.ExitStack() as stack:
            # a resumed run's metrics.csv is cut back to where its checkpoint left it
            self.writer = MetricsWriter(
                self.dir, tensorboard=cfg.tensorboard,
                resume_from=None if checkpoint is None else checkpoint.state["metrics"])
            # rows are flushed as written: a failed close loses nothing
            stack.callback(partial(_close_quietly, self.writer))
            self.envs = (self.make_envs() if checkpoint is None
                         else restore_envs(checkpoint.state["envs"]))
            stack.callback(self.envs.close)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stack.close()


def _close_quietly(writer: MetricsWriter) -> None:
    with contextlib.suppress(OSError):
        writer.close()

