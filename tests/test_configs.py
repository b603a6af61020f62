import subprocess

import pytest
from conftest import CONF_DIR, STATE
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from pixel_dqn.config import ConfigError, DQNConfig, ReinforceConfig, load_config
from pixel_dqn.envs.factory import make_envs
from pixel_dqn.networks import build_network
from pixel_dqn.run_directory import train_command

GROUPS = ("env", "model", "trainer")


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


# options that only make sense together: the rest of the config follows the one under test
COMPANIONS = {"env=cartpole_state": ("model=mlp",), "model=mlp": ("env=cartpole_state",),
              "model=policy_mlp": ("env=cartpole_state",)}


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in _options(g)]
)
def test_every_group_option_composes_and_builds(compose_config, group, option):
    choice = f"{group}={option}"
    composed = compose_config(choice, *COMPANIONS.get(choice, ()))
    cfg = load_config(composed)
    envs = make_envs(cfg.env, 2)
    obs, _ = envs.reset(seed=[0, 1])
    assert obs.shape[0] == 2 and envs.single_observation_space.contains(obs[0])
    model = build_network(cfg.model, envs.single_observation_space.shape, 2)
    assert model.output_shape == (None, 2)
    assert model(obs).shape == (2, 2)
    envs.close()
    assert isinstance(cfg.trainer, DQNConfig | ReinforceConfig)
    assert cfg.trainer.gamma == composed.trainer.gamma


def test_default_composition_is_pixels_cnn_dqn(compose_config):
    cfg = compose_config()
    assert OmegaConf.to_container(cfg)["env"]["id"] == "CartPole-v1"
    assert cfg.env.obs_mode == "diff_current" == cfg.model.obs_mode  # interpolated
    assert cfg.env.follow == 0.5
    assert cfg.model.filters and cfg.trainer.double_dqn is True
    load_config(cfg)


def test_wrongly_typed_value_names_the_full_key(compose_config):
    with pytest.raises(ConfigCompositionException) as info:
        compose_config("trainer.gamma=abc")
    cause = info.value.__cause__
    assert isinstance(cause, ValidationError)
    assert "trainer.gamma" in str(cause)


def test_unknown_key_is_rejected(compose_config):
    with pytest.raises(ConfigCompositionException, match=r"trainer\.gama"):
        compose_config("trainer.gama=0.9")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.gamma=1.0", "trainer.gamma"),
        ("trainer.batch_size=0", "trainer.batch_size"),
        ("trainer.exploration_final_eps=1.5", "trainer.exploration_final_eps"),
        ("trainer.tau=0", "trainer.tau"),
        ("trainer.learning_starts=10", "trainer.learning_starts"),
        ("trainer.buffer_size=32", "trainer.batch_size"),
        ("total_steps=0", "total_steps"),
        ("env.num_envs=0", "env.num_envs"),
        ("total_steps=4", "total_steps"),
        ("eval.episodes=0", "eval.episodes"),
        ("model.hidden_sizes=[64,0]", "model.hidden_sizes"),
        ("threads.intra_op=-1", "threads.intra_op"),
        ("env.vector_mode=threads", "env.vector_mode"),
        ("trainer.optimizer=adagrad", "trainer.optimizer"),
        ("model.precision=float16", "model.precision"),
        ("trainer.n_step=0", "trainer.n_step"),
        ("trainer.eval_weight_average=1.0", "trainer.eval_weight_average"),
        ("checkpoint.keep=0", "checkpoint.keep"),
        ("checkpoint.every_steps=0", "checkpoint.every_steps"),
        ("env.vector_mode=async", "env.vector_mode"),  # async envs cannot be checkpointed
    ],
)
def test_out_of_range_values_fail_with_one_line_naming_the_key(compose_config, override, key):
    cfg = compose_config(*STATE, override)
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    message = str(info.value)
    assert message.startswith(f"{key}=") and "\n" not in message


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (("env.renderer=opengl",), "env.renderer"),
        (("env.obs_mode=delta",), "env.obs_mode"),
        (("env.band=[0.8,0.4]",), "env.band"),
        (("env.window=0",), "env.window"),
        (("env.size=[8,8]",), "env.size"),  # too small for three 5x5 stride-2 convolutions
        (("model.strides=[2]",), "model.strides"),
        (("env.follow=1.5",), "env.follow"),
    ],
)
def test_bad_pixel_values_fail_with_one_line_naming_the_key(compose_config, overrides, key):
    cfg = compose_config(*overrides)
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    message = str(info.value)
    assert message.startswith(f"{key}=") and "\n" not in message


@pytest.mark.parametrize(
    "overrides", [("env=cartpole_pixels", "model=mlp"), ("env=cartpole_state", "model=cnn")]
)
def test_a_model_that_does_not_fit_the_env_is_rejected(compose_config, overrides):
    with pytest.raises(ConfigError, match="does not fit this env"):
        load_config(compose_config(*overrides))


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (("trainer.gamma=1.5",), "trainer.gamma="),
        (("trainer.learning_starts=8",), "trainer.learning_starts="),
        (("env.renderer=opengl",), "env.renderer="),
        (("env=cartpole_state",), "model=cnn"),  # a CNN on the state env
        (("env.band=[0.2,1.5]",), "env.band="),
        (("env.size=[10,10]",), "env.size="),
        (("hydra.run.dir=/proc/no/such/dir",), "/proc/no/such/dir"),
    ],
)
def test_train_rejects_bad_configs_before_training_in_one_line(tmp_path, overrides, named):
    run_dir = () if any(o.startswith("hydra.run.dir") for o in overrides) else (
        f"hydra.run.dir={tmp_path / 'run'}",)
    proc = subprocess.run([*train_command(*overrides), *run_dir], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0]
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_an_unknown_option_gets_hydras_readable_error(tmp_path):
    proc = subprocess.run(train_command("env=atari", run_dir=tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1
    assert "Could not find 'env/atari'" in proc.stderr and "cartpole_pixels" in proc.stderr
    assert "Traceback" not in proc.stderr
