"""Typed configuration schemas, registered in Hydra's ConfigStore.

Each YAML file under ``conf/`` extends one of these dataclasses (through its defaults list), so
Hydra rejects a wrongly typed value with the key's full name (``trainer.gamma``) before anything
runs. ``validate`` then checks the ranges that types cannot express.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig


class ConfigError(ValueError):
    """A user-facing configuration mistake; the message is one line naming the key."""


@dataclass
class StateEnvConfig:
    """CartPole whose observation is the 4-float physics state."""

    _target_: str = "pixel_dqn.envs.make_env"
    _partial_: bool = True
    id: str = "CartPole-v1"
    """Gymnasium environment id."""
    max_episode_steps: int | None = None
    """Time limit (a truncation, not a terminal); None keeps the env's own (500 for v1)."""
    num_envs: int = 1
    """Parallel envs stepped together; the agent acts for all in one batched call."""


@dataclass
class MLPConfig:
    """Fully connected Q-network; input and output sizes come from the env at build time."""

    _target_: str = "pixel_dqn.networks.build_mlp"
    _partial_: bool = True
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """Units of each hidden layer."""
    activation: str = "relu"
    """Keras activation name for hidden layers."""


@dataclass
class DQNConfig:
    """DQN hyperparameters. ``instantiate(cfg.trainer)`` returns an instance of this class."""

    _target_: str = "pixel_dqn.config.DQNConfig"
    buffer_size: int = 50_000
    """Replay capacity in transitions."""
    learning_starts: int = 1_000
    """Env steps of uniform-random actions before the first gradient step."""
    batch_size: int = 64
    """Transitions per gradient step."""
    train_freq: int = 4
    """Env steps between training phases."""
    gradient_steps: int = 1
    """Gradient steps per training phase (replay ratio = gradient_steps / train_freq)."""
    gamma: float = 0.99
    """Discount factor, in [0, 1)."""
    learning_rate: float = 1e-3
    """Adam learning rate at the start of training."""
    final_learning_rate: float | None = None
    """If set, the learning rate decays linearly to this value at the end of the step budget."""
    adam_epsilon: float = 1e-7
    """Adam's epsilon."""
    max_grad_norm: float = 10.0
    """Global-norm gradient clipping threshold."""
    huber_delta: float = 1.0
    """Huber loss threshold between the quadratic and linear regimes."""
    double_dqn: bool = True
    """Select the bootstrap action with the online network, evaluate it with the target."""
    target_update_interval: int = 1_000
    """Env steps between target updates (applied at the end of the training phase due then)."""
    tau: float = 1.0
    """Target update weight: 1.0 is a hard copy, < 1 a Polyak average."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the first step."""
    exploration_final_eps: float = 0.05
    """Epsilon after ``exploration_steps``."""
    exploration_steps: int = 10_000
    """Env steps over which epsilon decays linearly."""
    jit_compile: bool = True
    """XLA-compile the fused update (faster for small MLPs on CPU: measure for your model)."""


@dataclass
class EvalConfig:
    """Greedy evaluation on a separate env with its own seeds."""

    every_steps: int = 5_000
    """Env steps between evaluations during training."""
    episodes: int = 10
    """Episodes per periodic evaluation."""
    final_episodes: int = 100
    """Episodes of the final evaluation written to eval.json."""


@dataclass
class ThreadsConfig:
    """TensorFlow thread pools, set before TensorFlow initialises (0 = one per core)."""

    intra_op: int = 1
    """Threads inside one op (matrix products); 1 is fastest for the small MLP on 2 cores."""
    inter_op: int = 1
    """Ops run concurrently."""


@dataclass
class Config:
    """Top-level training config: one env, one model, one trainer."""

    env: Any = MISSING
    model: Any = MISSING
    trainer: Any = MISSING
    seed: int = 0
    """The one seed everything (networks, replay, exploration, envs) is derived from."""
    total_steps: int = 50_000
    """Env step budget."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    threads: ThreadsConfig = field(default_factory=ThreadsConfig)
    progress_interval_s: float = 10.0
    """Seconds between progress lines when stdout is not a terminal."""
    tensorboard: bool = True
    """Write TensorBoard event files to ``<run_dir>/tb``."""


def register_configs() -> None:
    """Register the schemas; call before Hydra composes ``conf/``."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    store.store(group="env", name="base_state", node=StateEnvConfig)
    store.store(group="model", name="base_mlp", node=MLPConfig)
    store.store(group="trainer", name="base_dqn", node=DQNConfig)


def _require(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: must be {valid}")


def validate(cfg: DictConfig) -> None:
    """Check value ranges that the schema's types cannot express; raise ``ConfigError``."""
    _require(cfg.total_steps > 0, "total_steps", cfg.total_steps, "a positive integer")
    for key in ("every_steps", "episodes", "final_episodes"):
        value = cfg.eval[key]
        _require(value > 0, f"eval.{key}", value, "a positive integer")
    for key in ("intra_op", "inter_op"):
        value = cfg.threads[key]
        _require(value >= 0, f"threads.{key}", value, ">= 0 (0 = one per core)")
    _require(cfg.progress_interval_s > 0, "progress_interval_s", cfg.progress_interval_s, "> 0")
    _require(cfg.env.num_envs > 0, "env.num_envs", cfg.env.num_envs, "a positive integer")
    _require(cfg.total_steps >= cfg.env.num_envs, "total_steps", cfg.total_steps,
             f">= env.num_envs ({cfg.env.num_envs})")
    if cfg.env.get("max_episode_steps") is not None:
        steps = cfg.env.max_episode_steps
        _require(steps > 0, "env.max_episode_steps", steps, "a positive integer or null")
    if "hidden_sizes" in cfg.model:
        sizes = list(cfg.model.hidden_sizes)
        _require(all(s > 0 for s in sizes), "model.hidden_sizes", sizes, "positive layer sizes")
    if cfg.trainer._target_ == "pixel_dqn.config.DQNConfig":
        _validate_dqn(cfg.trainer)


def _validate_dqn(t: DictConfig) -> None:
    for key in ("buffer_size", "batch_size", "train_freq", "gradient_steps",
                "target_update_interval", "exploration_steps"):
        _require(t[key] > 0, f"trainer.{key}", t[key], "a positive integer")
    for key in ("learning_rate", "adam_epsilon", "max_grad_norm", "huber_delta"):
        _require(t[key] > 0, f"trainer.{key}", t[key], "> 0")
    _require(0 <= t.gamma < 1, "trainer.gamma", t.gamma, "in [0, 1)")
    _require(0 < t.tau <= 1, "trainer.tau", t.tau, "in (0, 1]")
    for key in ("exploration_initial_eps", "exploration_final_eps"):
        _require(0 <= t[key] <= 1, f"trainer.{key}", t[key], "in [0, 1]")
    if t.final_learning_rate is not None:
        _require(t.final_learning_rate >= 0, "trainer.final_learning_rate",
                 t.final_learning_rate, ">= 0 or null")
    _require(t.batch_size <= t.buffer_size, "trainer.batch_size", t.batch_size,
             f"<= trainer.buffer_size ({t.buffer_size})")
    _require(t.learning_starts >= t.batch_size, "trainer.learning_starts", t.learning_starts,
             f">= trainer.batch_size ({t.batch_size})")
