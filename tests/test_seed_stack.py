"""Seed stacks: many seeds' networks, updates and runs as one program."""

import os
import signal
import subprocess
import time

import keras
import numpy as np
import pytest
from conftest import ROOT, STATE, STATE_SMOKE_OVERRIDES
from omegaconf import OmegaConf

from hydra_plugins.pixel_dqn_seed_stack.launcher import SeedStackLauncher, StackJob
from pixel_dqn.agents.dqn import DQNAgent
from pixel_dqn.agents.seed_stack import SeedStackAgent
from pixel_dqn.networks import build_network
from pixel_dqn.replay import Batch
from pixel_dqn.report import find_jobs
from pixel_dqn.reproducibility import run_differences
from pixel_dqn.run_directory import EVAL_FILE, MODEL_FILE, TIMING_FILE, train_command
from pixel_dqn.seed_groups import check_stackable
from pixel_dqn.stacked_networks import StackedNetwork
from pixel_dqn.trainers.seed_stack import train_seed_stack

PIXEL_SHAPE = (2, 40, 90)


def _networks(model_cfg, shape, seeds):
    keras.utils.set_random_seed(0)
    return [build_network(model_cfg, shape, 2) for _ in range(seeds)]


def _observations(rng, lead, shape):
    if len(shape) > 1:
        return rng.integers(0, 256, (*lead, *shape), dtype=np.uint8)
    return rng.normal(size=(*lead, *shape)).astype(np.float32)


def _batch(rng, lead, shape):
    obs = _observations(rng, lead, shape)
    return Batch(obs, rng.integers(0, 2, lead).astype(np.int32),
                 rng.normal(size=lead).astype(np.float32), _observations(rng, lead, shape),
                 (rng.random(lead) < 0.1).astype(np.float32), np.full(lead, 0.9, np.float32),
                 rng.uniform(0.5, 1.0, lead).astype(np.float32), None)


@pytest.mark.parametrize("overrides, shape", [((), PIXEL_SHAPE), (STATE, (4,))],
                         ids=["pixel-cnn", "state-mlp"])
def test_a_stack_computes_each_seeds_keras_network(config, overrides, shape):
    """Seed s of the stack (grouped convolutions, space to depth, batched products) gives its
    own Keras network's Q-values, alone and paired with another stack on the same input."""
    cfg = config(*overrides)
    networks = _networks(cfg.model, shape, 3)
    stacked = StackedNetwork(networks[0])
    weights = [np.stack([n.weights[i].numpy() for n in networks])
               for i in range(len(networks[0].weights))]
    obs = _observations(np.random.default_rng(0), (3, 5), shape)
    q = stacked(weights, obs).numpy()
    for s, network in enumerate(networks):
        np.testing.assert_allclose(q[s], network(obs[s]).numpy(), rtol=1e-4, atol=1e-5)
    reversed_weights = [w[::-1] for w in weights]
    q_a, q_b = stacked.pair(weights, reversed_weights, obs)
    np.testing.assert_allclose(q_a.numpy(), q, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q_b.numpy(), stacked(reversed_weights, obs).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_a_one_seed_stack_learns_as_dqn_agent_does(config):
    """Losses, TD errors and every weight (online, target, average) after three training phases
    of the default pixel learner agree with DQNAgent's to float rounding."""
    cfg = config()
    hparams = cfg.trainer
    keras.utils.set_random_seed(0)
    agent = DQNAgent(lambda: build_network(cfg.model, PIXEL_SHAPE, 2), 2, hparams, 1000)
    stack = SeedStackAgent([agent.online], hparams, 1000)
    rng = np.random.default_rng(1)
    for phase in range(3):
        batch = _batch(rng, (hparams.gradient_steps, 16), PIXEL_SHAPE)
        metrics, td_errors = agent.update(batch, sync_target=phase != 1)
        loss, mean_q, stack_td, weights_sum = stack.update(
            Batch(*[None if x is None else x[None] for x in batch]),
            np.ones((1, hparams.gradient_steps), bool), np.array([phase != 1]))
        assert loss[0] == pytest.approx(metrics["loss"], rel=1e-4)
        assert mean_q[0] == pytest.approx(metrics["mean_q"], rel=1e-4, abs=1e-5)
        np.testing.assert_allclose(stack_td[0], td_errors, rtol=1e-3, atol=1e-4)
        assert weights_sum[0] == pytest.approx(agent.weights_sum(), rel=1e-4)
    for group, model in (("online", agent.online), ("target", agent.target),
                         ("averaged", agent.averaged)):
        for ours, theirs in zip(stack.seed_weights(0, group), model.get_weights(), strict=True):
            np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5)


