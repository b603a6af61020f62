"""One trial of a study: a ``scripts/train.py`` subprocess watched by its worker.

The worker reports the run's periodic greedy evaluations to Optuna as they appear in
``metrics.csv``, keeps the trial's heartbeat, stops the run with SIGTERM (train.py then
checkpoints) when the trial is pruned or the worker is asked to stop, and returns the final
evaluation from ``eval.json``.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import optuna
import yaml
from optuna.trial import TrialState

from pixel_dqn.report import read_job
from pixel_dqn.run_directory import METRICS_FILE
from pixel_dqn.stop_signals import StopSignals
from pixel_dqn.tune.optuna_api import study_storage, trial_id

CONSOLE_FILE = "console.log"
PRUNED_FILE = "pruned.json"
RUN_LOCK_FILE = ".trial.lock"
# train.py stopped by a signal: 128 + signal after checkpointing, -signal if killed before
INTERRUPTED = {128 + signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGTERM, -signal.SIGINT}


class TrialFailed(RuntimeError):
    """train.py ended with an error (its last output line is the message)."""


class TrialInterrupted(RuntimeError):
    """train.py was stopped by a signal after checkpointing: the trial is to be retried."""


class TrialAbandoned(RuntimeError):
    """Another worker found this trial stale and retries it."""


STUDY_STOP = ("stopping the running trials (they checkpoint); rerun the same command to "
              "continue")
"""What a study's driver and workers say when SIGTERM or SIGINT stops them."""


def study_stop_signals() -> StopSignals:
    """SIGTERM or SIGINT, for the rest of a study's process: stop the running trial (it
    checkpoints) and take no new one; a repeated signal changes nothing."""
    return StopSignals(announce=STUDY_STOP, interrupt_on_repeat=False).install()


def die_with_parent() -> None:
    """Linux: have this process receive SIGTERM when its parent dies (a SIGKILLed driver
    must not leave a worker or a train.py running unseen); elsewhere, nothing."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class _Heartbeat:
    """Records the trial's heartbeat every ``interval_s``; raises ``TrialAbandoned`` once
    another worker has failed the trial as stale."""

    def __init__(self, trial: optuna.Trial, interval_s: float) -> None:
        self._storage, self._id = study_storage(trial.study), trial_id(trial)
        self._interval_s = interval_s
        self._last = -float("inf")

    def __call__(self) -> None:
        if time.monotonic() - self._last < self._interval_s:
            return
        self._storage.record_heartbeat(self._id)
        self._last = time.monotonic()
        if self._storage.get_trial(self._id).state != TrialState.RUNNING:
            raise TrialAbandoned("found stale by another worker, which retries it")


def run_trial(trial: optuna.Trial, run_dir: Path, command: list[str], stop: StopSignals,
              heartbeat_s: float, poll_s: float, pruner: str) -> float:
    """Run ``command`` (train.py writing to ``run_dir``), reporting its periodic evaluations;
    return eval.json's mean.

    Raises ``optuna.TrialPruned`` (after stopping the run and writing ``pruned.json``),
    ``TrialInterrupted``, ``TrialAbandoned`` or ``TrialFailed``.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    beat = _Heartbeat(trial, heartbeat_s)
    with open(run_dir / RUN_LOCK_FILE, "a") as lock, open(run_dir / CONSOLE_FILE, "a") as console:
        # a retry may find the worker it replaces still stopping its train.py here
        while not _try_lock(lock):
            beat()
            stop.wait(poll_s, poll_s)
            if stop.signum is not None:
                raise TrialInterrupted("stopped before its run directory was free")
        # train.py shares the lock: if this worker dies, a retry still waits for it to exit
        process = subprocess.Popen(command, stdout=console, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=die_with_parent,
                                   pass_fds=(lock.fileno(),))
        try:
            code = _watch(process, trial, run_dir, stop, beat, poll_s, pruner)
        finally:
            _stop(process)
    if code == 0:
        job = read_job(run_dir)
        if job.final_eval is None:
            raise TrialFailed(f"train.py ended without writing eval.json in {run_dir}")
        return job.final_eval
    if code in INTERRUPTED:
        raise TrialInterrupted(f"train.py stopped by a signal (exit status {code})")
    lines = [line for line in (run_dir / CONSOLE_FILE).read_text().splitlines() if line.strip()]
    raise TrialFailed(f"train.py exit status {code}: {lines[-1] if lines else '(no output)'}")


def _watch(process: subprocess.Popen, trial: optuna.Trial, run_dir: Path, stop: StopSignals,
           beat: _Heartbeat, poll_s: float, pruner: str) -> int:
    """Poll the run until it ends; return its exit status."""
    reported: set[int] = set()
    signalled, csv_size = False, -1
    while True:
        code = process.poll()
        beat()
        size = (run_dir / METRICS_FILE).stat().st_size if (run_dir / METRICS_FILE).is_file() else -1
        evals = periodic_evals(run_dir) if size != csv_size else None
        if evals is not None:  # read again only once metrics.csv has grown
            csv_size = size
            new = [(s, v) for s, v in evals if s not in reported]
            for step, value in new:
                trial.report(value, step)
                reported.add(step)
            if new and code is None and trial.should_prune():
                _stop(process)
                raise optuna.TrialPruned(_write_pruned(run_dir, *new[-1], pruner))
        if code is not None:
            return code
        if stop.signum is not None and not signalled:
            process.terminate()
            signalled = True
        time.sleep(poll_s)


def _try_lock(handle: IO) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # SIGTERM: train.py checkpoints at the end of its step and exits
    process.wait()


def periodic_evals(run_dir: Path) -> list[tuple[int, float]] | None:
    """(env step, greedy eval return) of the run's periodic evaluations so far; None while
    the run's files cannot be read yet (not written, or a row half written)."""
    if not (run_dir / ".hydra" / "overrides.yaml").is_file():
        return None
    try:
        with open(run_dir / METRICS_FILE, "rb") as metrics:
            metrics.seek(-1, 2)
            if metrics.read(1) != b"\n":
                return None
        job = read_job(run_dir)
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError):
        return None
    # read_job appends the final evaluation (eval.json) when it read timing.json
    return job.curve[:-1] if job.steps_per_s is not None else job.curve


def _write_pruned(run_dir: Path, step: int, value: float, pruner: str) -> str:
    reason = f"by the {pruner} pruner at env step {step} (periodic greedy eval {value:.1f})"
    record = {"step": step, "value": value, "reason": reason}
    (run_dir / PRUNED_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return reason
