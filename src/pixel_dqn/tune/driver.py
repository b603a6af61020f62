"""Optuna studies over the Hydra config: the driver behind ``scripts/tune.py``.

Each trial is an ordinary ``scripts/train.py`` run in ``<study dir>/trials/<n>``, started as a
subprocess with one TensorFlow thread. The driver reports the run's periodic greedy
evaluations (``metrics.csv`` eval rows) to Optuna as they appear, stops a pruned run with
SIGTERM, and tells Optuna the final evaluation (``eval.json``'s mean). Workers share the
storage (SQLite in the study dir by default); a trial whose worker died (its heartbeat went
stale) or was stopped is retried in the same run directory, where train.py resumes from its
checkpoint. A study runs until ``trials`` trials are complete or pruned, however many times
its command is rerun.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import signal
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.trial import TrialState

from pixel_dqn.config import ConfigError
from pixel_dqn.flat_config import flatten_config
from pixel_dqn.run_directory import train_command
from pixel_dqn.stop_signals import StopSignals
from pixel_dqn.tune.optuna_api import study_storage, trial_id
from pixel_dqn.tune.space import SearchSpace, check_against_config
from pixel_dqn.tune.trial import (
    TrialAbandoned,
    TrialFailed,
    TrialInterrupted,
    die_with_parent,
    run_trial,
    study_stop_signals,
)

STUDY_NAME = "pixel_dqn"
SPACE_FILE = "space.yaml"
STUDY_DB = "study.db"  # the default storage: SQLite in the study dir
LOCK_FILE = ".study.lock"
TRIALS_DIR = "trials"
MAX_RETRY = 5  # retries of one trial after its worker died or was stopped


@dataclass(frozen=True)
class StudySettings:
    """What a driver needs: the study dir, the checked space, and how to run trials."""

    study_dir: Path
    space: SearchSpace
    trials: int
    extra_overrides: tuple[str, ...] = ()
    workers: int = 1
    heartbeat_s: int = 30
    storage_url: str | None = None
    poll_s: float = 1.0

    @property
    def storage(self) -> str:
        return self.storage_url or default_storage(self.study_dir)


def default_storage(study_dir: Path) -> str:
    """``sqlite:///<study dir>/study.db`` (absolute)."""
    return f"sqlite:///{(study_dir / STUDY_DB).resolve()}"


def retry_callback() -> tuple[str, Any]:
    """Optuna's callback that queues a failed stale trial again (same params and user attrs),
    and the ``RDBStorage`` argument that takes it: renamed in Optuna 4.9."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):
            return ("heartbeat_stale_trial_callback",
                    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))
        return "failed_trial_callback", optuna.storages.RetryFailedTrialCallback(MAX_RETRY)


def open_storage(url: str, heartbeat_s: int | None = None) -> optuna.storages.RDBStorage:
    """The study's storage; with ``heartbeat_s`` a trial silent for 3 heartbeats is failed and
    queued again (``retry_callback``) by the next worker that looks."""
    argument, callback = retry_callback()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite")
            else {}, heartbeat_interval=heartbeat_s,
            grace_period=3 * heartbeat_s if heartbeat_s else None,
            **({argument: callback} if heartbeat_s else {}))


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` between processes (released when the holder dies)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_study(settings: StudySettings, conf_dir: Path) -> None:
    """Check the space against the composed config and the study dir's recorded space, then
    create the study (and enqueue the space's first trials) if it is new."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_against_config(settings.space, conf_dir, list(settings.extra_overrides))
    record = {"space": {k: v for k, v in settings.space.spec.items() if k != "description"},
              "overrides": list(settings.extra_overrides)}
    study_dir, record_file = settings.study_dir, settings.study_dir / SPACE_FILE
    _check_record(study_dir, record, settings.storage_url)
    study_dir.mkdir(parents=True, exist_ok=True)
    with locked(study_dir / LOCK_FILE):
        _check_record(study_dir, record, settings.storage_url)
        if not record_file.is_file():  # first: a study.db without it is someone else's
            temporary = record_file.with_suffix(".tmp")
            temporary.write_text(yaml.safe_dump({"source": settings.space.name, **record},
                                                sort_keys=False))
            temporary.replace(record_file)
        study = optuna.create_study(storage=open_storage(settings.storage),
                                    study_name=STUDY_NAME, load_if_exists=True,
                                    direction=settings.space.spec["objective"]["direction"])
        if not study.user_attrs.get("enqueued"):
            for params in settings.space.spec["enqueue"]:
                study.enqueue_trial(params)
            study.set_user_attr("enqueued", True)


def _check_record(study_dir: Path, record: dict, storage_url: str | None) -> None:
    record_file = study_dir / SPACE_FILE
    if not record_file.is_file():
        if storage_url is None and (study_dir / STUDY_DB).exists():
            raise ConfigError(f"{study_dir} holds a {STUDY_DB} but no {SPACE_FILE}: not a study "
                              "made by scripts/tune.py, choose another --dir")
        return
    stored = yaml.safe_load(record_file.read_text()) or {}
    stored = {k: stored.get(k) for k in record}
    if stored == record:
        return
    old, new = flatten_config(stored), flatten_config(record)
    key = next(k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k))
    raise ConfigError(f"{study_dir} holds a study of another search space ({SPACE_FILE}): "
                      f"{key} is {old.get(key)!r} there, {new.get(key)!r} here; use another "
                      "--dir, or the space and overrides it was made with")


