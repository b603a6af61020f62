"""Greedy evaluation episodes say how each one ended."""

from functools import partial

import numpy as np
import pytest

from pixel_dqn.config import PixelEnvConfig, StateEnvConfig
from pixel_dqn.envs import make_env, make_envs
from pixel_dqn.envs.factory import make_single_env
from pixel_dqn.evaluation import run_episodes
from pixel_dqn.policies import push_toward_tilt


def state_envs(**settings):
    """``num_envs -> envs``: the state CartPole with ``settings``."""
    return lambda n: make_env(StateEnvConfig(num_envs=n, **settings))


@pytest.mark.parametrize(("state", "action", "off_track"), [
    ([2.39, 2.0, 0.0, 0.0], 1, True),    # pushed past the right end of the track
    ([-2.39, -2.0, 0.0, 0.0], 0, True),  # and past the left end
    ([0.0, 0.0, 0.2, 2.0], 1, False),    # the pole falls in the middle of the track
])
def test_a_terminated_cartpole_says_whether_the_cart_left_the_track(state, action, off_track):
    env = make_single_env("CartPole-v1", None, None)
    env.reset(seed=0)
    env.unwrapped.state = np.array(state)
    _, _, terminated, truncated, info = env.step(action)
    assert terminated and not truncated and info["cart_off_track"] is off_track


def test_a_live_step_says_nothing():
    env = make_single_env("CartPole-v1", None, None)
    env.reset(seed=0)
    assert "cart_off_track" not in env.step(0)[4]


def test_eval_counts_the_endings_of_its_episodes():
    falls = run_episodes(push_toward_tilt, state_envs(), 12, seed=0)
    assert falls.endings == ("pole_fell",) * 12
    assert falls.summary()["ended_by"] == {"time_limit": 0, "pole_fell": 12, "cart_off_track": 0}

    def balance(obs):  # angle and angular velocity feedback: holds the pole (500 steps)
        return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int32)

    capped = run_episodes(balance, state_envs(max_episode_steps=50), 5, 0)
    assert capped.lengths == (50,) * 5 and capped.endings == ("time_limit",) * 5

    def drift(obs):  # the same, leaning to one side: the cart runs off the track
        return (obs[:, 2] + 0.5 * obs[:, 3] + 0.05 > 0).astype(np.int32)

    off = run_episodes(drift, state_envs(), 4, seed=0)
    assert off.endings == ("cart_off_track",) * 4 and max(off.lengths) < 500


def test_pixel_envs_pass_the_ending_through():
    def always_right(obs):
        return np.ones(len(obs), np.int32)

    result = run_episodes(always_right, partial(make_envs, PixelEnvConfig()), 4, seed=0)
    assert len(result.endings) == 4 and set(result.endings) <= {"pole_fell", "cart_off_track"}


def test_eval_counts_every_env_step_it_played_also_past_a_quota():
    def balance(obs):
        return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int32)

    # 3 episodes of 40 steps on 3 envs: 120 steps, all counted
    capped = run_episodes(balance, state_envs(max_episode_steps=40), 3, 0)
    assert capped.env_steps == 120 and capped.summary()["env_steps"] == 120
    # 5 pole falls on 2 envs (quotas 3 and 2): an env done with its quota plays on, uncounted,
    # until the other finishes; those steps were played all the same
    falls = run_episodes(push_toward_tilt, state_envs(), 5, seed=0)
    assert falls.env_steps >= sum(falls.lengths)
