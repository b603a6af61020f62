from functools import partial

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_buffer

from pixel_dqn.agents.dqn import DQNAgent, td_targets
from pixel_dqn.config import DQNConfig, MLPConfig
from pixel_dqn.networks import build_mlp
from pixel_dqn.replay import ReplayBuffer


def test_td_targets_double_dqn_arithmetic_by_hand():
    rewards = tf.constant([1.0, 1.0, 0.5])
    terminated = tf.constant([0.0, 1.0, 0.0])  # row 0: truncated (stored as not terminal)
    next_q_target = tf.constant([[10.0, 20.0], [3.0, 4.0], [7.0, 2.0]])
    next_q_online = tf.constant([[5.0, 1.0], [0.0, 9.0], [1.0, 8.0]])
    gamma = 0.9
    double = td_targets(rewards, terminated, next_q_target, next_q_online, gamma).numpy()
    # Double DQN: online argmax picks action 0, 1, 1; the target net values them 10, 4, 2.
    np.testing.assert_allclose(double, [1.0 + 0.9 * 10.0, 1.0, 0.5 + 0.9 * 2.0])
    vanilla = td_targets(rewards, terminated, next_q_target, None, gamma).numpy()
    # Vanilla DQN: the target net's own max: 20, (terminal), 7.
    np.testing.assert_allclose(vanilla, [1.0 + 0.9 * 20.0, 1.0, 0.5 + 0.9 * 7.0])


def test_terminal_zeroes_the_bootstrap_and_truncation_does_not():
    next_q = tf.constant([[100.0, 50.0]])
    truncated_target = td_targets(tf.constant([1.0]), tf.constant([0.0]), next_q, next_q, 0.5)
    terminal_target = td_targets(tf.constant([1.0]), tf.constant([1.0]), next_q, next_q, 0.5)
    assert truncated_target.numpy()[0] == pytest.approx(51.0)
    assert terminal_target.numpy()[0] == pytest.approx(1.0)


def _agent(**overrides) -> DQNAgent:
    tf.keras.utils.set_random_seed(0)
    hparams = DQNConfig(**{"batch_size": 16, "jit_compile": False, **overrides})
    build = partial(build_mlp, MLPConfig(hidden_sizes=[8]), (4,), 2)
    return DQNAgent(build, 2, hparams, total_gradient_steps=100)


def _batches(num_batches: int = 2, batch_size: int = 16):
    buffer = make_buffer(64, (4,), np.float32, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    buffer.start_episodes([0], rng.normal(size=(1, 4)))
    for _ in range(63):
        buffer.add([0], rng.integers(0, 2, 1), rng.normal(size=1), rng.normal(size=(1, 4)), [False])
    return buffer.sample(batch_size, num_batches)


def _weights_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


def test_target_equals_online_after_sync_and_differs_after_an_update():
    agent = _agent(tau=1.0)  # a hard copy
    assert _weights_equal(agent.online, agent.target)
    metrics, td_errors = agent.update(_batches())
    assert td_errors.shape == (2, 16) and np.isfinite(td_errors).all()
    assert np.isfinite(metrics["loss"]) and np.isfinite(metrics["mean_q"])
    assert not _weights_equal(agent.online, agent.target)
    agent.sync_target()
    assert _weights_equal(agent.online, agent.target)
    agent.update(_batches(), sync_target=True)  # the fused path syncs after its last step
    assert _weights_equal(agent.online, agent.target)


def test_polyak_sync_moves_the_target_part_way():
    agent = _agent(tau=0.25)
    agent.update(_batches())
    before = [w.copy() for w in agent.target.get_weights()]
    agent.sync_target()
    for old, new, online in zip(before, agent.target.get_weights(), agent.online.get_weights(),
                                strict=True):
        np.testing.assert_allclose(new, 0.25 * online + 0.75 * old, rtol=1e-5, atol=1e-6)


def test_xla_and_graph_updates_agree():
    batches = _batches(num_batches=3)
    results = []
    for jit in (False, True):
        agent = _agent(jit_compile=jit)
        results.append((agent.update(batches)[0]["loss"], agent.online.get_weights()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-4)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_epsilon_greedy_acting():
    agent = _agent()
    obs = np.random.default_rng(0).normal(size=(256, 4)).astype(np.float32)
    greedy = agent.greedy_actions(obs)
    assert greedy.shape == (256,) and greedy.dtype == np.int32
    np.testing.assert_array_equal(agent.act(obs, 0.0, np.random.default_rng(0)), greedy)
    random_actions = agent.act(obs, 1.0, np.random.default_rng(0))
    assert set(np.unique(random_actions)) == {0, 1}
    half = agent.act(obs, 0.5, np.random.default_rng(0))
    agreement = np.mean(half == greedy)
    assert 0.6 < agreement < 0.9  # half greedy, and half of the random half agree by chance


def test_fused_update_equals_sequential_single_steps():
    batches = _batches(num_batches=3)
    fused = _agent()
    fused.update(batches)
    sequential = _agent()
    for i in range(3):
        sequential.update(type(batches)(*(field[i : i + 1] for field in batches)))
    assert int(fused.optimizer.iterations) == int(sequential.optimizer.iterations) == 3
    for a, b in zip(fused.online.get_weights(), sequential.online.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_zero_importance_weights_leave_the_network_unchanged():
    agent = _agent()
    batches = _batches(num_batches=1)
    before = [w.copy() for w in agent.online.get_weights()]
    agent.update(batches._replace(weights=np.zeros_like(batches.weights)))
    for old, new in zip(before, agent.online.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_td_errors_are_target_minus_q_of_the_taken_action():
    agent = _agent(double_dqn=False)
    batches = _batches(num_batches=1)
    q_next = agent.target(batches.next_obs[0]).numpy().max(axis=1)
    q_taken = np.take_along_axis(agent.online(batches.obs[0]).numpy(),
                                 batches.actions[0][:, None].astype(int), axis=1)[:, 0]
    targets = batches.rewards[0] + batches.discounts[0] * (1 - batches.terminated[0]) * q_next
    _, td_errors = agent.update(batches)
    np.testing.assert_allclose(td_errors[0], targets - q_taken, rtol=1e-5, atol=1e-5)


def _filled_buffer(seed: int = 0) -> ReplayBuffer:
    rng = np.random.default_rng(seed)
    buffer = make_buffer(200, (4,), np.float32, rng)
    buffer.start_episodes([0], rng.normal(size=(1, 4)).astype(np.float32))
    for _ in range(100):
        buffer.add([0], rng.integers(0, 2, 1), [1.0], rng.normal(size=(1, 4)).astype(np.float32),
                   [False])
    return buffer


def test_evaluation_uses_an_exponential_average_of_the_online_weights():
    agent, twin = _agent(eval_weight_average=0.9), _agent(eval_weight_average=0.9)
    batches = [_filled_buffer().sample(16, steps) for steps in (2, 1)]
    expected = [w.copy() for w in twin.online.get_weights()]
    for fused in batches:
        agent.update(fused)  # the average moves after every gradient step inside the call
        for i in range(len(fused.actions)):  # the twin takes the same steps one by one
            twin.update(type(fused)(*(a[i : i + 1] for a in fused)))
            expected = [0.9 * e + 0.1 * w
                        for e, w in zip(expected, twin.online.get_weights(), strict=True)]
    for got, want in zip(agent.averaged.get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert not np.allclose(agent.averaged.get_weights()[0], agent.online.get_weights()[0])
    assert agent.evaluation_network is agent.averaged
    obs = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(
        agent.greedy_actions(obs), np.argmax(agent.averaged(obs).numpy(), axis=1))
