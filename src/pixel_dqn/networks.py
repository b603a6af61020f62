"""Keras Q-network builders and the compiled greedy policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf


def build_mlp(
    obs_shape: Sequence[int],
    num_actions: int,
    hidden_sizes: Sequence[int] = (256, 256),
    activation: str = "relu",
) -> keras.Model:
    """Fully connected network mapping an observation to one Q-value per action."""
    inputs = keras.Input(shape=tuple(obs_shape), name="obs")
    x = keras.layers.Flatten()(inputs) if len(obs_shape) > 1 else inputs
    for i, units in enumerate(hidden_sizes):
        x = keras.layers.Dense(int(units), activation=activation, name=f"hidden_{i}")(x)
    q_values = keras.layers.Dense(num_actions, name="q_values")(x)
    return keras.Model(inputs, q_values, name="mlp_q_network")


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
