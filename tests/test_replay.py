import numpy as np
import pytest

from pixel_dqn.replay import ReplayBuffer


def _fill(buffer: ReplayBuffer, start: int, count: int) -> None:
    values = np.arange(start, start + count, dtype=np.float32)
    buffer.add(
        obs=np.repeat(values[:, None], 4, axis=1),
        actions=values.astype(np.int64) % 2,
        rewards=values,
        next_obs=np.repeat(values[:, None] + 0.5, 4, axis=1),
        terminated=np.zeros(count, dtype=bool),
    )


def test_wraps_around_and_overwrites_the_oldest():
    buffer = ReplayBuffer(5, (4,), np.float32, np.random.default_rng(0))
    _fill(buffer, 0, 3)
    assert len(buffer) == 3
    _fill(buffer, 3, 4)  # 7 transitions into 5 slots: 0 and 1 are overwritten
    assert len(buffer) == 5
    batch = buffer.sample(200)
    assert set(batch.rewards.tolist()) == {2.0, 3.0, 4.0, 5.0, 6.0}
    np.testing.assert_array_equal(batch.obs[:, 0], batch.rewards)
    np.testing.assert_array_equal(batch.next_obs[:, 0], batch.rewards + 0.5)


def test_sample_shapes_and_dtypes():
    buffer = ReplayBuffer(100, (4,), np.float32, np.random.default_rng(0))
    _fill(buffer, 0, 50)
    batch = buffer.sample(8)
    assert batch.obs.shape == (8, 4) and batch.obs.dtype == np.float32
    assert batch.next_obs.shape == (8, 4) and batch.next_obs.dtype == np.float32
    assert batch.actions.shape == (8,) and batch.actions.dtype == np.int32
    assert batch.rewards.dtype == np.float32 and batch.terminated.dtype == np.float32
    fused = buffer.sample(8, num_batches=3)
    assert fused.obs.shape == (3, 8, 4) and fused.actions.shape == (3, 8)


def test_uint8_observations_keep_their_dtype():
    buffer = ReplayBuffer(10, (2, 3), np.uint8, np.random.default_rng(0))
    buffer.add(np.full((1, 2, 3), 255, np.uint8), np.array([1]), np.array([1.0]),
               np.zeros((1, 2, 3), np.uint8), np.array([True]))
    batch = buffer.sample(4)
    assert batch.obs.dtype == np.uint8 and batch.obs.max() == 255
    assert batch.terminated.tolist() == [1.0] * 4
    assert buffer.nbytes >= 2 * 10 * 6


def test_same_generator_seed_gives_the_same_batch():
    batches = []
    for seed in (7, 7, 8):
        buffer = ReplayBuffer(100, (4,), np.float32, np.random.default_rng(seed))
        _fill(buffer, 0, 100)
        batches.append(buffer.sample(32).rewards)
    np.testing.assert_array_equal(batches[0], batches[1])
    assert not np.array_equal(batches[0], batches[2])


def test_sampling_an_empty_buffer_is_an_error():
    buffer = ReplayBuffer(10, (4,), np.float32, np.random.default_rng(0))
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(4)
