"""Keras Q-network builders and the compiled greedy policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pixel_dqn.envs.pixels import OBS_MODES


def build_mlp(
    obs_shape: Sequence[int],
    num_actions: int,
    hidden_sizes: Sequence[int] = (256, 256),
    activation: str = "relu",
    dueling: bool = False,
    head: str = "q",
) -> keras.Model:
    """Fully connected network: one Q-value per action, or P(left) with ``head="policy"``."""
    inputs = keras.Input(shape=tuple(obs_shape), name="obs")
    x = keras.layers.Flatten()(inputs) if len(obs_shape) > 1 else inputs
    for i, units in enumerate(hidden_sizes):
        x = keras.layers.Dense(int(units), activation=activation, name=f"hidden_{i}")(x)
    return keras.Model(inputs, output_head(x, num_actions, head, dueling), name=f"mlp_{head}")


@keras.saving.register_keras_serializable(package="pixel_dqn")
class DuelingCombine(keras.layers.Layer):
    """``Q = V + A - mean_a(A)`` from a value (batch, 1) and advantages (batch, actions)."""

    def call(self, value, advantages):
        return value + advantages - keras.ops.mean(advantages, axis=-1, keepdims=True)


HEADS = ("q", "policy")


def output_head(features, num_actions: int, head: str = "q", dueling: bool = False):
    """Q-values (``q``, optionally dueling) or a two-action policy's P(left) (``policy``)."""
    if head == "q":
        return q_head(features, num_actions, dueling)
    if head != "policy":
        raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
    if num_actions != 2:
        raise ValueError(f"the policy head is a Bernoulli over two actions, not {num_actions}")
    return keras.layers.Dense(1, activation="sigmoid", name="left_probability")(features)


def q_head(features, num_actions: int, dueling: bool = False):
    """The output layer(s): Q-values directly, or a dueling value and advantage stream."""
    if not dueling:
        return keras.layers.Dense(num_actions, name="q_values")(features)
    value = keras.layers.Dense(1, name="value")(features)
    advantages = keras.layers.Dense(num_actions, name="advantages")(features)
    return DuelingCombine(name="q_values")(value, advantages)


def pixel_state(frames: np.ndarray, mode: str, channels: int = 1) -> np.ndarray:
    """What the network sees, channels last, from observations (..., frames, H, W[, channels]).

    ``diff``: current - previous, in [-1, 1]; ``diff_current``: the current patch in [0, 1] and
    that diff; ``stack``: every patch in [0, 1], oldest first. "previous" is the oldest patch of
    the observation (``diff_lag`` steps back; the middle ones are unused). Works on numpy arrays
    and tensors.
    """
    ops = keras.ops
    if mode not in OBS_MODES:
        raise ValueError(f"unknown observation mode {mode!r}; valid: {', '.join(OBS_MODES)}")
    if mode == "diff" and channels == 1:
        # the default, on the hot path: no transpose (a frame is already channels-last)
        diff = ops.cast(frames[..., -1, :, :], "float32") - ops.cast(frames[..., 0, :, :],
                                                                     "float32")
        return ops.expand_dims(diff * (1.0 / 255.0), -1)
    x = ops.cast(frames, "float32") * (1.0 / 255.0)
    if channels == 1:
        x = ops.expand_dims(x, -1)  # (..., frames, H, W, 1)
    if mode != "stack":
        current, previous = x[..., -1:, :, :, :], x[..., :1, :, :, :]
        x = current - previous if mode == "diff" else ops.concatenate(
            [current, current - previous], axis=-4)
    # (..., frames, H, W, C) -> (..., H, W, frames * C): frames become channels, oldest first
    x = ops.moveaxis(x, -4, -2)
    lead = [-1 if d is None else d for d in x.shape[:-2]]
    return ops.reshape(x, (*lead, x.shape[-2] * x.shape[-1]))


@keras.saving.register_keras_serializable(package="pixel_dqn")
class PixelState(keras.layers.Layer):
    """First layer of a pixel network: uint8 patch stacks -> the state (see ``pixel_state``)."""

    def __init__(self, obs_mode: str, channels: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.obs_mode = obs_mode
        self.channels = channels

    def call(self, frames):
        return pixel_state(frames, self.obs_mode, self.channels)

    def get_config(self) -> dict:
        return {**super().get_config(), "obs_mode": self.obs_mode, "channels": self.channels}


def build_cnn(
    obs_shape: Sequence[int],
    num_actions: int,
    obs_mode: str = "diff",
    gray: bool = True,
    filters: Sequence[int] = (16, 32, 32),
    kernel_sizes: Sequence[int] = (5, 5, 5),
    strides: Sequence[int] = (2, 2, 2),
    dense_sizes: Sequence[int] = (256,),
    dueling: bool = False,
    head: str = "q",
) -> keras.Model:
    """Convolutional network over uint8 patch stacks (the diff is formed inside the model):
    one Q-value per action, or P(left) with ``head="policy"`` (``dueling`` then unused)."""
    inputs = keras.Input(shape=tuple(obs_shape), dtype="uint8", name="frames")
    x = PixelState(obs_mode, 1 if gray else 3, name="pixel_state")(inputs)
    for i, (units, kernel, stride) in enumerate(zip(filters, kernel_sizes, strides, strict=True)):
        x = keras.layers.Conv2D(int(units), int(kernel), strides=int(stride), activation="relu",
                                name=f"conv_{i}")(x)
    x = keras.layers.Flatten()(x)
    for i, units in enumerate(dense_sizes):
        x = keras.layers.Dense(int(units), activation="relu", name=f"dense_{i}")(x)
    return keras.Model(inputs, output_head(x, num_actions, head, dueling), name=f"cnn_{head}")


def load_q_network(path: Path) -> keras.Model:
    """Load a Q-network saved by training (this module registers its custom layers)."""
    return keras.models.load_model(path, compile=False)


def greedy_policy(q_network: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``obs_batch -> argmax_a Q(obs, a)`` as one compiled graph call.

    For a policy network (one output, P(left)) the greedy action is the more probable one.

    The function is traced once for a fixed input signature (any batch size), so acting for one
    env or a hundred costs one graph call and never retraces.
    """
    spec = tf.TensorSpec([None, *q_network.input_shape[1:]], q_network.inputs[0].dtype)

    @tf.function(input_signature=[spec])
    def act(obs: tf.Tensor) -> tf.Tensor:
        outputs = q_network(obs, training=False)
        if outputs.shape[-1] == 1:  # P(left) of a policy head
            return tf.cast(outputs[:, 0] < 0.5, tf.int32)
        return tf.argmax(outputs, axis=1, output_type=tf.int32)

    concrete = act.get_concrete_function()

    def policy(obs: np.ndarray) -> np.ndarray:
        return concrete(tf.convert_to_tensor(obs, dtype=spec.dtype)).numpy()

    return policy