def test_a_seed_without_a_due_phase_keeps_everything(config):
    cfg = config(*STATE)
    stack = SeedStackAgent(_networks(cfg.model, (4,), 2), cfg.trainer, 1000)
    before = stack.seed_state(1)
    batch = _batch(np.random.default_rng(0), (2, 3, 8), (4,))
    stack.update(batch, np.array([[True] * 3, [False] * 3]), np.array([True, False]))
    after, first = stack.seed_state(1), stack.seed_state(0)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert first["adam_iterations/0"] == 3
    assert not np.array_equal(first["online/0"], before["online/0"])


def test_a_seeds_run_does_not_depend_on_the_other_seeds_of_its_stack(config, tmp_path):
    """Seed 0 beside seed 1 and beside seed 2: identical runs (metrics, final evaluation, every
    weight), each an ordinary run directory."""
    overrides = (*STATE_SMOKE_OVERRIDES, "progress_interval_s=1000")
    for neighbour in (1, 2):
        cfgs = [config(*overrides, f"seed={seed}") for seed in (0, neighbour)]
        results = train_seed_stack(cfgs, [tmp_path / f"with{neighbour}" / f"seed{seed}"
                                          for seed in (0, neighbour)])
        assert len(results) == 2
    for run_dir in (tmp_path / "with1" / "seed1", tmp_path / "with2" / "seed0"):
        assert all((run_dir / name).is_file() for name in (EVAL_FILE, MODEL_FILE, TIMING_FILE))
    assert run_differences(tmp_path / "with1" / "seed0", tmp_path / "with2" / "seed0") == []
    assert run_differences(tmp_path / "with1" / "seed1", tmp_path / "with2" / "seed2") != []


def test_rerunning_a_finished_stack_resumes_each_seed_at_its_end_and_evaluates_again(
        config, tmp_path):
    """Every seed resumes from the checkpoint at the end of its budget: nothing trains, the
    final evaluation is written again, identical."""
    cfgs = [config(*STATE_SMOKE_OVERRIDES, "progress_interval_s=1000", f"seed={seed}")
            for seed in (0, 1)]
    dirs = [tmp_path / f"seed{seed}" for seed in (0, 1)]
    first = [r.mean for r in train_seed_stack(cfgs, dirs)]
    (dirs[1] / EVAL_FILE).unlink()
    assert [r.mean for r in train_seed_stack(cfgs, dirs)] == first
    assert (dirs[1] / EVAL_FILE).is_file()


def test_configs_that_differ_beyond_their_seeds_are_refused_in_one_line(config):
    with pytest.raises(ValueError, match=r"these keys differ: trainer$"):
        check_stackable([config(*STATE, "seed=0"), config(*STATE, "seed=1",
                                                             "trainer.gamma=0.9")])
    with pytest.raises(ValueError, match=r"seeds must differ, got \[3, 3\]"):
        check_stackable([config(*STATE, "seed=3"), config(*STATE, "seed=3")])
    with pytest.raises(ValueError, match="trainer=dqn configs only"):
        check_stackable([config("trainer=reinforce", "env=cartpole_state",
                                "model=policy_mlp")])
    with pytest.raises(ValueError, match=r"float32 only, not model\.precision=mixed_bfloat16"):
        check_stackable([config(*STATE, "model.precision=mixed_bfloat16")])
    cfg = config(*STATE, "trainer.optimizer=rmsprop")
    with pytest.raises(ValueError, match="adam only"):
        SeedStackAgent(_networks(cfg.model, (4,), 1), cfg.trainer, 10)


