"""Sweeps, a time limit and a tuning study against a running SLURM: a one-node cluster with job
accounting on this machine (``tests/slurm_cluster.py``), shared by the session's tests.

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
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SESSION_VARIABLE, SMOKE_OVERRIDES, STATE
from optuna.trial import TrialState
from slurm_cluster import missing, session_cluster

from pixel_dqn.report import find_jobs
from pixel_dqn.reproducibility import run_differences
from pixel_dqn.run_directory import CHECKPOINT_DIR, train_command
from pixel_dqn.tune.report import load_study

# one core and a little memory per job: two jobs fit the 2-core node side by side
SMALL_JOBS = ("hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2")
# the README's sweep, shortened: a few hundred steps
SHORT = (*SMOKE_OVERRIDES, "trainer.jit_compile=false", "progress_interval_s=1000", *SMALL_JOBS)
SACCT_NOISE = ("accounting storage is disabled", "Bypassing sacct error")
UNFINISHED = ("PENDING", "RUNNING", "COMPLETING", "SUSPENDED")  # REQUEUED: a run that ended


@pytest.fixture(scope="session")
def slurm():
    reason = missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM tests: {reason}")
        pytest.skip(reason)
    previous = os.environ.get("SLURM_CONF")
    yield session_cluster(os.environ[SESSION_VARIABLE])  # conftest stops it at the session's end
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``command``; fail with the end of its stderr unless it succeeds."""
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{shlex.join(command)[:300]}: {proc.stderr[-2000:]}"
    return proc


def _sacct(job_id: str, columns: str) -> list[list[str]]:
    """One row per run of a job, or of each task of an array (``-D``: requeued runs too)."""
    out = _run(["sacct", "-n", "-P", "-D", "-X", "-j", job_id, "-o", columns]).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def _final_states(job_id: str, timeout_s: float = 60) -> list[str]:
    """Every run's state once the job has ended (slurmctld tells accounting a moment later)."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = [row[0].split()[0] for row in _sacct(job_id, "State")]
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
    proc = _run([sys.executable, *command[1:], *SHORT, "seed=0", f"hydra.sweep.dir={tmp_path}"],
                cwd=ROOT)
    jobs = find_jobs(tmp_path)
    assert len(jobs) == 2 and all(j.finished for j in jobs)  # the state arm and the pixel arm
    tasks = _slurm_jobs(tmp_path)  # two tasks of one SLURM array, as accounting saw them
    assert len(tasks) == 2 and len({t.split("_")[0] for t in tasks}) == 1
    assert [_final_states(t) for t in tasks] == [["COMPLETED"], ["COMPLETED"]]
    assert not any(noise in proc.stderr for noise in SACCT_NOISE), proc.stderr[-2000:]
    _run([sys.executable, str(ROOT / "scripts" / "report.py"), str(tmp_path)], cwd=ROOT)
    with open(tmp_path / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["arm"] for r in rows) == ["arm=pixels", "arm=state"], rows
    assert all(int(r["seeds"]) == 1 for r in rows)


# ~70 s of training on one free core (1,650 env steps/s, AMD EPYC), more under load: longer than
# the first run of the job can last (see below)
LONG = (*STATE, "total_steps=120000", "eval.every_steps=20000", "eval.episodes=2",
        "eval.final_episodes=3", "checkpoint.every_steps=200000", "progress_interval_s=1000",
        "tensorboard=false")
HANDED_ON = re.compile(r"SIGUSR2 handed on to the launcher at env step (\d+)")
RESUMED = re.compile(r"resuming from \S+ \(env step (\d+)\)")


@pytest.mark.slow
def test_a_job_stopped_by_its_time_limit_is_requeued_and_ends_equal_to_an_uninterrupted_run(
        slurm, tmp_path):
    """A two-minute limit with the warning 45 s ahead: slurmctld checks limits every 30 s and
    warns once at most warning + 30 s remain, so SIGUSR2 comes 45-75 s into each run of the job
    (after start-up, before the limit). The job checkpoints, submitit requeues it, and the
    next run resumes, until the training is done."""
    sweep_dir, reference = tmp_path / "sweep", tmp_path / "reference"
    sweep = subprocess.Popen(
        train_command(*LONG, "hydra/launcher=slurm", *SMALL_JOBS, "hydra.launcher.timeout_min=2",
                      "hydra.launcher.signal_delay_s=45", "hydra.launcher.max_num_timeout=30",
                      f"hydra.sweep.dir={sweep_dir}", multirun=True),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the same run without a scheduler, side by side on the other core
        _run(train_command(*LONG, f"hydra.run.dir={reference}"), cwd=ROOT)
        _, err = sweep.communicate(timeout=900)
    finally:
        sweep.kill()
    assert sweep.returncode == 0, err[-2000:]
    (job_id,) = _slurm_jobs(sweep_dir)
    states = _final_states(job_id)
    assert states[-1] == "COMPLETED" and len(states) >= 2, states  # requeued at least once
    log = "".join(f.read_text() for f in sorted((sweep_dir / ".submitit").rglob("*_log.out")))
    assert "this job is timed-out" in log, log[-3000:]  # submitit's reading of the warning
    # every stop checkpointed at its step, and the next run resumed from exactly that step
    handed_on, resumed = HANDED_ON.findall(log), RESUMED.findall(log)
    assert handed_on and handed_on == resumed, (handed_on, resumed)
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


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else f"({path.name} not written yet)"


def _submit_tuning_array(space: Path, study: Path, logs: Path) -> str:
    """The README's sbatch command with a short study: two tasks, 3 trials, 1 GB each."""
    sbatch = _readme_command("sbatch --array=")
    wrapped = sbatch[sbatch.index("--wrap") + 1]
    for old, new in (("python ", f"{sys.executable} "), ("--trials 64", "--trials 3"),
                     ("--space pixel_dqn", f"--space {space}"),
                     ("--dir /shared/tune/pixels", f"--dir {study}")):
        wrapped = _replace(wrapped, old, new)
    options = sbatch[1:sbatch.index("--wrap")]
    options = [_replace(o, "--array=0-7", "--array=0-1") if o.startswith("--array") else
               _replace(o, "--mem=4G", "--mem=1G") if o.startswith("--mem") else o
               for o in options]
    submitted = _run(["sbatch", "--parsable", *options, f"--chdir={ROOT}",
                      f"--output={logs}/worker_%a.out", "--wrap", wrapped])
    return submitted.stdout.strip().split(";")[0]