def run_study(settings: StudySettings, conf_dir: Path) -> int:
    """Prepare the study and run its workers until ``settings.trials`` trials are complete or
    pruned; return the exit status (0 done, 1 too many failures, 128 + signal if stopped)."""
    prepare_study(settings, conf_dir)
    print(f"study {settings.study_dir}: {settings.trials} trials, {settings.workers} worker(s), "
          f"storage {settings.storage}", flush=True)
    if settings.workers == 1:
        return work(settings)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no shared DB engine
    processes = [context.Process(target=_worker_main, args=(settings, index, os.getpid()),
                                 name=f"tune-worker-{index}")
                 for index in range(settings.workers)]
    stop = study_stop_signals()
    for process in processes:
        process.start()
    forwarded = False
    while any(process.is_alive() for process in processes):
        if stop.signum is not None and not forwarded:
            for process in processes:
                process.terminate()  # SIGTERM: each stops its trial, which checkpoints
            forwarded = True
        time.sleep(settings.poll_s)
    codes = [process.exitcode for process in processes]
    return 128 + stop.signum if stop.signum is not None else next((c for c in codes if c), 0)


def _worker_main(settings: StudySettings, index: int, parent_pid: int) -> None:
    die_with_parent()
    if os.getppid() != parent_pid:  # the driver died before this worker could notice
        raise SystemExit(128 + signal.SIGTERM)
    raise SystemExit(work(settings, index))


def work(settings: StudySettings, index: int = 0) -> int:
    """One worker's loop: take a trial (a retry first), run it, tell the result; repeat until
    the study has ``settings.trials`` complete or pruned trials. Returns the exit status."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    # the heartbeat is recorded by run_trial's loop, not by Study.optimize's thread
    warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used")
    stop = study_stop_signals()
    space, study_dir = settings.space, settings.study_dir
    storage = open_storage(settings.storage, settings.heartbeat_s)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    seed = np.random.SeedSequence([space.seed, index, len(study.trials)]).generate_state(1)[0]
    study.sampler = space.make_sampler(int(seed))
    study.pruner = space.make_pruner()
    while stop.signum is None:
        with locked(study_dir / LOCK_FILE):
            optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            failed = [t for t in trials if t.state == TrialState.FAIL and "failure" in t.user_attrs]
            if finished >= settings.trials:
                return 0
            if len(failed) >= settings.trials:
                print(f"stopping: {len(failed)} trials failed, the last: trial "
                      f"{failed[-1].number}: {failed[-1].user_attrs['failure']}", flush=True)
                return 1
            trial = study.ask() if finished + running < settings.trials else None
            if trial is not None:
                storage.record_heartbeat(trial_id(trial))
                overrides = last_wins([*space.overrides, *settings.extra_overrides,
                                       *space.suggest(trial), f"seed={space.seed}",
                                       "threads.intra_op=1", "threads.inter_op=1"])
                trial.set_user_attr("overrides", overrides)
                # a retried trial keeps its run dir: train.py resumes there from its checkpoint
                trial.set_user_attr("run_dir", trial.user_attrs.get("run_dir",
                                                                    f"{TRIALS_DIR}/{trial.number}"))
        if trial is None:  # the others' trials may still fail and come back as retries
            stop.wait(settings.heartbeat_s, settings.poll_s)
            continue
        _run_and_tell(study, trial, settings, stop, f"[worker {index}]")
    return 128 + stop.signum


def last_wins(overrides: list[str]) -> list[str]:
    """Drop a ``key=value`` override that a later one of the same key replaces (Hydra's
    meaning, said once: the printed command stays readable)."""
    keys = [o.split("=", 1)[0] for o in overrides]
    return [o for i, (o, key) in enumerate(zip(overrides, keys, strict=True))
            if key[0] in "+~" or key not in keys[i + 1:]]


def _run_and_tell(study: optuna.Study, trial: optuna.Trial, settings: StudySettings,
                  stop: StopSignals, who: str) -> None:
    label = f"{who} trial {trial.number} ({trial.user_attrs['run_dir']})"
    run_dir = (settings.study_dir / trial.user_attrs["run_dir"]).resolve()
    command = train_command(*trial.user_attrs["overrides"], run_dir=run_dir)
    try:
        value = run_trial(trial, run_dir, command, stop, settings.heartbeat_s, settings.poll_s,
                          settings.space.spec["pruner"]["type"])
    except optuna.TrialPruned as pruned:
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        print(f"{label}: pruned {pruned}", flush=True)
    except TrialInterrupted as interrupted:
        requeue(study, trial_id(trial))
        print(f"{label}: {interrupted}; it will be retried in its run dir", flush=True)
    except TrialAbandoned as abandoned:
        print(f"{label}: {abandoned}", flush=True)
    except TrialFailed as failed:
        trial.set_user_attr("failure", str(failed))
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        print(f"{label}: failed: {failed}", flush=True)
    else:
        study.tell(trial, value, skip_if_finished=True)
        print(f"{label}: complete, final greedy eval mean {value:.1f}", flush=True)


def requeue(study: optuna.Study, trial_id: int) -> None:
    """Fail a running trial and queue its retry at once (what a stale heartbeat does later)."""
    storage = study_storage(study)
    try:
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # another worker found it stale first and queued the retry
    retry_callback()[1](study, storage.get_trial(trial_id))


