"""DQN agent: online and target Q-networks, epsilon-greedy acting, compiled fused updates."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from pixel_dqn.agents.optimizers import OPTIMIZER_CLASSES
from pixel_dqn.agents.variables import assign_arrays, variables_to_arrays
from pixel_dqn.config import DQNConfig
from pixel_dqn.networks import greedy_policy
from pixel_dqn.replay import Batch


def td_targets(
    rewards: tf.Tensor,
    terminated: tf.Tensor,
    next_q_target: tf.Tensor,
    next_q_online: tf.Tensor | None,
    discounts: float | tf.Tensor,
) -> tf.Tensor:
    """TD targets ``r + discount * (1 - terminated) * Q_target(s', a*)``.

    For n-step returns ``r`` is the discounted sum of up to n rewards and ``discount`` is
    ``gamma ** m`` for the m steps it covers (``gamma`` for one-step TD).

    With ``next_q_online`` (Double DQN) ``a*`` is the online network's argmax and the target
    network evaluates it; without, ``a*`` is the target network's own argmax (vanilla DQN).
    Only a true terminal zeroes the bootstrap: a time-limit truncation is stored with
    ``terminated = 0`` and bootstraps like any other step.
    """
    selector = next_q_target if next_q_online is None else next_q_online
    # Q-values are (batch, actions), or (seeds, batch, actions) for a seed stack
    next_actions = tf.argmax(selector, axis=-1, output_type=tf.int32)
    next_values = tf.gather(next_q_target, next_actions, axis=-1,
                            batch_dims=len(next_q_target.shape) - 1)
    return rewards + discounts * (1.0 - terminated) * next_values


def exploration_draws(n: int, epsilon: float, rng: np.random.Generator, num_actions: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Epsilon-greedy's draws for ``n`` envs: which explore, and the random action of each
    (drawn for all, in this order, so a run's stream of draws never depends on the network)."""
    explore = rng.random(n) < epsilon
    return explore, rng.integers(0, num_actions, size=n, dtype=np.int32)


class DQNAgent:
    """Owns the networks and the optimizer; ``act``, ``update -> metrics``, ``sync_target``."""

    def __init__(
        self,
        build_q_network: Callable[[], keras.Model],
        num_actions: int,
        hparams: DQNConfig,
        total_gradient_steps: int,
    ) -> None:
        self.hparams = hparams
        self.num_actions = num_actions
        self.online = build_q_network()
        self.target = build_q_network()
        self.target.set_weights(self.online.get_weights())
        self.averaged: keras.Model | None = None
        if hparams.eval_weight_average is not None:
            self.averaged = build_q_network()
            self.averaged.set_weights(self.online.get_weights())
        learning_rate: float | keras.optimizers.schedules.LearningRateSchedule
        learning_rate = hparams.learning_rate
        if hparams.final_learning_rate is not None:
            learning_rate = keras.optimizers.schedules.PolynomialDecay(
                hparams.learning_rate, max(total_gradient_steps, 1), hparams.final_learning_rate
            )
        self.optimizer = OPTIMIZER_CLASSES[hparams.optimizer](
            learning_rate=learning_rate,
            epsilon=hparams.optimizer_epsilon,
            global_clipnorm=hparams.max_grad_norm,
        )
        self.optimizer.build(self.online.trainable_variables)
        self._greedy = greedy_policy(self.online)
        self._greedy_eval = greedy_policy(self.evaluation_network)
        self._fused_update = tf.function(self._fused_update_graph, jit_compile=hparams.jit_compile)
        self._sync = tf.function(self._sync_graph)
        self._weights_sum = tf.function(
            lambda: tf.add_n([tf.reduce_sum(v) for v in self.online.trainable_variables]))
        self._tau = tf.constant(hparams.tau, tf.float32)

    @property
    def evaluation_network(self) -> keras.Model:
        """The network greedy evaluations use: the weight average if configured, else online."""
        return self.averaged if self.averaged is not None else self.online

    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        """Evaluation: argmax actions of ``evaluation_network`` (one compiled call)."""
        return self._greedy_eval(obs)

    def online_greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        """Argmax actions of the online network (the one acting), whatever evaluation uses."""
        return self._greedy(obs)

    def act(self, obs: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
        """Epsilon-greedy actions for a batch of observations, one per env."""
        explore, actions = exploration_draws(len(obs), epsilon, rng, self.num_actions)
        if explore.all():
            return actions  # skip the network call while exploring
        return np.where(explore, actions, self._greedy(obs)).astype(np.int32)

    def update(
        self, batches: Batch, sync_target: bool = False
    ) -> tuple[dict[str, float], np.ndarray]:
        """Run one gradient step per leading-axis entry of ``batches`` in a single graph call.

        All batches of a training phase are drawn before the first step; the buffer does not
        change within a phase, so this equals sampling before each step. With ``sync_target``
        the target update of ``sync_target()`` follows the last step inside the same call
        (a separate graph call costs as much as several gradient steps on a small CPU).
        Returns the mean loss and Q-value, and each sampled transition's TD error (same shape
        as ``batches.actions``) for prioritized replay.
        """
        loss, mean_q, td_errors = self._fused_update(
            tf.convert_to_tensor(batches.obs),
            tf.convert_to_tensor(batches.actions, tf.int32),
            tf.convert_to_tensor(batches.rewards, tf.float32),
            tf.convert_to_tensor(batches.next_obs),
            tf.convert_to_tensor(batches.terminated, tf.float32),
            tf.convert_to_tensor(batches.discounts, tf.float32),
            tf.convert_to_tensor(batches.weights, tf.float32),
            tf.constant(sync_target),
        )
        return {"loss": float(loss), "mean_q": float(mean_q)}, td_errors.numpy()

    def weights_sum(self) -> float:
        """The sum of the online network's weights: NaN or infinite iff a weight is.

        The loss alone does not show a poisoned weight: oneDNN's fused kernels map a NaN through
        ReLU to 0, so a layer of NaN weights can train on silently as a dead layer.
        """
        return float(self._weights_sum())

    def sync_target(self) -> None:
        """``target <- tau * online + (1 - tau) * target``; tau 1 is a hard copy."""
        self._sync()

    def state_dict(self) -> dict[str, np.ndarray]:
        """Online and target weights and the optimizer's variables (step count, moments)."""
        return variables_to_arrays(self._variable_groups())

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore a ``state_dict`` of an agent built with the same networks and optimizer."""
        assign_arrays(self._variable_groups(), arrays)

    def _variable_groups(self) -> dict[str, list]:
        groups = {"online": self.online.variables, "target": self.target.variables,
                  "optimizer": self.optimizer.variables}
        if self.averaged is not None:
            groups["averaged"] = self.averaged.variables
        return groups

    def _train_step(self, obs, actions, rewards, next_obs, terminated, discounts, weights):
        next_q_target = self.target(next_obs, training=False)
        next_q_online = self.online(next_obs, training=False) if self.hparams.double_dqn else None
        targets = tf.stop_gradient(
            td_targets(rewards, terminated, next_q_target, next_q_online, discounts)
        )
        with tf.GradientTape() as tape:
            q_values = self.online(obs, training=True)
            q_taken = tf.gather(q_values, actions, axis=1, batch_dims=1)
            td_errors = targets - q_taken
            # importance weights undo prioritized sampling's bias (all ones when uniform)
            loss = tf.reduce_mean(weights * huber(td_errors, self.hparams.huber_delta))
        variables = self.online.trainable_variables
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        if self.averaged is not None:
            decay = self.hparams.eval_weight_average
            for average, online in zip(self.averaged.variables, self.online.variables,
                                       strict=True):
                average.assign(decay * average + (1.0 - decay) * online)
        return loss, tf.reduce_mean(q_taken), td_errors

    def _fused_update_graph(self, obs, actions, rewards, next_obs, terminated, discounts,
                            weights, sync_target):
        steps = tf.shape(actions)[0]
        total_loss = tf.constant(0.0)
        total_q = tf.constant(0.0)
        all_td_errors = tf.TensorArray(tf.float32, size=steps, element_shape=actions.shape[1:])
        for i in tf.range(steps):
            loss, mean_q, td_errors = self._train_step(
                obs[i], actions[i], rewards[i], next_obs[i], terminated[i], discounts[i],
                weights[i]
            )
            total_loss += loss
            total_q += mean_q
            all_td_errors = all_td_errors.write(i, td_errors)
        if sync_target:
            self._sync_graph()
        count = tf.cast(steps, tf.float32)
        return total_loss / count, total_q / count, all_td_errors.stack()

    def _sync_graph(self):
        for target_var, online_var in zip(
            self.target.variables, self.online.variables, strict=True
        ):
            target_var.assign(self._tau * online_var + (1.0 - self._tau) * target_var)


def huber(errors: tf.Tensor, delta: float) -> tf.Tensor:
    """The Huber loss of each error: quadratic within ``delta``, linear beyond."""
    abs_errors = tf.abs(errors)
    quadratic = tf.minimum(abs_errors, delta)
    return 0.5 * quadratic**2 + delta * (abs_errors - quadratic)
