"""Sweeps, a time limit and a tuning study against a running SLURM: a one-node cluster with job
accounting on this machine (``tests/slurm_cluster.py``), which the tests share.

Without SLURM installed (or without root) these skip in one line naming what is missing; in CI
(``CI`` set: ``.ci/run`` installs the packages) they never skip.
"""

import csv
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SMOKE_OVERRIDES, STATE
from slurm_cluster import missing, shared_cluster

from pixel_dqn.report import find_jobs
from pixel_dqn.reproducibility import run_differences
from pixel_dqn.run_directory import CHECKPOINT_DIR, train_command

# one core and a little memory per job: two jobs fit the 2-core node side by side
SMALL_JOBS = ("hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2")
# the README's sweep, shortened: a few hundred steps
SHORT = (*SMOKE_OVERRIDES, "trainer.jit_compile=false", "progress_interval_s=1000", *SMALL_JOBS)
SACCT_NOISE = ("accounting storage is disabled", "Bypassing sacct error")
UNFINISHED = ("PENDING", "RUNNING", "COMPLETING", "SUSPENDED")  # REQUEUED: a run that ended


@pytest.fixture(scope="session")
def slurm(tmp_path_factory, worker_id):
    reason = missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM tests: {reason}")
        pytest.skip(reason)
    # the pytest-xdist workers share one cluster (a directory they all see)
    base = tmp_path_factory.getbasetemp()
    with shared_cluster((base if worker_id == "master" else base.parent) / "slurm") as cluster:
        yield cluster


def _sacct_states(job_id: str) -> list[str]:
    """Every state of a job (or of each task of an array), one per run of it (``-D``: requeued
    runs too), as accounting has them."""
    out = subprocess.run(["sacct", "-n", "-P", "-D", "-X", "-j", job_id, "-o", "State"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _final_states(job_id: str, timeout_s: float = 60) -> list[str]:
    """``_sacct_states`` once the job has ended (slurmctld tells accounting a moment later)."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = _sacct_states(job_id)
        if states and not any(state in UNFINISHED for state in states):
            return states
        assert time.monotonic() < deadline, f"job {job_id} still {states}"
        time.sleep(0.5)


def _slurm_jobs(sweep_dir: Path) -> list[str]:
    """The SLURM job ids of a sweep's jobs (submitit's job folders): ``<array job>_<task>``
    for a sweep of several jobs, ``<job>`` for one."""
    names = [p.name for p in (sweep_dir / ".submitit").iterdir()]
    tasks = sorted(n for n in names if re.fullmatch(r"\d+_\d+", n))
    return tasks or sorted(n for n in names if n.isdigit())


def _readme_command(start: str) -> list[str]:
    """The README's command that begins with ``start`` (continued lines joined), split."""
    text = (ROOT / "README.md").read_text()
    assert start in text, f"README.md has no command starting {start!r}"
    lines = []
    for line in text[text.index(start):].splitlines():
        lines.append(line.rstrip().removesuffix("\\"))
        if not line.rstrip().endswith("\\"):
            return shlex.split(" ".join(lines))
    raise AssertionError(f"README.md: the command starting {start!r} never ends")


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} is no longer in the README's command: {text}"
    return text.replace(old, new)


