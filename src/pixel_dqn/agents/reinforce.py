"""REINFORCE (Williams 1992) as in the seed notebook, with one batched gradient per update.

The policy network outputs P(left) for a two-action env. An action is sampled from it; the
loss of a step is the binary cross-entropy between P(left) and the target ``1 - action`` (the
action taken is the "right answer"), and the update's gradient is the mean over every step of
every episode of the step's normalised discounted return times the gradient of its loss. That
mean is the gradient of ``mean(return_i * loss_i)``: one forward and backward pass over all the
collected steps, instead of a gradient tape per step as the notebook does (equal to float
rounding: tested).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from pixel_dqn.agents.variables import assign_arrays, variables_to_arrays


def discount_rewards(rewards: Sequence[float], gamma: float) -> np.ndarray:
    """Discounted returns from each step: ``G_t = r_t + gamma * G_{t+1}``."""
    discounted = np.array(rewards, dtype=np.float64)
    for step in range(len(discounted) - 2, -1, -1):
        discounted[step] += discounted[step + 1] * gamma
    return discounted


def discount_and_normalize_rewards(
    all_rewards: Sequence[Sequence[float]], gamma: float
) -> list[np.ndarray]:
    """Discounted returns of several episodes, normalised by the mean and std of them all."""
    all_discounted = [discount_rewards(rewards, gamma) for rewards in all_rewards]
    flat = np.concatenate(all_discounted)
    mean, std = flat.mean(), flat.std()
    # RL trap: one-step episodes only (std 0) would divide by zero; their advantages are all 0
    std = std if std > 0 else 1.0
    return [(discounted - mean) / std for discounted in all_discounted]


class ReinforceAgent:
    """Owns a Bernoulli policy network (output: P(left)) and its optimizer."""

    def __init__(
        self, build_policy_network: Callable[[], keras.Model], learning_rate: float
    ) -> None:
        self.policy = build_policy_network()
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        self.optimizer.build(self.policy.trainable_variables)
        spec = tf.TensorSpec([None, *self.policy.input_shape[1:]], self.policy.inputs[0].dtype)
        self._left_probability = tf.function(
            lambda obs: self.policy(obs, training=False)[:, 0], input_signature=[spec]
        ).get_concrete_function()
        # every update has a different number of steps: one trace for any batch size
        steps = tf.TensorSpec([None], tf.float32)
        self._update = tf.function(self._update_graph, input_signature=[spec, steps, steps])

    def left_probability(self, obs: np.ndarray) -> np.ndarray:
        """P(left) for a batch of observations (one compiled call)."""
        return self._left_probability(tf.convert_to_tensor(obs)).numpy()

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sample actions: right (1) when a uniform draw exceeds P(left), as the notebook does."""
        return (rng.random(len(obs)) > self.left_probability(obs)).astype(np.int32)

    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        """The more probable action for each observation (for evaluation)."""
        return (self.left_probability(obs) < 0.5).astype(np.int32)

    def update(self, obs: np.ndarray, actions: np.ndarray, advantages: np.ndarray) -> float:
        """One policy-gradient step on every collected step at once; returns the loss."""
        loss = self._update(tf.convert_to_tensor(obs),
                            tf.convert_to_tensor(actions, tf.float32),
                            tf.convert_to_tensor(advantages, tf.float32))
        return float(loss)

    def gradients(self, obs: tf.Tensor, actions: tf.Tensor, advantages: tf.Tensor) -> list:
        """The update's gradient: of the mean of advantage x cross-entropy(1 - action, P(left))."""
        with tf.GradientTape() as tape:
            loss = self._loss(obs, actions, advantages)
        return tape.gradient(loss, self.policy.trainable_variables), loss

    def _loss(self, obs, actions, advantages):
        left = self.policy(obs, training=True)
        targets = 1.0 - actions[:, None]  # the action taken is the target
        cross_entropy = keras.losses.binary_crossentropy(targets, left)
        return tf.reduce_mean(advantages * cross_entropy)

    def _update_graph(self, obs, actions, advantages):
        grads, loss = self.gradients(obs, actions, advantages)
        self.optimizer.apply_gradients(zip(grads, self.policy.trainable_variables, strict=True))
        return loss

    def state_dict(self) -> dict[str, np.ndarray]:
        """Policy weights and the optimizer's variables."""
        return variables_to_arrays(self._variable_groups())

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore a ``state_dict`` of an agent built the same way."""
        assign_arrays(self._variable_groups(), arrays)

    def _variable_groups(self) -> dict[str, list]:
        return {"policy": self.policy.variables, "optimizer": self.optimizer.variables}
