import json
import signal
import subprocess
import time
from functools import partial

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT

from pixel_dqn.agents.reinforce import (
    ReinforceAgent,
    discount_and_normalize_rewards,
    discount_rewards,
)
from pixel_dqn.checkpoint import CheckpointStore
from pixel_dqn.config import CNNConfig, MLPConfig
from pixel_dqn.networks import build_cnn, build_mlp, build_network
from pixel_dqn.policies import push_toward_tilt
from pixel_dqn.reproducibility import run_differences
from pixel_dqn.run_directory import CHECKPOINT_DIR, train_command
from pixel_dqn.trainers import train

REINFORCE = ("env=cartpole_state", "model=policy_mlp", "trainer=reinforce")


def test_discount_rewards_matches_the_notebook():
    np.testing.assert_allclose(discount_rewards([10, 0, -50], 0.8), [-22, -40, -50])


def test_discount_and_normalize_rewards_matches_the_notebook():
    result = discount_and_normalize_rewards([[10, 0, -50], [10, 20]], 0.8)
    np.testing.assert_allclose(result[0], [-0.28435071, -0.86597718, -1.18910299], rtol=1e-6)
    np.testing.assert_allclose(result[1], [1.26665318, 1.0727777], rtol=1e-6)


def _per_step_tape_gradient(model, obs, actions, advantages):
    """The notebook's way: a tape per step, then the advantage-weighted mean of the gradients."""
    per_step = []
    for o, a in zip(obs, actions, strict=True):
        with tf.GradientTape() as tape:
            left = model(o[np.newaxis])
            target = tf.constant([[1.0]]) - float(a)
            loss = tf.reduce_mean(keras.losses.binary_crossentropy(target, left))
        per_step.append(tape.gradient(loss, model.trainable_variables))
    return [tf.reduce_mean([adv * grads[i] for adv, grads in zip(advantages, per_step,
                                                                  strict=True)], axis=0)
            for i in range(len(model.trainable_variables))]


@pytest.mark.parametrize("pixels", [False, True], ids=["state", "pixels"])
def test_batched_gradient_equals_the_per_step_tape_gradient(pixels):
    rng = np.random.default_rng(0)
    if pixels:
        model = CNNConfig(obs_mode="diff", gray=True, filters=[4], kernel_sizes=[4], strides=[2],
                          dense_sizes=[8])
        build = partial(build_cnn, model, (2, 20, 30), 2, head="policy")
        obs = rng.integers(0, 255, (23, 2, 20, 30), dtype=np.uint8)
    else:
        model = MLPConfig(hidden_sizes=[5], activation="elu", layer_norm=False)
        build = partial(build_mlp, model, (4,), 2, head="policy")
        obs = rng.normal(size=(23, 4)).astype(np.float32)
    agent = ReinforceAgent(build, learning_rate=0.01)
    actions = rng.integers(0, 2, 23).astype(np.float32)
    advantages = np.concatenate(discount_and_normalize_rewards(
        [np.ones(10), np.ones(13)], 0.95)).astype(np.float32)
    batched, _ = agent.gradients(tf.constant(obs), tf.constant(actions), tf.constant(advantages))
    expected = _per_step_tape_gradient(agent.policy, obs, actions, advantages)
    for b, e in zip(batched, expected, strict=True):
        np.testing.assert_allclose(b.numpy(), e.numpy(), rtol=1e-4, atol=1e-7)
    assert any(np.abs(b.numpy()).max() > 1e-4 for b in batched)  # not trivially zero


def test_policy_network_is_the_notebooks(config):
    cfg = config("env=cartpole_state", "model=policy_mlp", "trainer=reinforce")
    model = build_network(cfg.model, (4,), 2, head="policy")  # as the trainer builds it
    assert [layer.units for layer in model.layers[1:]] == [5, 1]
    assert model.layers[-1].activation.__name__ == "sigmoid"
    assert model(np.zeros((3, 4), np.float32)).shape == (3, 1)


def test_heuristic_pushes_toward_the_tilt():
    states = np.array([[0.0, 0.0, -0.1, 0.0],   # leaning left -> left
                       [0.0, 0.0, 0.1, 0.0],    # leaning right -> right
                       [2.0, -1.0, -0.01, 3.0],  # only the angle matters
                       [0.0, 0.0, 0.0, -5.0]])  # upright counts as right (angle >= 0)
    np.testing.assert_array_equal(push_toward_tilt(states), [0, 1, 0, 1])


@pytest.mark.slow
def test_reinforce_smoke_run_learns_a_little_and_writes_the_run_dir(config, tmp_path):
    cfg = config(*REINFORCE, "trainer.updates=12", "eval.every_steps=1000",
                         "eval.episodes=3", "eval.final_episodes=5")
    result = train(cfg, tmp_path)
    assert len(result.returns) == 5 and max(result.lengths) <= 200  # capped at 200 steps
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    train_rows = [r for r in rows[1:] if r.startswith("train")]
    assert len(train_rows) == 12 * 10  # one row per episode, 10 episodes per update
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert {"play", "train_step"} <= set(timing["phases"])
    assert (tmp_path / "model.keras").is_file() and any((tmp_path / "tb").iterdir())


@pytest.mark.slow
def test_reinforce_on_pixels_runs(config, tmp_path):
    cfg = config("env=cartpole_pixels", "model=cnn", "trainer=reinforce",
                         "trainer.updates=2", "trainer.episodes_per_update=3",
                         "trainer.max_episode_steps=30", "model.filters=[4,8]",
                         "model.kernel_sizes=[5,5]", "model.strides=[2,2]",
                         "model.dense_sizes=[16]", "eval.final_episodes=2")
    result = train(cfg, tmp_path)
    assert len(result.returns) == 2 and max(result.lengths) <= 30


@pytest.mark.slow
def test_reinforce_sigterm_then_rerun_ends_identical(tmp_path):
    # 12 updates, about 7k env steps: the first checkpoint (800) lands early, the kill mid-run
    overrides = (*REINFORCE, "trainer.updates=12", "checkpoint.every_steps=800",
                 "eval.every_steps=1500", "eval.episodes=3", "eval.final_episodes=5",
                 "progress_interval_s=1000")

    def command(run_dir):
        return train_command(*overrides, run_dir=run_dir)

    subprocess.run(command(tmp_path / "ref"), cwd=ROOT, check=True, capture_output=True,
                   timeout=600)
    process = subprocess.Popen(command(tmp_path / "run"), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    store = CheckpointStore(tmp_path / "run" / CHECKPOINT_DIR, keep=2)
    while not store.paths():
        assert process.poll() is None, "finished before its first checkpoint"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
    out = subprocess.run(command(tmp_path / "run"), cwd=ROOT, check=True, capture_output=True,
                         text=True, timeout=600).stdout
    assert "resuming from" in out
    assert run_differences(tmp_path / "ref", tmp_path / "run") == []
