"""One writer for run metrics: ``metrics.csv``, TensorBoard events and console progress."""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tqdm import tqdm

from pixel_dqn.run_directory import METRICS_FILE, TENSORBOARD_DIR

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

    def __init__(self, total_steps: int, interval_s: float, stream: TextIO | None = None,
                 unit: str = "step") -> None:
        self._stream = stream or sys.stdout
        self._total = total_steps
        self._bar = None
        if self._stream.isatty():
            self._bar = tqdm(total=total_steps, unit=unit, file=self._stream, dynamic_ncols=True)
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
    """Append rows to ``metrics.csv`` and mirror their numbers as TensorBoard scalars.

    ``position()`` is where the writer stands (saved in checkpoints); a writer opened with
    ``resume_from`` cuts ``metrics.csv`` back to that position, so rows written after the
    checkpoint are written again once, never twice. TensorBoard gets a session-start event at
    the resumed step, which makes it drop the older events from that step on.
    """

    def __init__(
        self, run_dir: Path, tensorboard: bool = True, resume_from: dict | None = None
    ) -> None:
        path = run_dir / METRICS_FILE
        if resume_from is None:
            self._file = open(path, "w", newline="")  # noqa: SIM115
            self._csv = csv.DictWriter(self._file, fieldnames=COLUMNS)
            self._csv.writeheader()
            first_step = 0
        else:
            size = path.stat().st_size if path.is_file() else -1
            if size < resume_from["csv_bytes"]:
                raise RuntimeError(f"{path} has {size} bytes, fewer than the checkpoint's "
                                   f"{resume_from['csv_bytes']}: it was changed after the run")
            self._file = open(path, "r+", newline="")  # noqa: SIM115
            self._file.truncate(resume_from["csv_bytes"])
            self._file.seek(resume_from["csv_bytes"])
            self._csv = csv.DictWriter(self._file, fieldnames=COLUMNS)
            first_step = resume_from["env_step"] + 1
        self._file.flush()
        self._env_step = first_step
        self._tb = None
        if tensorboard:
            self._tb = EventFileWriter(str(run_dir / TENSORBOARD_DIR))
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._tb.add_event(event_pb2.Event(wall_time=time.time(), step=first_step,
                                               session_log=start))

    def write(self, row: dict[str, float | int | str | None]) -> None:
        """Write one row (missing columns stay empty) and its numbers to TensorBoard."""
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown metrics columns {sorted(unknown)}; known: {COLUMNS}")
        self._csv.writerow({k: ("" if v is None else v) for k, v in row.items()})
        self._file.flush()
        step = int(row["env_step"])
        self._env_step = step
        if self._tb is None:
            return
        values = [summary_pb2.Summary.Value(tag=f"{row['kind']}/{key}", simple_value=value)
                  for key, value in row.items()
                  if key not in ("kind", "env_step") and isinstance(value, int | float)]
        self._tb.add_event(event_pb2.Event(wall_time=time.time(), step=step,
                                           summary=summary_pb2.Summary(value=values)))

    def position(self, env_step: int) -> dict[str, int]:
        """Flush to disk and return where a resumed writer must continue from."""
        self._file.flush()
        os.fsync(self._file.fileno())
        if self._tb is not None:
            self._tb.flush()
        return {"csv_bytes": self._file.tell(), "env_step": env_step}

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
