"""Keras Q-network builders and the compiled greedy policy."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pixel_dqn.config import OBS_MODES, CNNConfig, MLPConfig


def build_network(model: MLPConfig | CNNConfig, obs_shape: Sequence[int], num_actions: int,
                  head: str = "q") -> keras.Model:
    """The network a model config describes, for an env's observation shape and actions: one
    Q-value per action, or P(left) with ``head="policy"``."""
    builder = build_cnn if isinstance(model, CNNConfig) else build_mlp
    with dtype_policy(PRECISION_POLICIES[model.precision][1]):
        network = builder(model, obs_shape, num_actions, head)
    if network.outputs[0].dtype == "float32":
        return network
    # the losses, targets and argmax stay in float32: only the layers compute in bfloat16
    outputs = keras.layers.Activation("linear", dtype="float32", name="float32_outputs")(
        network.outputs[0])
    return keras.Model(network.inputs, outputs, name=network.name)


PRECISION_POLICIES = {"float32": ("float32", "float32"),
                      "mixed_bfloat16": ("mixed_bfloat16", "mixed_bfloat16"),
                      "mixed_bfloat16_convs": ("mixed_bfloat16", "float32")}
"""Per ``model.precision``: the Keras dtype policies of the convolutions and of the other
layers (the dense layers, their LayerNorm and the head)."""


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Keras's global dtype policy set to ``name`` while layers are built (each layer keeps
    the policy it was built with), and restored after."""
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def build_mlp(model: MLPConfig, obs_shape: Sequence[int], num_actions: int,
              head: str = "q") -> keras.Model:
    """Fully connected network: one Q-value per action, or P(left) with ``head="policy"``."""
    inputs = keras.Input(shape=tuple(obs_shape), name="obs")
    x = keras.layers.Flatten()(inputs) if len(obs_shape) > 1 else inputs
    for i, units in enumerate(model.hidden_sizes):
        x = dense_layer(x, int(units), model.activation, model.layer_norm, f"hidden_{i}")
    return keras.Model(inputs, output_head(x, num_actions, head, model.dueling),
                       name=f"mlp_{head}")


def dense_layer(x, units: int, activation: str, layer_norm: bool, name: str):
    """``Dense(units, activation)``, or with ``layer_norm`` a LayerNorm between the affine map
    and the activation."""
    if not layer_norm:
        return keras.layers.Dense(units, activation=activation, name=name)(x)
    x = keras.layers.Dense(units, name=name)(x)
    x = keras.layers.LayerNormalization(name=f"{name}_norm")(x)
    return keras.layers.Activation(activation, name=f"{name}_{activation}")(x)


@keras.saving.register_keras_serializable(package="pixel_dqn")
class DuelingCombine(keras.layers.Layer):
    """``Q = V + A - mean_a(A)`` from a value (batch, 1) and advantages (batch, actions)."""

    def call(self, value, advantages):
        return value + advantages - keras.ops.mean(advantages, axis=-1, keepdims=True)


HEADS = ("q", "policy")


def output_head(features, num_actions: int, head: str, dueling: bool):
    """Q-values (``q``, optionally dueling) or a two-action policy's P(left) (``policy``)."""
    if head == "q":
        return q_head(features, num_actions, dueling)
    if head != "policy":
        raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
    if num_actions != 2:
        raise ValueError(f"the policy head is a Bernoulli over two actions, not {num_actions}")
    return keras.layers.Dense(1, activation="sigmoid", name="left_probability")(features)


def q_head(features, num_actions: int, dueling: bool):
    """The output layer(s): Q-values directly, or a dueling value and advantage stream."""
    if not dueling:
        return keras.layers.Dense(num_actions, name="q_values")(features)
    value = keras.layers.Dense(1, name="value")(features)
    advantages = keras.layers.Dense(num_actions, name="advantages")(features)
    return DuelingCombine(name="q_values")(value, advantages)


def state_frame_weights(mode: str, frames: int) -> np.ndarray:
    """What the network sees of an observation's patches, as a (state slots, frames) matrix.

    Slot ``s`` of the state is ``sum_f weights[s, f] * patch_f / 255`` (slots in [0, 1] or
    [-1, 1]). ``diff``: newest - oldest; ``diff_current``: the newest patch, then that
    diff; ``stack``: every patch, oldest first. "Oldest" is ``diff_lag`` steps back: the middle
    patches of a diff observation get no weight.
    """
    if mode not in OBS_MODES:
        raise ValueError(f"unknown observation mode {mode!r}; valid: {', '.join(OBS_MODES)}")
    newest, diff = np.zeros(frames), np.zeros(frames)
    newest[-1] = diff[-1] = 1.0
    diff[0] -= 1.0
    rows = {"diff": [diff], "diff_current": [newest, diff], "stack": list(np.eye(frames))}[mode]
    return np.stack(rows).astype(np.float32)


