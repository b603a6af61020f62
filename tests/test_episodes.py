import numpy as np

from pixel_dqn.config import StateEnvConfig
from pixel_dqn.envs import make_env
from pixel_dqn.episodes import EpisodeTally


def test_the_step_after_an_episode_end_is_not_counted():
    tally = EpisodeTally.start(2)
    no, yes = np.array([False, False]), np.array([True, False])
    assert tally.step(np.ones(2), no, no) == []
    assert tally.step(np.ones(2), yes, no) == [(0, 2.0, 2)]  # env 0 ends after 2 steps
    assert list(tally.live) == [False, True]
    assert tally.step(np.full(2, 5.0), no, no) == []  # env 0's reset step: reward 5 ignored
    assert tally.step(np.ones(2), no, np.array([True, True])) == [(0, 1.0, 1), (1, 8.0, 4)]


def test_uncounted_sub_envs_play_on_without_adding_episodes():
    tally = EpisodeTally.start(2)
    ended = tally.step(np.ones(2), np.array([True, True]), np.zeros(2, bool),
                       counted=np.array([True, False]))
    assert ended == [(0, 1.0, 1)] and list(tally.lengths) == [0, 0]


def test_on_a_real_vector_env_episode_lengths_add_up_to_the_counted_steps():
    envs = make_env(StateEnvConfig(num_envs=3))
    envs.reset(seed=[0, 1, 2])
    tally, rng, counted, lengths = EpisodeTally.start(3), np.random.default_rng(0), 0, []
    for _ in range(300):
        counted += int(tally.live.sum())
        _, rewards, terminated, truncated, _ = envs.step(rng.integers(0, 2, 3))
        lengths += [length for _, _, length in tally.step(rewards, terminated, truncated)]
    envs.close()
    assert len(lengths) > 3  # random play ends CartPole episodes within tens of steps
    assert sum(lengths) + int(tally.lengths.sum()) == counted
