"""Keras Q-network builders and the compiled greedy policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from pixel_dqn.envs.pixels import pixel_state


def build_mlp(
    obs_shape: Sequence[int],
    num_actions: int,
    hidden_sizes: Sequence[int] = (256, 256),
    activation: str = "relu",
    dueling: bool = False,
) -> keras.Model:
    """Fully connected network mapping an observation to one Q-value per action."""
    inputs = keras.Input(shape=tuple(obs_shape), name="obs")
    x = keras.layers.Flatten()(inputs) if len(obs_shape) > 1 else inputs
    for i, units in enumerate(hidden_sizes):
        x = keras.layers.Dense(int(units), activation=activation, name=f"hidden_{i}")(x)
    return keras.Model(inputs, q_head(x, num_actions, dueling), name="mlp_q_network")


@keras.saving.register_keras_serializable(package="pixel_dqn")
class DuelingCombine(keras.layers.Layer):
    """``Q = V + A - mean_a(A)`` from a value (batch, 1) and advantages (batch, actions)."""

    def call(self, value, advantages):
        return value + advantages - keras.ops.mean(advantages, axis=-1, keepdims=True)


def q_head(features, num_actions: int, dueling: bool = False):
    """The output layer(s): Q-values directly, or a dueling value and advantage stream."""
    if not dueling:
        return keras.layers.Dense(num_actions, name="q_values")(features)
    value = keras.layers.Dense(1, name="value")(features)
    advantages = keras.layers.Dense(num_actions, name="advantages")(features)
    return DuelingCombine(name="q_values")(value, advantages)


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


@keras.saving.register_keras_serializable(package="pixel_dqn")
class PatchEmbedding(keras.layers.Layer):
    """A convolution whose stride equals its kernel, computed as one matrix product.

    Cuts the image into non-overlapping ``patch_size`` tiles (dropping rows and columns that
    do not fill a tile, as a VALID convolution would) and maps each tile's pixels through one
    shared dense layer. Same function as ``Conv2D(filters, patch_size, strides=patch_size)``,
    several times cheaper on a CPU, where small convolutions are slow.
    """

    def __init__(self, patch_size: Sequence[int], filters: int, activation: str = "relu",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.filters = int(filters)
        self.activation = keras.activations.get(activation)
        self._activation_name = activation

    def build(self, input_shape) -> None:
        height, width, channels = input_shape[-3:]
        ph, pw = self.patch_size
        self._grid = (height // ph, width // pw)
        self.dense = keras.layers.Dense(self.filters, name="tile")
        self.dense.build((None, ph * pw * channels))

    def call(self, images):
        ph, pw = self.patch_size
        rows, cols = self._grid
        channels = images.shape[-1]
        x = images[:, : rows * ph, : cols * pw, :]
        x = keras.ops.reshape(x, (-1, rows, ph, cols, pw, channels))
        x = keras.ops.transpose(x, (0, 1, 3, 2, 4, 5))
        x = keras.ops.reshape(x, (-1, rows, cols, ph * pw * channels))
        return self.activation(self.dense(x))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._grid, self.filters)

    def get_config(self) -> dict:
        return {**super().get_config(), "patch_size": list(self.patch_size),
                "filters": self.filters, "activation": self._activation_name}


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
) -> keras.Model:
    """Convolutional Q-network over uint8 patch stacks; the diff is formed inside the model.

    Convolutions are VALID; one whose stride equals its kernel size is computed as a
    ``PatchEmbedding`` (the same function, several times faster on a CPU).
    """
    inputs = keras.Input(shape=tuple(obs_shape), dtype="uint8", name="frames")
    x = PixelState(obs_mode, 1 if gray else 3, name="pixel_state")(inputs)
    for i, (units, kernel, stride) in enumerate(zip(filters, kernel_sizes, strides, strict=True)):
        if kernel == stride:
            x = PatchEmbedding((kernel, kernel), int(units), name=f"conv_{i}")(x)
        else:
            x = keras.layers.Conv2D(int(units), int(kernel), strides=int(stride),
                                    activation="relu", name=f"conv_{i}")(x)
    x = keras.layers.Flatten()(x)
    for i, units in enumerate(dense_sizes):
        x = keras.layers.Dense(int(units), activation="relu", name=f"dense_{i}")(x)
    return keras.Model(inputs, q_head(x, num_actions, dueling), name="cnn_q_network")


def greedy_policy(q_network: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``obs_batch -> argmax_a Q(obs, a)`` as one compiled graph call.

    The function is traced once for a fixed input signature (any batch size), so acting for one
    env or a hundred costs one graph call and never retraces.
    """
    spec = tf.TensorSpec([None, *q_network.input_shape[1:]], q_network.inputs[0].dtype)

    @tf.function(input_signature=[spec])
    def act(obs: tf.Tensor) -> tf.Tensor:
        return tf.argmax(q_network(obs, training=False), axis=1, output_type=tf.int32)

    concrete = act.get_concrete_function()

    def policy(obs: np.ndarray) -> np.ndarray:
        return concrete(tf.convert_to_tensor(obs, dtype=spec.dtype)).numpy()

    return policy