def pixel_state(frames: np.ndarray, mode: str, channels: int = 1) -> np.ndarray:
    """The state, channels last, from observations (..., frames, H, W[, channels]): every slot
    of ``state_frame_weights`` with its colour channels, slot-major. Works on arrays and tensors.
    """
    ops = keras.ops
    x = ops.cast(frames, "float32") * (1.0 / 255.0)
    if channels == 1:
        x = ops.expand_dims(x, -1)  # (..., frames, H, W, 1)
    weights = state_frame_weights(mode, x.shape[-4])
    x = ops.einsum("sf,...fhwc->...hwsc", weights, x)
    lead = [-1 if d is None else d for d in x.shape[:-2]]
    return ops.reshape(x, (*lead, x.shape[-2] * x.shape[-1]))


@keras.saving.register_keras_serializable(package="pixel_dqn")
class PixelConv(keras.layers.Layer):
    """First layer of a pixel network: a ReLU convolution over the state of uint8 patch stacks.

    Its kernel is that of a ``Conv2D`` over ``pixel_state(frames)`` (same shape, initialiser and
    function), but the state is never formed: the state is linear in the patches, so its
    weights (``state_frame_weights``) are folded into the kernel and the convolution runs over
    the cast patches, transposed to channels: the state's slices, difference and concatenation
    are never run.
    """

    def __init__(self, obs_mode: str, channels: int, filters: int, kernel_size: int,
                 strides: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.obs_mode, self.channels = obs_mode, channels
        self.filters, self.kernel_size, self.strides = filters, kernel_size, strides

    def build(self, input_shape) -> None:
        self.frame_weights = state_frame_weights(self.obs_mode, input_shape[1])
        # a diff over k steps uses the oldest and newest patches only
        self.used_frames = np.flatnonzero(self.frame_weights.any(axis=0))
        slots = len(self.frame_weights)
        self.kernel = self.add_weight(
            (self.kernel_size, self.kernel_size, slots * self.channels, self.filters),
            initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight((self.filters,), initializer="zeros", name="bias")

    def compute_output_shape(self, input_shape):
        size = [(d - self.kernel_size) // self.strides + 1 for d in input_shape[2:4]]
        return (input_shape[0], *size, self.filters)

    def call(self, frames):
        ops, size, slots = keras.ops, self.kernel_size, len(self.frame_weights)
        if len(self.used_frames) < frames.shape[1]:
            frames = ops.take(frames, self.used_frames, axis=1)
        # scaled before the transpose: else TensorFlow's graph optimiser moves the cast after
        # it, and its byte transpose is far slower than its float one on a CPU
        x = ops.cast(frames, self.compute_dtype) * (1.0 / 255.0)
        if self.channels == 1:
            x = ops.expand_dims(x, -1)  # (batch, frames, H, W, channels)
        x = ops.transpose(x, (0, 2, 3, 1, 4))
        x = ops.reshape(x, (-1, *x.shape[1:3], x.shape[3] * x.shape[4]))
        kernel = ops.reshape(self.kernel, (size, size, slots, self.channels, self.filters))
        kernel = ops.einsum("sf,hwsco->hwfco", self.frame_weights[:, self.used_frames], kernel)
        kernel = ops.cast(ops.reshape(kernel, (size, size, -1, self.filters)), self.compute_dtype)
        outputs = ops.conv(x, kernel, strides=self.strides, padding="valid")
        return ops.relu(ops.add(outputs, ops.reshape(self.bias, (1, 1, 1, self.filters))))

    def get_config(self) -> dict:
        return {**super().get_config(), "obs_mode": self.obs_mode, "channels": self.channels,
                "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides}


def build_cnn(model: CNNConfig, obs_shape: Sequence[int], num_actions: int,
              head: str = "q") -> keras.Model:
    """Convolutional network over uint8 patch stacks (the diff is formed inside the model):
    one Q-value per action, or P(left) with ``head="policy"`` (``dueling`` then unused)."""
    inputs = keras.Input(shape=tuple(obs_shape), dtype="uint8", name="frames")
    x = inputs
    layers = zip(model.filters, model.kernel_sizes, model.strides, strict=True)
    with dtype_policy(PRECISION_POLICIES[model.precision][0]):
        for i, (units, kernel, stride) in enumerate(layers):
            if i == 0:
                x = PixelConv(model.obs_mode, 1 if model.gray else 3, int(units), int(kernel),
                              int(stride), name="conv_0")(x)
            else:
                x = keras.layers.Conv2D(int(units), int(kernel), strides=int(stride),
                                        activation="relu", name=f"conv_{i}")(x)
        x = keras.layers.Flatten()(x)
    for i, units in enumerate(model.dense_sizes):
        x = dense_layer(x, int(units), "relu", model.layer_norm, f"dense_{i}")
    return keras.Model(inputs, output_head(x, num_actions, head, model.dueling),
                       name=f"cnn_{head}")


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
