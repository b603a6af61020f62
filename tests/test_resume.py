"""Kill-safety end to end: real processes killed, rerun, and compared with uninterrupted runs."""

import errno
import json
import os
import signal
import subprocess
import time
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import PIXEL_SMOKE_OVERRIDES, ROOT, STATE
from omegaconf import OmegaConf

from pixel_dqn.agents.dqn import DQNAgent
from pixel_dqn.checkpoint import CheckpointStore
from pixel_dqn.reproducibility import run_differences
from pixel_dqn.run_directory import CHECKPOINT_DIR, train_command
from pixel_dqn.run_state import TrainingInterrupted
from pixel_dqn.stop_signals import StopSignals
from pixel_dqn.trainers import NonFiniteError, RunWriteError, train
from pixel_dqn.trainers.base import Trainer

# long enough (a few seconds of training) to be killed in the middle, checkpointing often
STATE_RUN = (*STATE, "total_steps=2000", "model.hidden_sizes=[32]", "trainer.learning_starts=500",
             "trainer.exploration_steps=1000", "checkpoint.every_steps=250", "checkpoint.keep=2",
             "eval.every_steps=1000", "eval.episodes=3", "eval.final_episodes=5",
             "progress_interval_s=1000")


def _command(run_dir, overrides=STATE_RUN):
    return train_command(*overrides, run_dir=run_dir)


def _run(run_dir, overrides=STATE_RUN):
    return subprocess.run(_command(run_dir, overrides), cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=True)


