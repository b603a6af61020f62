"""DrQ's random shift: what it does to frames, and how the DQN loop uses it."""

import numpy as np
import pytest
from conftest import PIXEL_SMOKE_OVERRIDES, STATE_SMOKE_OVERRIDES

import pixel_dqn.trainers.dqn as dqn_trainer
from pixel_dqn.augmentation import random_shift
from pixel_dqn.config import ConfigError
from pixel_dqn.replay import ReplayBuffer
from pixel_dqn.reproducibility import run_differences
from pixel_dqn.trainers import train


def _frames(shape, seed=1):
    return np.random.default_rng(seed).integers(0, 200, shape, dtype=np.uint8)


def test_each_observation_is_its_edge_padded_self_cropped_at_one_offset():
    obs = _frames((3, 5, 2, 8, 11))  # (steps, batch, frames, height, width)
    pad = 2
    shifted = random_shift(obs, pad, np.random.default_rng(7))
    assert shifted.shape == obs.shape and shifted.dtype == np.uint8
    offsets = set()
    for sample, result in zip(obs.reshape(-1, 2, 8, 11), shifted.reshape(-1, 2, 8, 11),
                              strict=True):
        padded = np.pad(sample, [(0, 0), (pad, pad), (pad, pad)], mode="edge")
        found = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                 if np.array_equal(padded[:, dy:dy + 8, dx:dx + 11], result)]
        assert found, "not a crop of the padded observation"
        offsets.add(found[0])
    assert len(offsets) > 5  # the offsets vary between samples


def test_all_frames_of_an_observation_share_one_shift():
    first = _frames((400, 1, 6, 9), seed=2).astype(np.int16)
    obs = np.concatenate([first, first + 40], axis=1).astype(np.uint8)  # frame 1 = frame 0 + 40
    shifted = random_shift(obs, 3, np.random.default_rng(0)).astype(np.int16)
    assert (shifted[:, 1] - shifted[:, 0] == 40).all()  # the diff is unchanged by the shift


def test_shifts_cover_every_offset_and_rgb_channels_move_together():
    rgb = np.zeros((2000, 1, 7, 7, 3), np.uint8)
    rgb[:, :, 3, 3] = (10, 20, 30)  # one marked pixel in the centre
    shifted = random_shift(rgb, 1, np.random.default_rng(3), obs_ndim=4)
    where = np.argwhere(shifted[:, 0, :, :, 0] == 10)[:, 1:]
    assert len(where) == 2000  # the marked pixel moved, never out of the patch
    assert {tuple(p) for p in where} == {(y, x) for y in (2, 3, 4) for x in (2, 3, 4)}
    ys, xs = where.T
    assert (shifted[np.arange(2000), 0, ys, xs] == (10, 20, 30)).all()


def test_zero_pad_is_the_identity_and_draws_nothing():
    obs, rng = _frames((4, 2, 5, 5)), np.random.default_rng(0)
    assert random_shift(obs, 0, rng) is obs
    assert rng.integers(1 << 30) == np.random.default_rng(0).integers(1 << 30)


def _offset(raw, shifted, pad):
    """The (dy, dx) at which ``shifted`` is ``raw`` edge-padded and cropped, or None."""
    padded = np.pad(raw, [(0, 0), (pad, pad), (pad, pad)], mode="edge")
    height, width = raw.shape[1:]
    return next(((dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                 if np.array_equal(padded[:, dy:dy + height, dx:dx + width], shifted)), None)


@pytest.mark.slow
def test_the_dqn_loop_shifts_obs_and_next_obs_independently(config, tmp_path,
                                                            monkeypatch):
    sampled, trained = [], []
    original_sample, original_update = ReplayBuffer.sample, dqn_trainer.DQNAgent.update

    def recording_sample(self, *args, **kwargs):
        sampled.append(original_sample(self, *args, **kwargs))
        return sampled[-1]

    def recording_update(self, batches, sync_target=False):
        trained.append(batches)
        return original_update(self, batches, sync_target)

    monkeypatch.setattr(ReplayBuffer, "sample", recording_sample)
    monkeypatch.setattr(dqn_trainer.DQNAgent, "update", recording_update)
    pad = 3
    cfg = config(*PIXEL_SMOKE_OVERRIDES, f"trainer.augment_pad={pad}", "env.num_envs=2",
                         "checkpoint.enabled=false", "tensorboard=false")
    train(cfg, tmp_path)
    raw, shifted = sampled[-1], trained[-1]
    assert shifted.obs.dtype == np.uint8 and shifted.obs.shape == raw.obs.shape
    frames = raw.obs.shape[2:]
    pairs = []
    for key in ("obs", "next_obs"):
        originals = getattr(raw, key).reshape(-1, *frames)
        results = getattr(shifted, key).reshape(-1, *frames)
        offsets = [_offset(o, r, pad) for o, r in zip(originals, results, strict=True)]
        assert None not in offsets  # every observation is a shifted copy of the sampled one
        pairs.append(offsets)
    # independent draws: the observation and the next one are mostly shifted differently
    assert sum(a != b for a, b in zip(*pairs, strict=True)) > len(pairs[0]) // 2
    assert np.array_equal(shifted.actions, raw.actions)  # the rest of the batch is untouched


def test_bad_augment_pad_is_one_line_naming_the_key(config):
    with pytest.raises(ConfigError, match=r"trainer\.augment_pad=-1"):
        config(*PIXEL_SMOKE_OVERRIDES, "trainer.augment_pad=-1")


def test_augment_pad_changes_nothing_on_the_state(config, tmp_path):
    """One trainer config for both inputs: the 4-float state has no image to shift."""
    shifted, plain = tmp_path / "shifted", tmp_path / "plain"
    for pad, run_dir in ((2, shifted), (0, plain)):
        train(config(*STATE_SMOKE_OVERRIDES, f"trainer.augment_pad={pad}",
                     "checkpoint.enabled=false", "tensorboard=false"), run_dir)
    assert run_differences(shifted, plain) == []


@pytest.mark.slow
@pytest.mark.parametrize(("burst", "expected"), [(True, 100), (False, 72)])
def test_the_start_up_burst_switch_sets_how_many_gradient_steps_a_run_takes(
        config, tmp_path, monkeypatch, burst, expected):
    steps = []
    original = dqn_trainer.DQNAgent.update

    def counting_update(self, batches, sync_target=False):
        steps.append(len(batches.actions))
        return original(self, batches, sync_target)

    monkeypatch.setattr(dqn_trainer.DQNAgent, "update", counting_update)
    # 400 env steps, learning from step 100, 4 gradient steps every 16 env steps, one env
    cfg = config(*STATE_SMOKE_OVERRIDES, "env.num_envs=1", "checkpoint.enabled=false",
                         "tensorboard=false", f"trainer.learning_starts_burst={burst}")
    train(cfg, tmp_path)
    # with the burst the first call makes up the 100 // 16 phases owed since step 0; without,
    # (400 - 100) // 16 phases follow learning_starts
    assert sum(steps) == expected
    assert steps[0] == (24 if burst else 4)