@pytest.mark.slow
def test_the_readme_sweep_on_slurm_runs_two_jobs_as_an_array_and_a_report_reads_them(
        slurm, tmp_path):
    command = _readme_command("python scripts/train.py -m +experiment=state_vs_pixels "
                              "hydra/launcher=slurm")
    proc = subprocess.run([sys.executable, *command[1:], *SHORT, "seed=0",
                           f"hydra.sweep.dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = find_jobs(tmp_path)
    assert len(jobs) == 2 and all(j.finished for j in jobs)  # the state arm and the pixel arm
    tasks = _slurm_jobs(tmp_path)  # two tasks of one SLURM array, as accounting saw them
    assert len(tasks) == 2 and len({t.split("_")[0] for t in tasks}) == 1
    assert [_final_states(t) for t in tasks] == [["COMPLETED"], ["COMPLETED"]]
    assert not any(noise in proc.stderr for noise in SACCT_NOISE), proc.stderr[-2000:]
    subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"), str(tmp_path)],
                   cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    with open(tmp_path / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["arm"] for r in rows) == ["arm=pixels", "arm=state"], rows
    assert all(int(r["seeds"]) == 1 for r in rows)


# ~35 s of training on one free core (1,650 env steps/s, AMD EPYC), under load longer: more
# than the 5-35 s before the first warning (see below)
LONG = (*STATE, "total_steps=60000", "eval.every_steps=10000", "eval.episodes=2",
        "eval.final_episodes=3", "checkpoint.every_steps=100000", "progress_interval_s=1000",
        "tensorboard=false")


@pytest.mark.slow
def test_a_job_stopped_by_its_time_limit_is_requeued_and_ends_equal_to_an_uninterrupted_run(
        slurm, tmp_path):
    """A one-minute limit with the warning 55 s ahead: slurmctld checks limits every 30 s, so
    SIGUSR2 comes 5-35 s into each run of the job; the job checkpoints, submitit requeues it,
    and the next run resumes until the training is done."""
    sweep_dir, reference = tmp_path / "sweep", tmp_path / "reference"
    sweep = subprocess.Popen(
        train_command(*LONG, "hydra/launcher=slurm", *SMALL_JOBS, "hydra.launcher.timeout_min=1",
                      "hydra.launcher.signal_delay_s=55", f"hydra.sweep.dir={sweep_dir}",
                      multirun=True),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the same run without a scheduler, side by side on the other core
    subprocess.run(train_command(*LONG, f"hydra.run.dir={reference}"), cwd=ROOT,
                   capture_output=True, check=True, timeout=600)
    _, err = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, err[-2000:]
    (task,) = _slurm_jobs(sweep_dir)
    states = _final_states(task)
    assert states[-1] == "COMPLETED" and len(states) >= 2, states  # requeued at least once
    log = "".join(f.read_text() for f in (sweep_dir / ".submitit").rglob("*_log.*"))
    assert "SIGUSR2 handed on to the launcher" in log and "resuming from" in log, log[-3000:]
    (job,) = find_jobs(sweep_dir)
    assert run_differences(reference, sweep_dir / job.name) == []


def _train_processes(array_task: str) -> list[tuple[int, str]]:
    """(pid, run dir) of the train.py processes started by one task of a SLURM array."""
    array, task = array_task.split("_")
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode().split("\0")
            environ = (proc / "environ").read_bytes().decode().split("\0")
        except (OSError, ValueError):
            continue
        run_dir = next((a.split("=", 1)[1] for a in cmdline if a.startswith("hydra.run.dir=")),
                       None)
        if (run_dir and "pixel_dqn.train" in cmdline and f"SLURM_ARRAY_JOB_ID={array}" in environ
                and f"SLURM_ARRAY_TASK_ID={task}" in environ):
            found.append((int(proc.name), run_dir))
    return found


@pytest.mark.slow
def test_a_tuning_study_as_a_slurm_array_counts_every_trial_once_and_resumes_a_cancelled_one(
        slurm, tmp_path):
    """The README's sbatch command, shortened: two workers as a two-task array. Task 0 is
    cancelled with SIGTERM mid-trial; its run checkpoints, and task 1 takes the retry and
    resumes it."""
    import optuna  # noqa: F401 (the tune extra: part of the README's test command)
    from optuna.trial import TrialState

    from pixel_dqn.tune.report import load_study

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({
        "seed": 0, "sampler": {"type": "random"}, "pruner": {"type": "none"},
        "overrides": [*STATE, "total_steps=3000", "eval.every_steps=1000", "eval.episodes=2",
                      "eval.final_episodes=2", "checkpoint.every_steps=500",
                      "trainer.learning_starts=500", "model.hidden_sizes=[32]",
                      "progress_interval_s=1000", "tensorboard=false"],
        "params": {"trainer.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3}},
    }))
    study = tmp_path / "study"
    sbatch = _readme_command("sbatch --array=")
    wrapped = sbatch[sbatch.index("--wrap") + 1]
    for old, new in (("python ", f"{sys.executable} "), ("--trials 64", "--trials 3"),
                     ("--space pixel_dqn", f"--space {space}"),
                     ("--dir /shared/tune/pixels", f"--dir {study}")):
        wrapped = _replace(wrapped, old, new)
    options = [_replace(o, "--array=0-7", "--array=0-1") if o.startswith("--array") else o
               for o in sbatch[1:sbatch.index("--wrap")]]
    submitted = subprocess.run(
        ["sbatch", "--parsable", *options, f"--chdir={ROOT}", f"--output={tmp_path}/worker_%a.out",
         "--wrap", wrapped], capture_output=True, text=True, check=True, timeout=60)
    array = submitted.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 300
    while True:  # task 0's trial is under way, past its first checkpoint
        runs = _train_processes(f"{array}_0")
        if runs and list((Path(runs[0][1]) / CHECKPOINT_DIR).glob("step-*")):
            break
        assert time.monotonic() < deadline, (tmp_path / "worker_0.out").read_text()
        time.sleep(0.05)
    stopped_run = Path(runs[0][1])
    subprocess.run(["scancel", "--batch", "--signal=TERM",
                    f"{array}_0"], check=True, timeout=60)
    _final_states(array, timeout_s=300)

    storage = load_study(study)
    finished = storage.get_trials(deepcopy=False,
                                  states=(TrialState.COMPLETE, TrialState.PRUNED))
    failed = storage.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    assert len(finished) == 3, [(t.number, t.state) for t in storage.trials]
    assert len(failed) == 1 and failed[0].user_attrs["run_dir"] == str(
        stopped_run.relative_to(study))
    retry = next(t for t in finished if t.system_attrs.get("failed_trial") == failed[0].number)
    assert retry.user_attrs["run_dir"] == failed[0].user_attrs["run_dir"]
    assert "resuming from" in (stopped_run / "console.log").read_text()
    worker_1 = (tmp_path / "worker_1.out").read_text()
    assert f"trial {retry.number}" in worker_1, worker_1
