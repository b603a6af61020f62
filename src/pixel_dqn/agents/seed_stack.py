"""Many seeds' DQN agents as one: stacked networks, Adam and targets, one graph call per phase.

``SeedStackAgent`` is ``S`` copies of ``DQNAgent`` (same losses, optimizer, target and weight
average) whose variables carry a leading seed axis, so that acting for every seed's envs is one
graph call and a training phase of every seed is one graph call over ops ``S`` times larger
(``pixel_dqn.stacked_networks``). Seeds stay independent: each has its own weights, Adam
moments and step count (hence learning rate), gradient clipping, target and average, and a seed
that has no training phase due is masked out of the update entirely.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from pixel_dqn.agents.dqn import huber, td_targets
from pixel_dqn.config import DQNConfig
from pixel_dqn.replay import Batch
from pixel_dqn.stacked_networks import StackedNetwork

ADAM_BETAS = (0.9, 0.999)  # keras.optimizers.Adam's defaults, which DQNAgent's Adam uses


class SeedStackAgent:
    """The DQN agents of ``S`` seeds in stacked variables; ``act``, ``update``, per-seed state.

    ``networks`` are the seeds' freshly built online networks (their weights are the stack's
    initial weights, so seed ``s`` starts where a single run of that seed starts).
    """

    def __init__(self, networks: Sequence[keras.Model], hparams: DQNConfig,
                 total_gradient_steps: int) -> None:
        if hparams.optimizer != "adam":
            raise ValueError(f"trainer.optimizer={hparams.optimizer}: a seed stack trains with "
                             f"adam only; run the seeds one per process for other optimizers")
        model = networks[0]
        if len(model.trainable_weights) != len(model.weights):
            raise ValueError(f"{model.name} has non-trainable weights: a seed stack cannot "
                             f"run it")
        self.hparams, self.seeds = hparams, len(networks)
        self.network = StackedNetwork(model)
        self.num_actions = int(model.output_shape[-1])
        self.obs_spec = (tuple(model.input_shape[1:]), model.inputs[0].dtype)
        initial = [np.stack([np.asarray(net.weights[i].numpy()) for net in networks])
                   for i in range(len(model.weights))]
        self.online = [tf.Variable(w, name=f"online_{i}") for i, w in enumerate(initial)]
        self.target = [tf.Variable(w, name=f"target_{i}") for i, w in enumerate(initial)]
        self.averaged = None
        if hparams.eval_weight_average is not None:
            self.averaged = [tf.Variable(w, name=f"averaged_{i}") for i, w in enumerate(initial)]
        self.moments = [tf.Variable(np.zeros_like(w)) for w in initial]
        self.second_moments = [tf.Variable(np.zeros_like(w)) for w in initial]
        self.iterations = tf.Variable(np.zeros(self.seeds, np.int64), name="iterations")
        self.version = 0  # counts updates and loads: a seed's Keras copies know if they are stale
        self._decay_steps = float(max(total_gradient_steps, 1))
        shape, dtype = self.obs_spec
        obs = tf.TensorSpec([self.seeds, None, *shape], dtype)
        self._greedy = tf.function(self._greedy_graph, input_signature=[obs])
        steps = [self.seeds, None, None]  # (seeds, gradient steps, batch)
        self._fused_update = tf.function(
            self._fused_update_graph, jit_compile=hparams.jit_compile, input_signature=[
                tf.TensorSpec([*steps, *shape], dtype), tf.TensorSpec(steps, tf.int32),
                tf.TensorSpec(steps, tf.float32), tf.TensorSpec([*steps, *shape], dtype),
                tf.TensorSpec(steps, tf.float32), tf.TensorSpec(steps, tf.float32),
                tf.TensorSpec(steps, tf.float32), tf.TensorSpec(steps[:2], tf.bool),
                tf.TensorSpec([self.seeds], tf.bool)])

    # -- acting and learning -------------------------------------------------------------------
    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        """Argmax actions of every seed's online network: ``(S, envs, *obs)`` -> ``(S, envs)``."""
        return self._greedy(tf.convert_to_tensor(obs, self.obs_spec[1])).numpy()

    def update(self, batches: Batch, active: np.ndarray, sync: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every seed's gradient steps of one training phase in one graph call.

        ``batches`` fields are ``(S, steps, batch, ...)``; seed ``s`` takes step ``k`` only if
        ``active[s, k]`` (its later steps are padding), and its target moves after its last step
        if ``sync[s]``. Returns per seed the mean loss and Q-value over its steps, its TD errors
        ``(S, steps, batch)`` and the sum of its online weights (NaN iff a weight is).
        """
        loss, mean_q, td_errors, weights_sum = self._fused_update(
            tf.convert_to_tensor(batches.obs), tf.convert_to_tensor(batches.actions, tf.int32),
            tf.convert_to_tensor(batches.rewards, tf.float32),
            tf.convert_to_tensor(batches.next_obs),
            tf.convert_to_tensor(batches.terminated, tf.float32),
            tf.convert_to_tensor(batches.discounts, tf.float32),
            tf.convert_to_tensor(batches.weights, tf.float32),
            tf.convert_to_tensor(active, tf.bool), tf.convert_to_tensor(sync, tf.bool))
        self.version += 1
        return loss.numpy(), mean_q.numpy(), td_errors.numpy(), weights_sum.numpy()

    # -- one seed's view -----------------------------------------------------------------------
    def seed_weights(self, seed: int, group: str = "online") -> list[np.ndarray]:
        """Seed ``seed``'s weights of ``online``, ``target`` or ``averaged``, Keras's order."""
        return [v[seed].numpy() for v in self._groups()[group]]

    def seed_state(self, seed: int) -> dict[str, np.ndarray]:
        """Everything of seed ``seed`` a checkpoint needs (weights, Adam's moments and step)."""
        return {f"{name}/{i}": v[seed].numpy()
                for name, group in self._groups().items() for i, v in enumerate(group)}

    def load_seed_state(self, seed: int, arrays: dict[str, np.ndarray]) -> None:
        """Restore a ``seed_state`` into seed ``seed``'s slice of the stack."""
        for name, group in self._groups().items():
            saved = sum(key.startswith(f"{name}/") for key in arrays)
            if saved != len(group):
                raise ValueError(f"{name}: {saved} saved arrays for {len(group)} variables")
            for i, variable in enumerate(group):
                variable[seed].assign(arrays[f"{name}/{i}"])
        self.version += 1

    def _groups(self) -> dict[str, list[tf.Variable]]:
        groups = {"online": self.online, "target": self.target, "adam_m": self.moments,
                  "adam_v": self.second_moments, "adam_iterations": [self.iterations]}
        if self.averaged is not None:
            groups["averaged"] = self.averaged
        return groups

    # -- graphs --------------------------------------------------------------------------------
    def _greedy_graph(self, obs):
        return tf.argmax(self.network(self.online, obs), axis=-1, output_type=tf.int32)

    def _fused_update_graph(self, obs, actions, rewards, next_obs, terminated, discounts,
                            weights, active, sync):
        steps = tf.shape(actions)[1]
        total_loss = tf.zeros(self.seeds)
        total_q = tf.zeros(self.seeds)
        all_td_errors = tf.TensorArray(tf.float32, size=steps)
        for k in tf.range(steps):
            loss, mean_q, td_errors = self._train_step(
                obs[:, k], actions[:, k], rewards[:, k], next_obs[:, k], terminated[:, k],
                discounts[:, k], weights[:, k], active[:, k])
            total_loss += loss
            total_q += mean_q
            all_td_errors = all_td_errors.write(k, td_errors)
        self._sync_graph(sync)
        count = tf.maximum(tf.reduce_sum(tf.cast(active, tf.float32), axis=1), 1.0)
        weights_sum = tf.add_n([tf.reduce_sum(tf.reshape(v, (self.seeds, -1)), axis=1)
                                for v in self.online])
        return (total_loss / count, total_q / count,
                tf.transpose(all_td_errors.stack(), (1, 0, 2)), weights_sum)

    def _train_step(self, obs, actions, rewards, next_obs, terminated, discounts, weights,
                    active):
        hparams, network = self.hparams, self.network
        if hparams.double_dqn:  # one pass of both networks over next_obs
            next_q_online, next_q_target = network.pair(self.online, self.target, next_obs)
        else:
            next_q_online, next_q_target = None, network(self.target, next_obs)
        targets = tf.stop_gradient(
            td_targets(rewards, terminated, next_q_target, next_q_online, discounts))
        with tf.GradientTape() as tape:
            tape.watch(self.online)
            q_values = network(self.online, obs)
            q_taken = tf.gather(q_values, actions, axis=-1, batch_dims=2)
            td_errors = targets - q_taken
            # importance weights undo prioritized sampling's bias (all ones when uniform)
            losses = tf.reduce_mean(weights * huber(td_errors, hparams.huber_delta), axis=1)
            # seeds share no weight: the gradient of the sum is each seed's own gradient
            loss = tf.reduce_sum(losses)
        grads = tape.gradient(loss, self.online)
        self._adam(grads, active)
        if self.averaged is not None:
            decay = hparams.eval_weight_average
            for average, online in zip(self.averaged, self.online, strict=True):
                average.assign(_where(active, decay * average + (1.0 - decay) * online,
                                      average))
        active_f = tf.cast(active, tf.float32)
        return losses * active_f, tf.reduce_mean(q_taken, axis=1) * active_f, td_errors

    def _adam(self, grads, active):
        """Keras's Adam with global-norm clipping and a linearly decaying learning rate, as
        ``DQNAgent``'s optimizer, per seed; seeds not ``active`` keep everything."""
        hparams = self.hparams
        norms = tf.sqrt(tf.add_n([tf.reduce_sum(tf.reshape(g * g, (self.seeds, -1)), axis=1)
                                  for g in grads]))
        clip = hparams.max_grad_norm
        # keras's clip_by_global_norm: a NaN norm makes every gradient NaN (and is caught)
        scale = clip * tf.minimum(1.0 / norms, 1.0 / clip)
        iterations = tf.cast(self.iterations, tf.float32)
        learning_rate = tf.fill([self.seeds], hparams.learning_rate)
        if hparams.final_learning_rate is not None:
            progress = tf.minimum(iterations, self._decay_steps) / self._decay_steps
            learning_rate = ((hparams.learning_rate - hparams.final_learning_rate)
                             * (1.0 - progress) + hparams.final_learning_rate)
        beta_1, beta_2 = ADAM_BETAS
        step = iterations + 1.0
        alpha = learning_rate * tf.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
        for grad, variable, m, v in zip(grads, self.online, self.moments, self.second_moments,
                                        strict=True):
            grad = grad * _per_seed(scale, grad)
            new_m = m + (grad - m) * (1.0 - beta_1)
            new_v = v + (grad * grad - v) * (1.0 - beta_2)
            new_variable = variable - _per_seed(alpha, grad) * new_m / (
                tf.sqrt(new_v) + hparams.optimizer_epsilon)
            m.assign(_where(active, new_m, m))
            v.assign(_where(active, new_v, v))
            variable.assign(_where(active, new_variable, variable))
        self.iterations.assign_add(tf.cast(active, tf.int64))

    def _sync_graph(self, sync):
        tau = self.hparams.tau
        for target, online in zip(self.target, self.online, strict=True):
            target.assign(_where(sync, tau * online + (1.0 - tau) * target, target))


def _per_seed(values: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """``(S,)`` values shaped to broadcast against a stacked ``(S, ...)`` tensor."""
    return tf.reshape(values, (-1, *[1] * (len(like.shape) - 1)))


def _where(mask: tf.Tensor, new: tf.Tensor, old: tf.Tensor) -> tf.Tensor:
    return tf.where(_per_seed(mask, new), new, old)
