import keras
import numpy as np
import pytest
import tensorflow as tf

from pixel_dqn.agents.optimizers import OPTIMIZER_CLASSES, FusedAdam
from pixel_dqn.config import OPTIMIZERS, MLPConfig
from pixel_dqn.networks import build_mlp


def _train(optimizer_class, steps: int = 3) -> list[np.ndarray]:
    keras.utils.set_random_seed(0)
    model = build_mlp(MLPConfig(hidden_sizes=[16]), (4,), 2)
    schedule = keras.optimizers.schedules.PolynomialDecay(1e-2, 10, 1e-3)
    optimizer = optimizer_class(learning_rate=schedule, epsilon=1e-7, global_clipnorm=1.0)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        obs = rng.normal(size=(32, 4)).astype(np.float32)
        targets = rng.normal(size=(32, 2)).astype(np.float32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(obs) - targets) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    return [np.asarray(v) for v in [*model.trainable_variables, *optimizer.variables]]


def test_fused_adam_is_keras_adam_up_to_rounding():
    keras_state, fused_state = _train(keras.optimizers.Adam), _train(FusedAdam)
    assert len(keras_state) == len(fused_state)  # the same variables: checkpoints carry over
    for expected, actual in zip(keras_state, fused_state, strict=True):
        # Adam moves a weight ~1e-2 a step here: 1e-6 is rounding, a wrong term is not
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    untrained = _train(FusedAdam, steps=0)
    assert not np.allclose(fused_state[0], untrained[0])  # it did train


def test_fused_adam_refuses_what_it_does_not_implement():
    with pytest.raises(ValueError, match="amsgrad"):
        FusedAdam(amsgrad=True)


def test_every_optimizer_choice_has_its_class():
    """Validation accepts ``config.OPTIMIZERS``; the agent builds ``OPTIMIZER_CLASSES``."""
    assert tuple(OPTIMIZER_CLASSES) == OPTIMIZERS
    assert OPTIMIZER_CLASSES["adam"] is FusedAdam
