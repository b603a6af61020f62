"""The training loops, one per trainer config schema (``TRAINERS``: DQN and REINFORCE), and
``train(cfg, run_dir)``: one training run, from a checked config to its final evaluation.

The trainer of the config's ``trainer`` schema trains inside a ``Run``, which owns the run's
directory, checkpoints, metrics and envs. The same call in the same run directory resumes from
the newest complete checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from pixel_dqn.config import Config, DQNConfig, ReinforceConfig
from pixel_dqn.evaluation import EvalResult
from pixel_dqn.run import Run
from pixel_dqn.run_state import NonFiniteError, RunWriteError, TrainingInterrupted
from pixel_dqn.trainers.base import Trainer
from pixel_dqn.trainers.dqn import DQNTrainer
from pixel_dqn.trainers.reinforce import ReinforceTrainer

__all__ = ["TRAINERS", "NonFiniteError", "RunWriteError", "TrainingInterrupted", "train"]

# the trainer of each trainer config schema (a new trainer registers here)
TRAINERS: dict[type, type[Trainer]] = {DQNConfig: DQNTrainer, ReinforceConfig: ReinforceTrainer}


def train(cfg: Config, run_dir: Path) -> EvalResult:
    """Train the configured agent, writing everything to ``run_dir``; return the final eval.

    ``cfg`` comes from ``pixel_dqn.config.load_config`` (typed and checked). If ``run_dir``
    holds a checkpoint of the same config, training resumes from the newest complete one.
    """
    trainer_class = TRAINERS[type(cfg.trainer)]
    env_cfg = trainer_class.env_config(cfg)  # the envs this trainer plays
    with Run(cfg, run_dir, env_cfg) as run:
        return trainer_class(cfg, run).train()
