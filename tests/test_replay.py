import itertools

import numpy as np
import pytest
from conftest import make_buffer

from pixel_dqn.replay import ReplayBuffer
from pixel_dqn.sum_tree import SumTree


def _state_episode(buffer: ReplayBuffer, first: float, rewards: list[float],
                   terminal: bool) -> None:
    """One env-0 episode whose observations are [first, first + 1, ...] (4 equal floats)."""
    buffer.start_episodes([0], np.full((1, 4), first, np.float32))
    for i, reward in enumerate(rewards):
        last = i == len(rewards) - 1
        buffer.add([0], [i % 2], [reward], np.full((1, 4), first + i + 1, np.float32),
                   [terminal and last])


def _all_transitions(buffer: ReplayBuffer) -> dict[float, tuple]:
    batch = buffer.sample(4000)
    return {float(o[0]): (round(float(r), 5), float(n[0]), float(t), round(float(d), 5))
            for o, r, n, t, d in zip(batch.obs, batch.rewards, batch.next_obs, batch.terminated,
                                     batch.discounts, strict=True)}


def test_one_step_transitions_follow_the_episode_and_never_cross_a_reset():
    buffer = make_buffer(100, (4,), np.float32, np.random.default_rng(0))
    _state_episode(buffer, 0.0, [1.0, 1.0, 1.0], terminal=True)  # obs 0 1 2 3, 3 terminal
    _state_episode(buffer, 10.0, [1.0, 1.0], terminal=False)  # obs 10 11 12, then truncated
    _state_episode(buffer, 20.0, [1.0], terminal=False)  # still running
    assert len(buffer) == 6
    got = _all_transitions(buffer)
    assert got == {0.0: (1.0, 1.0, 0.0, 0.99), 1.0: (1.0, 2.0, 0.0, 0.99),
                   2.0: (1.0, 3.0, 1.0, 0.99), 10.0: (1.0, 11.0, 0.0, 0.99),
                   11.0: (1.0, 12.0, 0.0, 0.99), 20.0: (1.0, 21.0, 0.0, 0.99)}


def test_n_step_returns_by_hand_with_a_terminal_and_a_truncation_inside_the_window():
    gamma = 0.5
    buffer = make_buffer(100, (4,), np.float32, np.random.default_rng(0), n_step=3,
                          gamma=gamma)
    _state_episode(buffer, 0.0, [1.0, 2.0, 4.0, 8.0], terminal=True)  # 0..4, 4 is terminal
    _state_episode(buffer, 10.0, [1.0, 2.0], terminal=False)  # truncated after 12
    got = _all_transitions(buffer)
    # three full steps, bootstrapping from obs 3 with gamma^3
    assert got[0.0] == (1 + 0.5 * 2 + 0.25 * 4, 3.0, 0.0, gamma**3)
    assert got[1.0] == (2 + 0.5 * 4 + 0.25 * 8, 4.0, 1.0, gamma**3)  # ends on the terminal
    assert got[2.0] == (4 + 0.5 * 8, 4.0, 1.0, gamma**2)  # the episode ends inside the window
    assert got[3.0] == (8.0, 4.0, 1.0, gamma)
    # truncation: the sum stops at the episode's end and bootstraps from its last observation
    assert got[10.0] == (1 + 0.5 * 2, 12.0, 0.0, gamma**2)
    assert got[11.0] == (2.0, 12.0, 0.0, gamma)


def test_frame_stacks_are_rebuilt_from_single_frames_with_the_reset_frame_repeated():
    history = 3
    buffer = make_buffer(50, (history, 2, 2), np.uint8, np.random.default_rng(0),
                          history=history)
    # what PixelObservation produces: the reset patch fills the history, then it shifts
    frames = [np.full((2, 2), value, np.uint8) for value in (5, 6, 7, 8, 9)]
    obs = np.stack([frames[0]] * history)
    buffer.start_episodes([0], obs[None])
    seen = [obs]
    for frame in frames[1:]:
        obs = np.concatenate([obs[1:], frame[None]])
        buffer.add([0], [1], [1.0], obs[None], [False])
        seen.append(obs)
    batch = buffer.sample(500)
    pairs = {(o.tobytes(), n.tobytes()) for o, n in zip(batch.obs, batch.next_obs, strict=True)}
    assert pairs == {(a.tobytes(), b.tobytes()) for a, b in itertools.pairwise(seen)}
    assert batch.obs.shape == (500, history, 2, 2) and batch.obs.dtype == np.uint8


def test_several_envs_keep_separate_streams_and_wrap_around():
    buffer = make_buffer(8, (4,), np.float32, np.random.default_rng(0), num_envs=2)
    buffer.start_episodes([0, 1], np.array([[0.0] * 4, [100.0] * 4], np.float32))
    for step in range(1, 10):  # 4 slots per env: the oldest are overwritten
        next_obs = np.array([[step] * 4, [100.0 + step] * 4], np.float32)
        buffer.add([0, 1], [0, 1], [step, -step], next_obs, [False, False])
    got = _all_transitions(buffer)
    assert sorted(got) == [6.0, 7.0, 8.0, 106.0, 107.0, 108.0]
    assert all(next_obs == obs + 1 for obs, (_, next_obs, _, _) in got.items())


