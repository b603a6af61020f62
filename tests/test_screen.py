import os

import gymnasium as gym
import numpy as np
import pytest

from pixel_dqn.config import PixelEnvConfig
from pixel_dqn.envs.screen import SCREEN_WIDTH, CropWindow, FastPatchRenderer, crop_frame

CROP = CropWindow.around_cart(PixelEnvConfig(follow=1.0))  # centred on the cart
# the whole track in a fixed window (the track_view arm)
TRACK = CropWindow.whole_track(PixelEnvConfig(track_rows=32, size=[40, 120]))


def test_crop_window_follows_the_cart_and_clamps_at_both_edges():
    assert CROP.width == 360 and CROP.rows == (160, 320)
    assert CROP.left(0.0) == (SCREEN_WIDTH - 360) // 2  # centred
    lefts = [CROP.left(x) for x in np.linspace(-0.9, 0.9, 7)]
    assert lefts == sorted(lefts) and len(set(lefts)) == 7  # moves with the cart
    assert CROP.left(0.48) - CROP.left(0.0) == 60  # 125 screen px per world unit
    assert CROP.left(-2.4) == 0 and CROP.left(-1.5) == 0  # clamped at the left edge
    assert CROP.left(2.4) == SCREEN_WIDTH - 360 and CROP.left(1.5) == SCREEN_WIDTH - 360


def test_crop_frame_sizes_and_channels():
    frame = np.full((400, 600, 3), 255, np.uint8)
    assert crop_frame(frame, 0.0, CROP, gray=True).shape == (40, 90)
    assert crop_frame(frame, 0.0, CROP, gray=False).shape == (40, 90, 3)
    small = CropWindow.around_cart(PixelEnvConfig(size=[20, 30]))
    assert crop_frame(frame, 0.0, small, gray=True).shape == (20, 30)


def _states(rng: np.random.Generator) -> np.ndarray:
    random = np.column_stack([rng.uniform(-2.4, 2.4, 1000), rng.normal(0, 1, 1000),
                              rng.uniform(-0.25, 0.25, 1000), rng.normal(0, 1, 1000)])
    limit = 12 * 2 * np.pi / 360  # the termination angle
    edges = [[x, 0.0, angle, 0.0]
             for x in (-2.4, -2.35, -1.6, 1.6, 2.35, 2.4)  # window clamped at both ends
             for angle in (-0.4, -limit, 0.0, limit, 0.4)]  # at and beyond termination
    return np.vstack([random, edges])


HALF_FOLLOW = CropWindow.around_cart(PixelEnvConfig(follow=0.5))


@pytest.mark.parametrize(("crop", "gray"), [(CROP, True), (CROP, False), (TRACK, True),
                                           (HALF_FOLLOW, True)])
def test_fast_renderer_matches_gymnasium_pygame_renderer(crop, gray):
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = gym.make("CartPole-v1", render_mode="rgb_array").unwrapped
    env.reset(seed=0)
    fast = FastPatchRenderer(crop, gray=gray)
    states = _states(np.random.default_rng(0))
    errors = []
    for state in states:
        env.state = state
        reference = crop_frame(env.render(), state[0], crop, gray=gray).astype(np.int16)
        patch = fast.render(state)
        assert patch.shape == reference.shape and patch.dtype == np.uint8
        errors.append(np.abs(patch.astype(np.int16) - reference))
    env.close()
    errors = np.array(errors)
    per_state_mae = errors.mean(axis=tuple(range(1, errors.ndim)))
    per_state_far = (errors > 32).mean(axis=tuple(range(1, errors.ndim)))
    assert errors.mean() <= 2.0 and per_state_mae.max() <= 2.0, per_state_mae.max()
    assert (errors > 32).mean() <= 0.01 and per_state_far.max() <= 0.01, per_state_far.max()


def test_fast_patches_are_a_pure_function_of_the_quantised_state():
    """The memo never changes a patch: it equals a fresh drawing whatever came before."""
    states = _states(np.random.default_rng(1))[:300]
    memoised = FastPatchRenderer(CROP, gray=True)
    first = [memoised.render(state) for state in states]
    again = [memoised.render(state) for state in states[::-1]][::-1]
    small = FastPatchRenderer(CROP, gray=True, memo_size=7)  # keeps clearing its memo
    for state, a, b in zip(states, first, again, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, small.render(state))
    assert len(small._memo) <= 7
    patch = memoised.render(states[0])
    patch[:] = 0  # callers own the returned array
    np.testing.assert_array_equal(memoised.render(states[0]), first[0])


def test_nearby_states_share_a_patch_and_distant_ones_do_not():
    fast = FastPatchRenderer(CROP, gray=True)
    state = np.array([0.13, 0.0, 0.05, 0.0])
    near, tilted, moved = (state + np.array(d) for d in ([1e-5, 0, 1e-5, 0], [0, 0, 0.01, 0],
                                                          [0.01, 0, 0, 0]))
    np.testing.assert_array_equal(fast.render(state), fast.render(near))
    assert np.any(fast.render(state) != fast.render(tilted))
    assert np.any(fast.render(state) != fast.render(moved))