def _job(seed, gamma=0.99):
    return StackJob(OmegaConf.to_yaml({"seed": seed, "trainer": {"gamma": gamma}}),
                    f"/sweep/{seed}", None)


def test_the_launcher_stacks_jobs_by_config_without_their_seed():
    launcher = SeedStackLauncher(stacks=2)
    one_arm = launcher.plan([_job(seed) for seed in range(5)])
    assert [[j.run_dir for j in stack] for stack in one_arm] == [
        [f"/sweep/{s}" for s in (0, 1, 2)], [f"/sweep/{s}" for s in (3, 4)]]
    two_arms = launcher.plan([_job(seed, gamma) for gamma in (0.9, 0.99) for seed in range(3)])
    assert [len(stack) for stack in two_arms] == [3, 3]
    assert {OmegaConf.create(j.config_yaml).trainer.gamma for j in two_arms[0]} == {0.9}
    capped = SeedStackLauncher(stacks=1, max_seeds=2).plan([_job(seed) for seed in range(5)])
    assert [len(stack) for stack in capped] == [2, 2, 1]


# a two-seed stack long enough to be killed mid-training (as tests/test_resume.py's state run)
STACK_RUN = (*STATE, "total_steps=2000", "model.hidden_sizes=[32]", "trainer.learning_starts=500",
             "trainer.exploration_steps=1000", "checkpoint.every_steps=250", "checkpoint.keep=2",
             "eval.every_steps=1000", "eval.episodes=3", "eval.final_episodes=5",
             "progress_interval_s=1000")


def _stack_command(sweep_dir):
    return train_command("seed=0,1", "hydra/launcher=seed_stack", "hydra.launcher.stacks=1",
                         *STACK_RUN, f"hydra.sweep.dir={sweep_dir}", multirun=True)


@pytest.fixture(scope="module")
def stack_reference(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("stack_reference")
    subprocess.run(_stack_command(sweep_dir), cwd=ROOT, capture_output=True, text=True,
                   timeout=600, check=True)
    return sweep_dir


def test_a_seed_multirun_through_the_launcher_reads_as_any_sweep(stack_reference):
    """Every job of `-m seed=0,1 hydra/launcher=seed_stack` has its own directory with the
    Hydra files and the run's, and the report reads the sweep."""
    jobs = find_jobs(stack_reference)
    assert sorted(job.seed for job in jobs) == [0, 1]
    for job_dir in stack_reference.glob("*-seed*"):
        assert (job_dir / ".hydra" / "overrides.yaml").is_file()
        assert (job_dir / EVAL_FILE).is_file()


@pytest.mark.slow
def test_a_killed_seed_stack_resumes_every_seed_identical(stack_reference, tmp_path):
    """SIGKILL to the sweep's process group (launcher and stack) mid-training, past every
    seed's first checkpoint; the same command resumes each seed and ends identical."""
    process = subprocess.Popen(_stack_command(tmp_path), cwd=ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_after = int(np.random.default_rng().integers(300, 1600))  # of the runs' 2000 steps
    deadline = time.monotonic() + 300
    while not _all_seeds_past(tmp_path, kill_after):
        assert process.poll() is None, "the stack ended before the kill"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    out = subprocess.run(_stack_command(tmp_path), cwd=ROOT, capture_output=True, text=True,
                         timeout=600, check=True).stdout
    assert out.count("resuming from") == 2, f"killed past env step {kill_after}"
    for job_dir in sorted(stack_reference.glob("*-seed*")):
        assert run_differences(job_dir, tmp_path / job_dir.name) == [], job_dir.name


def _all_seeds_past(sweep_dir, step):
    """Whether every seed has a checkpoint and a metrics row past ``step``."""
    job_dirs = list(sweep_dir.glob("*-seed*"))
    if len(job_dirs) != 2:
        return False
    for job_dir in job_dirs:
        metrics = job_dir / "metrics.csv"
        if not any((job_dir / "checkpoints").glob("step-*/MANIFEST.json")) or \
                not metrics.is_file():
            return False
        rows = metrics.read_text().splitlines()[1:]
        if not any(int(row.split(",")[1]) > step for row in rows):
            return False
    return True
