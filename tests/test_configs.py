import pytest
from conftest import CONF_DIR
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from pixel_dqn.config import ConfigError, DQNConfig, validate

GROUPS = ("env", "model", "trainer")


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in _options(g)]
)
def test_every_group_option_composes_and_instantiates(compose_config, group, option):
    cfg = compose_config(f"{group}={option}")
    validate(cfg)
    built = instantiate(cfg[group])
    if group == "env":
        envs = built(num_envs=2)
        obs, _ = envs.reset(seed=[0, 1])
        assert obs.shape[0] == 2 and envs.single_observation_space.contains(obs[0])
        envs.close()
    elif group == "model":
        model = built((4,), 2)
        assert model.output_shape == (None, 2)
    else:
        assert isinstance(built, DQNConfig) and built.gamma == cfg.trainer.gamma


def test_default_composition_is_state_mlp_dqn(compose_config):
    cfg = compose_config()
    assert OmegaConf.to_container(cfg)["env"]["id"] == "CartPole-v1"
    assert cfg.model.hidden_sizes and cfg.trainer.double_dqn is True
    assert cfg.total_steps == 50_000


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
    ],
)
def test_out_of_range_values_fail_with_one_line_naming_the_key(compose_config, override, key):
    cfg = compose_config(override)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    message = str(info.value)
    assert message.startswith(f"{key}=") and "\n" not in message