def test_replay_stores_one_byte_per_pixel_per_step():
    """40x90 gray frames: 100k env steps must fit in 0.4 GB, whatever the stack depth."""
    for history in (2, 4):
        buffer = make_buffer(1000, (history, 40, 90), np.uint8, np.random.default_rng(0),
                              num_envs=2, history=history, prioritized=True)
        assert buffer.bytes_per_step < 3700
        assert buffer.bytes_per_step * 100_000 <= 0.4e9


def test_sampling_is_reproducible_from_the_generator():
    samples = []
    for seed in (7, 7, 8):
        buffer = make_buffer(100, (4,), np.float32, np.random.default_rng(seed))
        _state_episode(buffer, 0.0, list(np.arange(50.0)), terminal=False)
        samples.append(buffer.sample(32).rewards)
    np.testing.assert_array_equal(samples[0], samples[1])
    assert not np.array_equal(samples[0], samples[2])


def test_fused_sampling_adds_a_leading_axis():
    buffer = make_buffer(100, (4,), np.float32, np.random.default_rng(0))
    _state_episode(buffer, 0.0, [1.0] * 20, terminal=False)
    batch = buffer.sample(8, num_batches=3)
    assert batch.obs.shape == (3, 8, 4) and batch.actions.shape == (3, 8)
    assert batch.actions.dtype == np.int32 and batch.weights.shape == (3, 8)
    with pytest.raises(ValueError, match="empty"):
        make_buffer(10, (4,), np.float32, np.random.default_rng(0)).sample(2)


def test_sum_tree_samples_in_proportion_and_follows_updates():
    tree = SumTree(5)
    tree.update(np.arange(5), [1.0, 0.0, 3.0, 0.0, 4.0])
    assert tree.total == pytest.approx(8.0)
    np.testing.assert_array_equal(tree.find([0.0, 0.99, 1.0, 3.99, 4.0, 7.99]), [0, 0, 2, 2, 4, 4])
    counts = np.bincount(tree.sample(80_000, np.random.default_rng(0)), minlength=5)
    np.testing.assert_allclose(counts / counts.sum(), [1 / 8, 0, 3 / 8, 0, 4 / 8], atol=0.01)
    tree.update([4, 1], [0.0, 2.0])
    assert tree.total == pytest.approx(6.0)
    counts = np.bincount(tree.sample(60_000, np.random.default_rng(1)), minlength=5)
    np.testing.assert_allclose(counts / counts.sum(), [1 / 6, 2 / 6, 3 / 6, 0, 0], atol=0.01)
    with pytest.raises(ValueError, match="non-negative"):
        tree.update([0], [-1.0])


def test_prioritized_replay_prefers_large_errors_and_weights_correct_for_it():
    buffer = make_buffer(100, (4,), np.float32, np.random.default_rng(0), prioritized=True,
                          alpha=1.0, priority_eps=1e-6)
    _state_episode(buffer, 0.0, [1.0] * 10, terminal=False)
    batch = buffer.sample(10)
    assert np.all(batch.weights == 1.0)  # new transitions share the largest priority
    errors = np.where(batch.obs[:, 0] == 3.0, 9.0, 1.0)  # transition 3 has a large TD error
    buffer.update_priorities(batch.indices, errors)
    sample = buffer.sample(1000, beta=1.0)
    share = np.mean(sample.obs[:, 0] == 3.0)
    assert share == pytest.approx(9 / 18, abs=0.05)  # priority 9 against 9 others of 1
    heavy = sample.weights[sample.obs[:, 0] == 3.0]
    light = sample.weights[sample.obs[:, 0] != 3.0]
    np.testing.assert_allclose(heavy, 1 / 9, rtol=1e-4)  # (N P)^-1, over the batch maximum
    np.testing.assert_allclose(light, 1.0, rtol=1e-4)
    assert np.all(buffer.sample(100, beta=0.0).weights == 1.0)


def test_sum_tree_sums_stay_consistent_under_repeated_batched_updates():
    rng = np.random.default_rng(0)
    tree = SumTree(37)
    values = np.zeros(37)
    for _ in range(50):
        indices = rng.integers(0, 37, size=16)  # with repeats
        priorities = rng.random(16)
        tree.update(indices, priorities)
        for index, priority in zip(indices, priorities, strict=True):
            values[index] = priority
        np.testing.assert_allclose(tree.get(np.arange(37)), values)
        assert tree.total == pytest.approx(values.sum())


def test_length_counts_transitions_not_reset_frames_as_the_ring_wraps():
    buffer = make_buffer(6, (4,), np.float32, np.random.default_rng(0))
    _state_episode(buffer, 0.0, [1.0, 1.0], terminal=True)  # slots: reset, t, t
    assert len(buffer) == 2
    _state_episode(buffer, 10.0, [1.0, 1.0, 1.0], terminal=False)  # reset + 3: wraps by 1
    assert len(buffer) == 5  # the first episode's reset frame was overwritten, not a transition
    _state_episode(buffer, 20.0, [1.0], terminal=False)  # overwrites two transitions
    assert len(buffer) == 4