def _wait_for_checkpoint(run_dir, process, timeout=300):
    store = CheckpointStore(run_dir / CHECKPOINT_DIR, keep=2)
    deadline = time.monotonic() + timeout
    while not store.paths():
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _wait_for_training_past(run_dir, process, step, timeout=300):
    """Until metrics.csv has a row after env step ``step``: a signal then lands past the
    checkpoint written there (a stop at that very step would rightly write no second one)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = (run_dir / "metrics.csv").read_text().splitlines()[1:]
        if any(int(row.split(",")[1]) > step for row in rows):
            return
        assert process.poll() is None, "the run ended before the signal"
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference")
    _run(run_dir)
    return run_dir


@pytest.mark.slow
def test_a_run_killed_at_a_random_moment_resumes_identical(reference, tmp_path):
    """SIGKILL mid-run, at a random env step past the first checkpoint (the helper asserts the
    run is still going when it lands), then the same command finishes identical."""
    process = subprocess.Popen(_command(tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _wait_for_checkpoint(tmp_path, process)
    kill_after = int(np.random.default_rng().integers(300, 1600))  # of the run's 2000 steps
    _wait_for_training_past(tmp_path, process, kill_after)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL  # killed, not finished
    out = _run(tmp_path).stdout
    assert "resuming from" in out, f"killed past env step {kill_after}"
    assert run_differences(reference, tmp_path) == [], f"killed past env step {kill_after}"


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_then_the_rerun_finishes_identical(reference, tmp_path):
    process = subprocess.Popen(_command(tmp_path), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(tmp_path, process)
    before = {p.name for p in CheckpointStore(tmp_path / CHECKPOINT_DIR, keep=2).paths()}
    _wait_for_training_past(tmp_path, process, max(int(n.split("-")[1]) for n in before))
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM
    stopped = [line for line in stderr.splitlines() if line.startswith("stopped:")]
    assert len(stopped) == 1 and "SIGTERM at env step" in stopped[0]
    after = CheckpointStore(tmp_path / CHECKPOINT_DIR, keep=2).paths()
    step = int(stopped[0].split("env step ")[1].split(":")[0])
    assert after[-1].name == f"step-{step:010d}" and after[-1].name not in before
    assert not (tmp_path / "eval.json").exists()
    out = _run(tmp_path).stdout
    assert f"(env step {step})" in out
    assert run_differences(reference, tmp_path) == []


@pytest.mark.slow
def test_a_second_run_is_identical_and_rerunning_it_only_evaluates_again(reference, tmp_path):
    _run(tmp_path)
    assert run_differences(reference, tmp_path) == []  # the same seed, the same run
    rows = (tmp_path / "metrics.csv").read_text()
    last_step = json.loads((tmp_path / "timing.json").read_text())["env_steps"]
    out = _run(tmp_path).stdout
    assert "resuming from" in out and f"(env step {last_step})" in out
    assert (tmp_path / "metrics.csv").read_text() == rows
    assert json.loads((tmp_path / "eval.json").read_text())["returns"] == json.loads(
        (reference / "eval.json").read_text())["returns"]


@pytest.mark.slow
def test_resuming_with_a_different_config_is_refused_in_one_line(tmp_path):
    short = (*STATE_RUN, "total_steps=600", "trainer.jit_compile=false")
    _run(tmp_path, short)
    proc = subprocess.run(_command(tmp_path, (*short, "trainer.gamma=0.9")),
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "trainer.gamma=0.9" in errors[0]


@pytest.mark.slow
def test_pixel_runs_are_deterministic_and_resume_identical(tmp_path):
    """Also: the inter-op thread count changes nothing (run a: one; run b: one per core)."""
    overrides = (*PIXEL_SMOKE_OVERRIDES, "checkpoint.every_steps=150", "progress_interval_s=1000")
    _run(tmp_path / "a", (*overrides, "threads.inter_op=1"))
    process = subprocess.Popen(_command(tmp_path / "b", overrides), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_checkpoint(tmp_path / "b", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert "resuming from" in _run(tmp_path / "b", overrides).stdout
    assert run_differences(tmp_path / "a", tmp_path / "b") == []


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_nan_stops_training_naming_the_step_and_keeps_the_last_good_checkpoint(
    config, tmp_path, monkeypatch, jit_compile
):
    """NaN injection: a weight of the online network is poisoned before the 20th update."""
    real_update = DQNAgent.update
    calls = {"n": 0}

    def poisoned_update(self, batches, sync_target=False):
        calls["n"] += 1
        if calls["n"] == 20:
            kernel = self.online.trainable_variables[0]
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))
        return real_update(self, batches, sync_target)

    monkeypatch.setattr(DQNAgent, "update", poisoned_update)
    cfg = config(*STATE_RUN, "total_steps=1500", "checkpoint.every_steps=600",
                         f"trainer.jit_compile={jit_compile}", "trainer.train_freq=32",
                         "trainer.gradient_steps=32")
    with pytest.raises(NonFiniteError) as info:
        train(cfg, tmp_path)
    message = str(info.value)
    assert "\n" not in message
    # one update call per 32 env steps once learning starts at 500: the 20th is near 1100
    step = int(message.split("at env step ")[1].split(" ")[0])
    assert 1000 < step < 1200
    kept = CheckpointStore(tmp_path / CHECKPOINT_DIR, keep=2).paths()
    assert len(kept) == 1 and 600 <= int(kept[0].name.removeprefix("step-")) < step
    assert str(kept[0]) in message
    assert not (tmp_path / "model.keras").exists()


@pytest.mark.slow
def test_a_full_disk_stops_training_in_one_line_and_the_same_command_resumes(
    config, tmp_path, monkeypatch
):
    """"No space left on device" while writing the third checkpoint: the run stops naming the
    directory, the step and the last complete checkpoint, leaves no partial checkpoint, and
    the same config in the same directory resumes from it and finishes."""
    import pixel_dqn.checkpoint as checkpoint_module

    real_savez = checkpoint_module.np.savez
    calls = {"n": 0}

    def savez_until_the_disk_is_full(file, **arrays):
        calls["n"] += 1
        if calls["n"] == 3:
            file.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(file, **arrays)

    monkeypatch.setattr(checkpoint_module.np, "savez", savez_until_the_disk_is_full)
    overrides = (*STATE_RUN, "total_steps=1500", "checkpoint.every_steps=400")
    with pytest.raises(RunWriteError) as info:
        train(config(*overrides), tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "No space left on device" in message
    step = int(message.split("at env step ")[1].split(" ")[0])
    assert 1200 <= step < 1300
    store = CheckpointStore(tmp_path / CHECKPOINT_DIR, keep=2)
    kept = store.paths()
    assert [int(p.name.removeprefix("step-")) // 400 for p in kept] == [1, 2]
    assert str(kept[-1]) in message
    assert sorted(p.name for p in store.directory.iterdir()) == [p.name for p in kept]
    assert store.load_latest().path == kept[-1]  # the complete ones still verify

    monkeypatch.setattr(checkpoint_module.np, "savez", real_savez)  # space freed
    final = train(config(*overrides), tmp_path)
    assert final.mean > 0 and (tmp_path / "eval.json").is_file()


def _loop_without_checkpoints(step):
    """The part of a run that ``Trainer.after_iteration`` reads, with checkpoints off."""
    loop = SimpleNamespace(state=SimpleNamespace(step=step, next_checkpoint=None),
                           cfg=OmegaConf.create({"checkpoint": {"enabled": False}}))
    loop.checkpoint_if_due = lambda stop: Trainer.checkpoint_if_due(loop, stop)
    return loop


def test_a_stop_signal_stops_training_even_with_checkpoints_off():
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(TrainingInterrupted, match="SIGTERM at env step 7: no checkpoint"):
            Trainer.after_iteration(_loop_without_checkpoints(7), stop)


def test_a_launcher_signal_is_handed_on_to_the_launchers_handler_after_the_step():
    """submitit's SIGUSR2 handler requeues and exits; the run lets it run at the step's end."""
    calls = []

    def launcher_handler(signum, frame):
        calls.append(signum)
        raise SystemExit(144)

    previous = signal.signal(signal.SIGUSR2, launcher_handler)
    try:
        with StopSignals() as stop:
            os.kill(os.getpid(), signal.SIGUSR2)
            assert calls == [] and stop.signum == signal.SIGUSR2  # deferred to the step's end
            with pytest.raises(SystemExit) as exited:
                Trainer.after_iteration(_loop_without_checkpoints(7), stop)
        assert exited.value.code == 144 and calls == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)
