import gymnasium as gym
import numpy as np
import pytest

from pixel_dqn.config import PixelEnvConfig, StateEnvConfig
from pixel_dqn.envs import make_env, make_pixel_env, make_single_pixel_env
from pixel_dqn.envs.pixels import FRAMES_METADATA, frames_for
from pixel_dqn.networks import pixel_state


def _env(mode: str = "diff", stack: int = 4, renderer: str = "fast", gray: bool = True):
    return make_single_pixel_env(PixelEnvConfig(renderer=renderer, obs_mode=mode, stack=stack,
                                                gray=gray))


@pytest.mark.parametrize(("mode", "frames"), [("diff", 2), ("diff_current", 2), ("stack", 4)])
@pytest.mark.parametrize("renderer", ["fast", "pygame"])
def test_observations_are_uint8_patches_inside_the_declared_space(mode, frames, renderer):
    env = _env(mode, renderer=renderer)
    assert env.observation_space.shape == (frames, 40, 90)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8 and env.observation_space.contains(obs)
    for _ in range(30):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and reward == 1.0
        if terminated or truncated:
            break
    env.close()


@pytest.mark.parametrize("mode", ["diff", "diff_current"])
def test_a_diff_lag_keeps_that_many_steps_and_diffs_newest_minus_oldest(mode):
    lagged = make_single_pixel_env(PixelEnvConfig(obs_mode=mode, diff_lag=3))
    assert lagged.observation_space.shape == (4, 40, 90) == (frames_for(mode, 4, 3), 40, 90)
    plain = _env(mode)
    lagged.reset(seed=1)
    plain.reset(seed=1)
    patches = []
    for _ in range(6):  # the same pushes: the lagged env's frames are the plain env's patches
        obs, *_ = lagged.step(1)
        plain_obs, *_ = plain.step(1)
        patches.append(plain_obs[-1])
    np.testing.assert_array_equal(obs, np.stack(patches[-4:]))
    state = np.asarray(pixel_state(obs, mode))
    diff = (patches[-1].astype(np.float32) - patches[-4]) / 255
    np.testing.assert_allclose(state[..., -1], diff, atol=1e-6)
    assert np.abs(diff).sum() > 3 * np.abs(np.asarray(pixel_state(plain_obs, "diff"))).sum() / 2


def test_reward_and_termination_are_those_of_cartpole():
    env, plain = _env(), gym.make("CartPole-v1")
    env.reset(seed=3)
    plain.reset(seed=3)
    for step in range(200):
        action = step % 3 == 0
        _, r1, te1, tr1, _ = env.step(int(action))
        _, r2, te2, tr2, _ = plain.step(int(action))
        assert (r1, te1, tr1) == (r2, te2, tr2)
        if te1 or tr1:
            break
    assert te1  # this open-loop policy falls over


def test_reset_clears_the_history_so_the_first_diff_is_zero():
    env = _env("diff")
    env.reset(seed=0)
    for _ in range(5):
        env.step(1)
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(obs[0], obs[1])
    assert not np.any(pixel_state(obs, "diff"))
    obs, *_ = env.step(1)
    obs, *_ = env.step(1)
    assert np.any(obs[0] != obs[1])  # the scene moved


def test_diff_is_exactly_current_minus_previous_with_its_sign():
    previous = np.full((2, 3), 100, np.uint8)
    current = previous.copy()
    current[0, 0], current[1, 2] = 255, 0
    obs = np.stack([previous, current])
    diff = np.asarray(pixel_state(obs, "diff"))
    assert diff.shape == (2, 3, 1)
    np.testing.assert_allclose(diff[..., 0] * 255, current.astype(float) - 100, atol=1e-4)
    assert diff[0, 0, 0] > 0 > diff[1, 2, 0] and diff[0, 1, 0] == 0
    both = np.asarray(pixel_state(obs, "diff_current"))
    np.testing.assert_allclose(both[..., 0] * 255, current, atol=1e-4)
    np.testing.assert_allclose(both[..., 1], diff[..., 0])
    same = np.stack([previous, previous])
    assert not np.any(pixel_state(same, "diff"))
    batch = np.asarray(pixel_state(np.stack([obs, same]), "diff"))
    np.testing.assert_allclose(batch[0], diff)
    assert not np.any(batch[1])


def test_stack_keeps_the_last_frames_oldest_first():
    env = _env("stack", stack=3)
    env.reset(seed=0)
    history = []
    for _ in range(4):
        obs, *_ = env.step(0)
        history.append(obs[-1].copy())
    np.testing.assert_array_equal(obs[0], history[-3])
    np.testing.assert_array_equal(obs[1], history[-2])
    np.testing.assert_allclose(np.asarray(pixel_state(obs, "stack"))[..., 2] * 255, history[-1],
                               atol=1e-3)


def test_rgb_patches_have_three_channels_per_frame():
    env = _env("diff", gray=False)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 40, 90, 3)
    assert np.asarray(pixel_state(obs, "diff", channels=3)).shape == (40, 90, 3)
    current = np.asarray(pixel_state(obs, "diff_current", channels=3))
    np.testing.assert_allclose(current[..., :3] * 255, obs[1], atol=1e-4)  # RGB of the current


