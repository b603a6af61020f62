"""Shared fixtures: compose the real ``conf/`` tree with Hydra's compose API."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from slurm_cluster import stop_session_cluster

from pixel_dqn.config import Config, load_config, register_configs
from pixel_dqn.replay import ReplayBuffer

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
register_configs()
# names this test session; pytest-xdist's workers inherit it, so they share one local SLURM
SESSION_VARIABLE = "PIXEL_DQN_TEST_SESSION"


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller (or the only process)
        os.environ[SESSION_VARIABLE] = uuid.uuid4().hex


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # after every worker has finished
        stop_session_cluster(os.environ[SESSION_VARIABLE])


@pytest.fixture
def compose_config() -> Callable[..., DictConfig]:
    """``compose_config("trainer.gamma=0.9", ...)`` -> the composed config (not resolved)."""

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    return _compose


@pytest.fixture
def config(compose_config) -> Callable[..., Config]:
    """``config("trainer.gamma=0.9", ...)`` -> the composed config as the entry point loads it
    (typed and checked: ``pixel_dqn.config.load_config``)."""
    return lambda *overrides: load_config(compose_config(*overrides))


# A few hundred steps with everything small: exercises the whole loop in seconds.
SMOKE_OVERRIDES = (
    "total_steps=400",
    "trainer.learning_starts=100",
    "trainer.batch_size=32",
    "trainer.train_freq=16",
    "trainer.gradient_steps=4",
    "trainer.target_update_interval=100",
    "trainer.exploration_steps=200",
    "eval.every_steps=200",
    "eval.episodes=2",
    "eval.final_episodes=3",
)
# the defaults train from pixels; these pick the state agent
STATE = ("env=cartpole_state", "model=mlp", "trainer=dqn")
# XLA compiles the state update for seconds: the quick smoke runs skip it (test_dqn and the
# slow resume tests cover the compiled update)
STATE_SMOKE_OVERRIDES = (*STATE, *SMOKE_OVERRIDES, "model.hidden_sizes=[16]",
                         "trainer.jit_compile=false")
PIXEL_SMOKE_OVERRIDES = (
    *SMOKE_OVERRIDES,
    "model.filters=[4,8]",
    "model.kernel_sizes=[5,5]",
    "model.strides=[2,2]",
    "model.dense_sizes=[16]",
    "trainer.jit_compile=false",
)


def make_buffer(capacity: int, obs_shape: tuple[int, ...], obs_dtype, rng, **settings
                ) -> ReplayBuffer:
    """A replay buffer for tests: one env, whole observations, one-step uniform replay unless
    ``settings`` say otherwise."""
    plain = {"num_envs": 1, "history": None, "n_step": 1, "gamma": 0.99, "prioritized": False,
             "alpha": 0.6, "priority_eps": 1e-6}
    return ReplayBuffer(capacity, obs_shape, obs_dtype, rng, **{**plain, **settings})
