"""Range checks that the config schemas' types cannot express, each failing in one line.

``validate(cfg)`` runs before TensorFlow loads; a ``ConfigError`` names the key and what is valid.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from pixel_dqn.config import (
    OPTIMIZERS,
    CNNConfig,
    DQNConfig,
    PixelEnvConfig,
    ReinforceConfig,
    config_class,
)
from pixel_dqn.envs.factory import RENDERERS, VECTOR_MODES
from pixel_dqn.envs.pixels import OBS_MODES


class ConfigError(ValueError):
    """A user-facing configuration mistake; the message is one line naming the key."""


def _require(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: must be {valid}")


def _one_of(choices: tuple[str, ...]) -> str:
    return f"one of {', '.join(choices)}"


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
    _validate_env(cfg.env)
    _validate_checkpoint(cfg.checkpoint, cfg.env)
    pixels = config_class(cfg.env) is PixelEnvConfig
    cnn = config_class(cfg.model) is CNNConfig
    if pixels != cnn:
        valid = "model=cnn for env=cartpole_pixels" if pixels else "model=mlp for a state env"
        raise ConfigError(f"model={'cnn' if cnn else 'mlp'} does not fit this env: use {valid}")
    if cnn:
        _validate_cnn(cfg.model, cfg.env)
    if "hidden_sizes" in cfg.model:
        sizes = list(cfg.model.hidden_sizes)
        _require(all(s > 0 for s in sizes), "model.hidden_sizes", sizes, "positive layer sizes")
    trainer = config_class(cfg.trainer)
    if trainer is DQNConfig:
        _validate_dqn(cfg.trainer)
        if cfg.trainer.augment_pad and not pixels:
            raise ConfigError(f"trainer.augment_pad={cfg.trainer.augment_pad} shifts frames: it "
                              f"needs env=cartpole_pixels (use 0 on a state env)")
    elif trainer is ReinforceConfig:
        _validate_reinforce(cfg.trainer)


def _validate_env(env: DictConfig) -> None:
    _require(env.vector_mode in VECTOR_MODES, "env.vector_mode", env.vector_mode,
             _one_of(VECTOR_MODES))
    if config_class(env) is not PixelEnvConfig:
        return
    _require(env.renderer in RENDERERS, "env.renderer", env.renderer, _one_of(RENDERERS))
    _require(env.obs_mode in OBS_MODES, "env.obs_mode", env.obs_mode, _one_of(OBS_MODES))
    band = list(env.band)
    _require(len(band) == 2 and 0 <= band[0] < band[1] <= 1, "env.band", band,
             "[top, bottom] fractions of the screen height with 0 <= top < bottom <= 1")
    _require(0 < env.window <= 1, "env.window", env.window, "in (0, 1]")
    _require(0 <= env.follow <= 1, "env.follow", env.follow, "in [0, 1]")
    size = list(env.size)
    _require(len(size) == 2 and min(size) > 0, "env.size", size, "[height, width], positive")
    _require(env.stack >= 1, "env.stack", env.stack, ">= 1")
    _require(env.diff_lag >= 1, "env.diff_lag", env.diff_lag, ">= 1")
    _require(env.track_rows >= 0, "env.track_rows", env.track_rows, ">= 0 (0: no track view)")


def _validate_checkpoint(checkpoint: DictConfig, env: DictConfig) -> None:
    if checkpoint.every_steps is not None:
        _require(checkpoint.every_steps > 0, "checkpoint.every_steps", checkpoint.every_steps,
                 "a positive integer or null")
    _require(checkpoint.keep >= 1, "checkpoint.keep", checkpoint.keep, "an integer >= 1")
    if checkpoint.enabled and env.vector_mode == "async":
        raise ConfigError("env.vector_mode='async' cannot be checkpointed (its envs live in "
                          "other processes): use env.vector_mode=sync or checkpoint.enabled=false")


def _validate_cnn(model: DictConfig, env: DictConfig) -> None:
    layers = len(model.filters)
    for key in ("kernel_sizes", "strides"):
        _require(len(model[key]) == layers, f"model.{key}", list(model[key]),
                 f"one entry per convolution ({layers}, as model.filters)")
    height, width = env.size
    for kernel, stride in zip(model.kernel_sizes, model.strides, strict=True):
        height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    _require(min(height, width) >= 1, "env.size", list(env.size),
             "large enough for the CNN's kernels and strides (model.kernel_sizes, model.strides)")


def _validate_reinforce(t: DictConfig) -> None:
    for key in ("episodes_per_update", "updates", "max_episode_steps"):
        _require(t[key] > 0, f"trainer.{key}", t[key], "a positive integer")
    _require(0 <= t.gamma <= 1, "trainer.gamma", t.gamma, "in [0, 1]")
    _require(t.learning_rate > 0, "trainer.learning_rate", t.learning_rate, "> 0")


def _validate_dqn(t: DictConfig) -> None:
    for key in ("buffer_size", "batch_size", "train_freq", "gradient_steps",
                "target_update_interval", "exploration_steps"):
        _require(t[key] > 0, f"trainer.{key}", t[key], "a positive integer")
    for key in ("learning_rate", "optimizer_epsilon", "max_grad_norm", "huber_delta"):
        _require(t[key] > 0, f"trainer.{key}", t[key], "> 0")
    _require(t.optimizer in OPTIMIZERS, "trainer.optimizer", t.optimizer, _one_of(OPTIMIZERS))
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
    _require(t.n_step >= 1, "trainer.n_step", t.n_step, "an integer >= 1")
    _require(t.priority_alpha >= 0, "trainer.priority_alpha", t.priority_alpha, ">= 0")
    _require(0 <= t.priority_beta_initial <= 1, "trainer.priority_beta_initial",
             t.priority_beta_initial, "in [0, 1]")
    _require(t.priority_eps > 0, "trainer.priority_eps", t.priority_eps, "> 0")
    _require(t.augment_pad >= 0, "trainer.augment_pad", t.augment_pad, ">= 0 (0 = off)")
    if t.eval_weight_average is not None:
        _require(0 < t.eval_weight_average < 1, "trainer.eval_weight_average",
                 t.eval_weight_average, "in (0, 1) or null")
