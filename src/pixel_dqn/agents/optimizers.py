"""Optimizers by config name; Adam runs TensorFlow's fused kernel."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


class FusedAdam(keras.optimizers.Adam):
    """Keras's Adam (same hyperparameters, variables and formula), one graph op per variable.

    Keras's Adam updates each variable with about twenty small graph ops; TensorFlow's
    ``ResourceApplyAdam`` does the same update in one, and on a small CPU every graph op costs
    its scheduling whatever its size. The results differ from ``keras.optimizers.Adam`` by float
    rounding only (tests/test_optimizers.py). Gradient clipping, the learning-rate schedule and
    the step counter stay Keras's; amsgrad, weight decay and EMA are not supported.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        if self.amsgrad or self.weight_decay or self.use_ema:
            raise ValueError("FusedAdam supports neither amsgrad, weight decay nor EMA")

    def _backend_update_step(self, grads, trainable_variables, learning_rate) -> None:
        step = ops.cast(self.iterations + 1, "float32")
        beta_1, beta_2 = ops.cast(self.beta_1, "float32"), ops.cast(self.beta_2, "float32")
        shared = {"beta1_power": ops.power(beta_1, step), "beta2_power": ops.power(beta_2, step),
                  "lr": ops.cast(learning_rate, "float32"), "beta1": beta_1, "beta2": beta_2,
                  "epsilon": ops.cast(self.epsilon, "float32")}
        for grad, variable in zip(grads, trainable_variables, strict=True):
            index = self._get_variable_index(variable)
            tf.raw_ops.ResourceApplyAdam(
                var=variable.value.handle, m=self._momentums[index].value.handle,
                v=self._velocities[index].value.handle, grad=ops.cast(grad, "float32"),
                **shared)


OPTIMIZER_CLASSES = {"adam": FusedAdam, "rmsprop": keras.optimizers.RMSprop}
"""The optimizer class of each ``trainer.optimizer`` choice (``pixel_dqn.config.OPTIMIZERS``)."""
