"""The compute count behind the throughput table: multiply-adds per forward pass and FLOPs per
env step of DQN training."""

from dataclasses import replace

import keras
import pytest

from pixel_dqn.config import CNNConfig, DQNConfig, MLPConfig
from pixel_dqn.flops import dqn_work, forward_macs
from pixel_dqn.networks import build_network


def test_forward_macs_count_dense_and_convolution_kernels_at_every_position():
    mlp = build_network(MLPConfig(hidden_sizes=[4], layer_norm=False), (3,), 2)
    assert forward_macs(mlp) == 3 * 4 + 4 * 2  # LayerNorm, biases, activations not counted

    inputs = keras.Input((5, 6, 2))
    x = keras.layers.Conv2D(3, 3, strides=1)(inputs)  # 3x4 positions, 3x3x2 kernel, 3 filters
    outputs = keras.layers.Dense(4)(x)  # applied at each of the 12 positions
    model = keras.Model(inputs, outputs)
    assert forward_macs(model) == 12 * (3 * 3 * 2 * 3) + 12 * 3 * 4


def test_the_pixel_cnn_counts_its_folded_first_convolution():
    cnn = build_network(CNNConfig(obs_mode="diff_current", gray=True, filters=[4], kernel_sizes=[5],
                                  strides=[5], dense_sizes=[8], dueling=False, layer_norm=False),
                        (2, 40, 90), 2)
    # 8x18 positions of a 5x5 kernel over 2 frames, 4 filters; then 576 -> 8 -> 2
    assert forward_macs(cnn) == 8 * 18 * 5 * 5 * 2 * 4 + 8 * 18 * 4 * 8 + 8 * 2


def test_dqn_work_per_env_step_follows_the_replay_ratio_and_double_dqn():
    trainer = DQNConfig(batch_size=64, gradient_steps=4, train_freq=16, double_dqn=True)
    work = dqn_work(100, trainer)
    # per sample: three forward passes and a backward (two), 2 FLOPs per multiply-add
    assert work.learning_flops == pytest.approx(0.25 * 64 * 2 * 100 * 5)
    assert work.acting_flops == 200 and work.per_env_step == work.learning_flops + 200
    single = dqn_work(100, replace(trainer, double_dqn=False))
    assert single.learning_flops == pytest.approx(0.25 * 64 * 2 * 100 * 4)