def test_unknown_mode_is_rejected_with_the_valid_ones():
    with pytest.raises(ValueError, match="diff, diff_current, stack"):
        frames_for("difff", 2, 1)


@pytest.mark.parametrize(("overrides", "frames"), [({"obs_mode": "diff_current"}, 2),
                                                   ({"obs_mode": "stack", "stack": 3}, 3),
                                                   ({"obs_mode": "diff", "diff_lag": 3}, 4)])
def test_a_pixel_env_tells_how_many_frames_an_observation_stacks(overrides, frames):
    """The replay reads it to store each frame once; a state env says nothing."""
    envs = make_pixel_env(PixelEnvConfig(num_envs=2, **overrides))
    assert envs.metadata[FRAMES_METADATA] == frames == envs.single_observation_space.shape[0]
    assert FRAMES_METADATA not in make_env(StateEnvConfig(num_envs=2)).metadata


def test_pixel_vector_env_autoresets_on_the_next_step():
    envs = make_pixel_env(PixelEnvConfig(num_envs=2, max_episode_steps=5))
    obs, _ = envs.reset(seed=[0, 1])
    for _ in range(5):
        obs, rewards, terminated, truncated, _ = envs.step(np.array([1, 0]))
    assert truncated.all() and not terminated.any()
    assert np.any(obs[:, 0] != obs[:, 1])  # the final observation still moves
    # gymnasium 1.x NEXT_STEP: this call only resets; it is not a transition
    obs, rewards, terminated, truncated, _ = envs.step(np.array([1, 0]))
    assert not (terminated | truncated).any() and not rewards.any()
    np.testing.assert_array_equal(obs[:, 0], obs[:, 1])  # a fresh history
    envs.close()


def test_the_picture_script_writes_one_row_per_step(tmp_path):
    import subprocess
    import sys

    import cv2
    from conftest import ROOT

    out = tmp_path / "picture.png"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "pixel_state_picture.py"),
                    "--out", str(out), "--steps", "2"], check=True, timeout=120,
                   capture_output=True)
    two = cv2.imread(str(out))
    subprocess.run([sys.executable, str(ROOT / "scripts" / "pixel_state_picture.py"),
                    "--out", str(out), "--steps", "3"], check=True, timeout=120,
                   capture_output=True)
    three = cv2.imread(str(out))
    assert two.shape[1] == three.shape[1] and three.shape[0] * 2 == two.shape[0] * 3


@pytest.mark.slow
def test_the_env_benchmark_writes_its_table(tmp_path):
    import json
    import subprocess
    import sys

    from conftest import ROOT

    subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--quick",
                    "--allow-dirty",
                    "--out", str(tmp_path)], check=True, timeout=300, capture_output=True)
    record = json.loads((tmp_path / "pixel_env.json").read_text())
    stages = {row["stage"]: row for row in record["rows"]}
    physics_us = stages["physics step"]["us_per_env_step"]
    for row in record["rows"]:  # each stage's cost relative to the bare physics step
        assert row["x_physics"] == pytest.approx(row["us_per_env_step"] / physics_us)
    assert stages["pygame render"]["x_physics"] > 1  # drawing a frame costs more than physics
    assert {"pygame render", "wrapper step: fast, diff", "wrapper step: pygame, stack",
            "vector env: 2 x fast diff, async"} <= set(stages)
    assert all(row["us_per_env_step"] > 0 for row in record["rows"])
    assert "x raw physics" in (tmp_path / "pixel_env.md").read_text()


def test_a_track_view_is_stacked_under_the_patch_and_shows_where_the_cart_is():
    from pixel_dqn.envs.screen import CropWindow, FastPatchRenderer

    env = PixelEnvConfig(num_envs=1, follow=1.0, track_rows=10, obs_mode="diff_current")
    envs = make_pixel_env(env)
    assert envs.single_observation_space.shape == (2, 50, 90)
    obs, _ = envs.reset(seed=0)
    patch = FastPatchRenderer(CropWindow(band=(0.4, 0.8), window=0.6, size=(40, 90), follow=1.0),
                              gray=True)
    track = FastPatchRenderer(CropWindow(band=(0.4, 0.8), window=1.0, size=(10, 90), follow=0.0),
                              gray=True)
    cartpole = envs.envs[0].unwrapped
    cart_columns = []
    for _ in range(25):  # push right: the cart moves right on the track view, not in the patch
        obs, *_ = envs.step(np.array([1]))
        state = np.array(cartpole.state)
        np.testing.assert_array_equal(obs[0, -1, :40], patch.render(state))
        np.testing.assert_array_equal(obs[0, -1, 40:], track.render(state))
        cart_columns.append(np.argmin(obs[0, -1, 40:].min(axis=0)))  # the cart is black
    assert cart_columns[-1] > cart_columns[0]
    envs.close()
