"""What a run carries and how it stops: its seeds, its loop state, its user-facing errors."""

from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class RunSeeds:
    """Independent seeds for every random stream, all derived from the one config seed
    (generate_state is a prefix-stable stream: a new field leaves the others unchanged)."""

    tf: int
    env: int
    replay: int
    exploration: int
    eval: int
    augment: int

    @classmethod
    def from_seed(cls, seed: int) -> RunSeeds:
        return cls(*np.random.SeedSequence(seed).generate_state(6).tolist())


class TrainingInterrupted(Exception):
    """A stop signal ended training (after writing a checkpoint, if checkpoints are on)."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None) -> None:
        saved = ("no checkpoint (checkpoint.enabled=false)" if checkpoint is None else
                 f"checkpoint {checkpoint} written; rerun the same command to resume")
        super().__init__(f"{signal.Signals(signum).name} at env step {step}: {saved}")
        self.signum = signum


class RunWriteError(OSError):
    """A file of the run directory could not be written (disk full, quota, read-only)."""

    def __init__(self, run_dir: Path, step: int, error: OSError, kept: list[Path]) -> None:
        if kept:
            where = (f"the last complete checkpoint is {kept[-1]}; free space and rerun the "
                     f"same command to resume from it")
        else:
            where = "no checkpoint was complete; free space and rerun the same command"
        super().__init__(error.errno, f"could not write to {run_dir} at env step {step} "
                         f"({error.strerror or error}): training stopped, {where}")

    def __str__(self) -> str:
        return str(self.strerror)


class NonFiniteError(ArithmeticError):
    """The loss or the network outputs stopped being finite; no checkpoint is written."""


@dataclass
class LoopState:
    """What a training loop carries from one iteration to the next (all checkpointed)."""

    next_eval: int
    next_checkpoint: int | None
    step: int = 0  # env steps
    episodes: int = 0
    evals: int = 0
    eval_env_steps: int = 0  # greedy env steps the periodic evaluations played
    seconds: float = 0.0  # wall-clock seconds of the earlier sessions of a resumed run
    recent_returns: deque = field(default_factory=lambda: deque(maxlen=20))
    last: dict = field(default_factory=dict)  # the latest training metrics (loss, ...)
    last_eval: float | None = None  # the latest periodic evaluation's mean return
    # eval.keep_best: (mean return, env step, evaluated network's weights) of the best eval
    best: tuple[float, int, list] | None = None
    phase_seconds: dict = field(default_factory=dict)