@pytest.mark.slow
def test_a_tuning_study_as_a_slurm_array_counts_every_trial_once_and_resumes_a_cancelled_one(
        slurm, tmp_path):
    """The README's sbatch command, shortened: two workers as a two-task array. Task 0 is
    cancelled with SIGTERM mid-trial; its run checkpoints, and task 1 takes the retry and
    resumes it."""
    space, study = tmp_path / "space.yaml", tmp_path / "study"
    space.write_text(yaml.safe_dump({
        "seed": 0, "sampler": {"type": "random"}, "pruner": {"type": "none"},
        "overrides": [*STATE, "total_steps=6000", "eval.every_steps=2000", "eval.episodes=2",
                      "eval.final_episodes=2", "checkpoint.every_steps=500",
                      "trainer.learning_starts=500", "model.hidden_sizes=[32]",
                      "progress_interval_s=1000", "tensorboard=false"],
        "params": {"trainer.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3}},
    }))
    array = _submit_tuning_array(space, study, tmp_path)
    deadline = time.monotonic() + 300
    while True:  # task 0's trial is under way, past its first checkpoint
        runs = _train_processes(f"{array}_0")
        if runs and list((Path(runs[0][1]) / CHECKPOINT_DIR).glob("step-*")):
            break
        assert time.monotonic() < deadline, _read(tmp_path / "worker_0.out")
        time.sleep(0.05)
    stopped_run = Path(runs[0][1])
    _run(["scancel", "--batch", "--signal=TERM", f"{array}_0"])
    _final_states(array, timeout_s=300)

    worker_0, worker_1 = _read(tmp_path / "worker_0.out"), _read(tmp_path / "worker_1.out")
    assert "will be retried in its run dir" in worker_0, worker_0
    spans = {row[0]: row[1:] for row in _sacct(array, "JobID,Start,End")}
    (start_0, end_0), (start_1, end_1) = spans[f"{array}_0"], spans[f"{array}_1"]
    assert max(start_0, start_1) < min(end_0, end_1), spans  # the two workers ran side by side
    assert datetime.fromisoformat(end_0) < datetime.fromisoformat(end_1)
    trials = load_study(study).get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    summary = [(t.number, t.state.name, t.user_attrs.get("run_dir")) for t in trials]
    assert len(finished) == 3 and len({t.user_attrs["run_dir"] for t in finished}) == 3, summary
    run_dir = str(stopped_run.relative_to(study))
    assert [t.user_attrs["run_dir"] for t in failed] == [run_dir], summary
    retry = next((t for t in finished if t.system_attrs.get("failed_trial") == failed[0].number),
                 None)
    assert retry is not None and retry.user_attrs["run_dir"] == run_dir, summary
    assert f"trial {retry.number} ({run_dir}): complete" in worker_1, worker_1
    assert "resuming from" in (stopped_run / "console.log").read_text()
