"""One writer for run metrics: ``metrics.csv``, TensorBoard events and console progress."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import TextIO

import tensorflow as tf
from tqdm import tqdm

COLUMNS = (
    "kind",  # "train" (one row per training episode) or "eval" (one row per evaluation)
    "env_step",
    "episode",
    "return",
    "length",
    "epsilon",
    "loss",
    "mean_q",
    "steps_per_s",
    "wall_time_s",
    "return_std",
    "return_min",
    "return_max",
)


class Progress:
    """A tqdm bar on a terminal; a plain line every ``interval_s`` seconds otherwise (logs)."""

    def __init__(self, total_steps: int, interval_s: float, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._total = total_steps
        self._bar = None
        if self._stream.isatty():
            self._bar = tqdm(total=total_steps, unit="step", file=self._stream, dynamic_ncols=True)
            interval_s = 0.2
        self._interval_s = interval_s
        self._last = time.monotonic()

    def due(self) -> bool:
        """True when the display should be refreshed; cheap enough to ask every step."""
        return time.monotonic() - self._last >= self._interval_s

    def show(self, step: int, fields: dict[str, str]) -> None:
        """Display ``fields`` at ``step``."""
        self._last = time.monotonic()
        if self._bar is not None:
            self._bar.set_postfix(fields, refresh=False)
            self._bar.update(step - self._bar.n)
        else:
            text = " ".join(f"{k}={v}" for k, v in fields.items())
            print(f"[{step}/{self._total}] {text}", file=self._stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class MetricsWriter:
    """Append rows to ``metrics.csv`` and mirror them as TensorBoard scalars."""

    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self._file = open(run_dir / "metrics.csv", "w", newline="")  # noqa: SIM115
        self._csv = csv.DictWriter(self._file, fieldnames=COLUMNS)
        self._csv.writeheader()
        self._tb = tf.summary.create_file_writer(str(run_dir / "tb")) if tensorboard else None

    def write(self, row: dict[str, float | int | str | None]) -> None:
        """Write one row (missing columns stay empty) and its numbers to TensorBoard."""
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown metrics columns {sorted(unknown)}; known: {COLUMNS}")
        self._csv.writerow({k: ("" if v is None else v) for k, v in row.items()})
        self._file.flush()
        if self._tb is None:
            return
        step = int(row["env_step"])
        with self._tb.as_default(step=step):
            for key, value in row.items():
                if key not in ("kind", "env_step") and isinstance(value, int | float):
                    tf.summary.scalar(f"{row['kind']}/{key}", value)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
