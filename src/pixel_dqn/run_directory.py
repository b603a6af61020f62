"""What a training run leaves in its directory, how to read it back, and how to start a run.

Every file name of a run directory, the readers the reports, benchmarks, tuner and tests use,
the return that counts as solved, and the command that (re)starts a run
(``python -m pixel_dqn.train``; the same command in the same directory resumes from its newest
checkpoint).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path

TRAIN_MODULE = "pixel_dqn.train"  # python -m pixel_dqn.train: scripts/train.py's command

RUN_CONFIG_FILE = "config.yaml"  # the resolved config the run was started with
MODEL_FILE = "model.keras"  # the final network (the kept one with eval.keep_best)
EVAL_FILE = "eval.json"  # the final greedy evaluation; written last, so it marks a finished run
TIMING_FILE = "timing.json"  # training wall time, env steps/s and the time per phase
METRICS_FILE = "metrics.csv"  # one row per training episode ("train") and periodic eval ("eval")
TENSORBOARD_DIR = "tb"
CHECKPOINT_DIR = "checkpoints"

SOLVED = 475.0  # CartPole-v1's threshold for a solved evaluation


def train_command(*overrides: str, run_dir: Path | None = None,
                  multirun: bool = False) -> list[str]:
    """The command line that trains with ``overrides`` (in ``run_dir``, if given)."""
    command = [sys.executable, "-m", TRAIN_MODULE, *(["-m"] if multirun else []), *overrides]
    return command + ([f"hydra.run.dir={run_dir}"] if run_dir is not None else [])


def read_json(run_dir: Path, name: str) -> dict | None:
    """``eval.json`` or ``timing.json`` of a run, or None if it has not been written."""
    path = run_dir / name
    return json.loads(path.read_text()) if path.is_file() else None


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    """The rows of ``metrics.csv`` (empty if the run wrote none yet)."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def eval_curve(rows: Sequence[dict[str, str]]) -> list[tuple[int, float]]:
    """(env step, mean return) of each periodic evaluation, in order."""
    return [(int(r["env_step"]), float(r["return"])) for r in rows if r["kind"] == "eval"]


def first_solved_step(curve: Sequence[tuple[int, float]]) -> int | None:
    """The env step of the first evaluation that reached ``SOLVED``, or None."""
    return next((step for step, value in curve if value >= SOLVED), None)
