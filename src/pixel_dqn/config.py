"""Typed configuration schemas: the home of every default and of every value's valid range.

Each YAML file under ``conf/`` extends one of these dataclasses (through its defaults list), so
Hydra rejects a wrongly typed value with the key's full name (``trainer.gamma``) before anything
runs. The entry point turns the composed config into these dataclasses once
(``load_config``), which also checks what types cannot express: each field's range sits beside
it (``metadata=...``) and one checker walks them, then the few rules that tie fields together.
Below the entry point the code reads typed attributes only. A schema's defaults are those of
the default run (``conf/config.yaml``'s choices); a YAML file sets only what differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


def _conf_dir() -> Path:
    installed = Path(__file__).resolve().parent / "conf"  # a wheel ships conf/ inside
    return installed if installed.is_dir() else Path(__file__).resolve().parents[2] / "conf"


CONF_DIR = _conf_dir()
"""The ``conf/`` tree Hydra composes: the repository's top-level ``conf/`` in a checkout (and an
editable install), its copy inside the package in an installed wheel."""
OPTIMIZERS = ("adam", "rmsprop")
"""``trainer.optimizer`` choices (pixel_dqn.agents.optimizers builds them)."""
VECTOR_MODES = ("sync", "async")
"""``env.vector_mode`` choices: sub-envs in this process or one subprocess each."""
RENDERERS = ("fast", "pygame")
"""``env.renderer`` choices (pixel_dqn.envs.screen)."""
OBS_MODES = ("diff", "diff_current", "stack")
"""``env.obs_mode`` choices (pixel_dqn.envs.pixels)."""
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_bfloat16_convs")
"""``model.precision`` choices (pixel_dqn.networks.PRECISION_POLICIES)."""
GROUPS = ("env", "model", "trainer")
"""The config groups whose option chooses a schema."""


class ConfigError(ValueError):
    """A user-facing configuration mistake; the message is one line naming the key."""


@dataclass(frozen=True)
class Range:
    """What values a field accepts: a test and the words that say what is valid."""

    test: Callable[[Any], bool]
    valid: str


def valid(test: Callable[[Any], bool], text: str, *, optional: bool = False) -> dict:
    """A field's ``metadata`` holding its range (``optional``: None is valid too)."""
    if optional:
        return {"range": Range(lambda v: v is None or test(v), f"{text} or null")}
    return {"range": Range(test, text)}


POSITIVE_INT = valid(lambda v: v > 0, "a positive integer")
POSITIVE = valid(lambda v: v > 0, "> 0")
UNIT = valid(lambda v: 0 <= v <= 1, "in [0, 1]")


def one_of(choices: tuple[str, ...]) -> dict:
    return valid(lambda v: v in choices, f"one of {', '.join(choices)}")


def _positive_sizes(sizes: list[int]) -> bool:
    return all(size > 0 for size in sizes)


@dataclass
class EnvConfig:
    """What every env option has: the env id, its time limit and the vector env around it."""

    _target_: str = "pixel_dqn.envs.make_env"
    """The builder that takes this schema; in a run's saved config.yaml it says which schema
    the group is (``load_config`` reads it back by this name). Every group schema has one."""
    _partial_: bool = True
    """Unused (the builders take the schema object); kept so that saved configs still load."""
    id: str = "CartPole-v1"
    """Gymnasium environment id."""
    max_episode_steps: int | None = field(
        default=None, metadata=valid(lambda v: v > 0, "a positive integer", optional=True))
    """Time limit (a truncation, not a terminal); None keeps the env's own (500 for v1)."""
    num_envs: int = field(default=1, metadata=POSITIVE_INT)
    """Parallel envs stepped together; the agent acts for all in one batched call."""
    vector_mode: str = field(default="sync", metadata=one_of(VECTOR_MODES))
    """``sync`` (one process) or ``async`` (a subprocess per env)."""


@dataclass
class StateEnvConfig(EnvConfig):
    """CartPole whose observation is the 4-float physics state."""

    num_envs: int = field(default=8, metadata=POSITIVE_INT)


@dataclass
class PixelEnvConfig(EnvConfig):
    """CartPole seen as uint8 screen patches around the cart (pixel_dqn.envs.pixels)."""

    _target_: str = "pixel_dqn.envs.make_pixel_env"
    num_envs: int = field(default=4, metadata=POSITIVE_INT)
    renderer: str = field(default="fast", metadata=one_of(RENDERERS))
    """``fast`` (OpenCV, draws the patch only) or ``pygame`` (gymnasium's full frame, cropped)."""
    band: list[float] = field(default_factory=lambda: [0.4, 0.8], metadata=valid(
        lambda v: len(v) == 2 and 0 <= v[0] < v[1] <= 1,
        "[top, bottom] fractions of the screen height with 0 <= top < bottom <= 1"))
    """Top and bottom of the cropped band, as fractions of the screen height."""
    window: float = field(default=0.6, metadata=valid(lambda v: 0 < v <= 1, "in (0, 1]"))
    """Width of the window around the cart, as a fraction of the screen width."""
    follow: float = field(default=0.5, metadata=UNIT)
    """How far the window follows the cart: 1 centres it on the cart, 0.5 moves it half as
    far (the cart's place in the patch then shows its position on the track)."""
    size: list[int] = field(default_factory=lambda: [40, 90], metadata=valid(
        lambda v: len(v) == 2 and min(v) > 0, "[height, width], positive"))
    """Patch height and width after area resizing."""
    gray: bool = True
    """Gray patches (1 byte per pixel) or RGB (3)."""
    obs_mode: str = field(default="diff_current", metadata=one_of(OBS_MODES))
    """``diff`` (current - previous), ``diff_current`` (current and diff) or ``stack``."""
    stack: int = field(default=4, metadata=valid(lambda v: v >= 1, ">= 1"))
    """Patches per observation in ``stack`` mode."""
    track_rows: int = field(default=0, metadata=valid(lambda v: v >= 0, ">= 0 (0: no track view)"))
    """Rows of a coarse view of the whole track (the same band, fixed on the screen, as wide as
    the patch) stacked under the patch around the cart, so the cart's position on the track
    shows while the patch keeps the pole's detail; 0: no track view."""
    diff_lag: int = field(default=1, metadata=valid(lambda v: v >= 1, ">= 1"))
    """Env steps between the two patches a diff subtracts (``diff`` and ``diff_current``): the
    observation carries the last ``diff_lag + 1`` patches and the diff is the newest minus the
    oldest, so slow motion shows ``diff_lag`` times larger."""


@dataclass
class NetworkConfig:
    """What both networks have: the Q-value head and the normalisation of the dense layers."""

    dueling: bool = False
    """Dueling head: Q = V + A - mean(A), from separate value and advantage streams."""
    layer_norm: bool = True
    """LayerNorm on each dense layer's pre-activation (PQN, Gallici et al. 2024): it keeps
    the DQN runs' greedy policies from drifting once solved (benchmarks/learner_study)."""
    precision: str = field(default="float32", metadata=one_of(PRECISIONS))
    """The layers' arithmetic: ``mixed_bfloat16`` computes in bfloat16 on float32 weights and
    answers in float32: on an AVX512-BF16 CPU a pixel sweep ran 1.26x faster but solved 7 of
    10 seeds against float32's 10 (benchmarks/precision.md), so float32 is the default.
    ``mixed_bfloat16_convs``: the convolutions only (an MLP has none: it stays float32)."""


@dataclass
class MLPConfig(NetworkConfig):
    """Fully connected Q-network; input and output sizes come from the env at build time."""

    _target_: str = "pixel_dqn.networks.build_mlp"
    _partial_: bool = True
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256],
                                    metadata=valid(_positive_sizes, "positive layer sizes"))
    """Units of each hidden layer."""
    activation: str = "relu"
    """Keras activation name for hidden layers."""


@dataclass
class CNNConfig(NetworkConfig):
    """Convolutional Q-network; ``obs_mode`` and ``gray`` follow the env (interpolated)."""

    _target_: str = "pixel_dqn.networks.build_cnn"
    _partial_: bool = True
    obs_mode: str = MISSING
    """The env's observation mode: the first layer forms the diff from the stored frames."""
    gray: bool = MISSING
    """Whether the env's patches are gray (1 channel per frame) or RGB (3)."""
    filters: list[int] = field(default_factory=lambda: [8, 16],
                             metadata=valid(_positive_sizes, "positive sizes"))
    """Filters of each convolution."""
    kernel_sizes: list[int] = field(default_factory=lambda: [8, 4],
                                  metadata=valid(_positive_sizes, "positive sizes"))
    """Kernel size of each convolution."""
    strides: list[int] = field(default_factory=lambda: [4, 2],
                             metadata=valid(_positive_sizes, "positive sizes"))
    """Stride of each convolution."""
    dense_sizes: list[int] = field(default_factory=lambda: [128],
                                 metadata=valid(_positive_sizes, "positive sizes"))
    """Units of the dense layers after the convolutions."""
    dueling: bool = True


@dataclass
class DQNConfig:
    """DQN hyperparameters (``trainer=dqn``)."""

    _target_: str = "pixel_dqn.config.DQNConfig"
    buffer_size: int = field(default=100_000, metadata=POSITIVE_INT)
    """Replay capacity in transitions."""
    learning_starts: int = 1_000
    """Env steps of uniform-random actions before the first gradient step."""
    batch_size: int = field(default=64, metadata=POSITIVE_INT)
    """Transitions per gradient step."""
    train_freq: int = field(default=16, metadata=POSITIVE_INT)
    """Env steps between training phases."""
    gradient_steps: int = field(default=4, metadata=POSITIVE_INT)
    """Gradient steps per training phase (replay ratio = gradient_steps / train_freq)."""
    gamma: float = field(default=0.995, metadata=valid(lambda v: 0 <= v < 1, "in [0, 1)"))
    """Discount factor, in [0, 1). With 10-step returns and the Polyak target, 0.995's values
    (at most 200) settle within the budget; 0.999's still climbed at 100k env steps."""
    learning_rate: float = field(default=1e-3, metadata=POSITIVE)
    """Adam learning rate at the start of training (5e-4 left slow pixel seeds short of solving
    at 100k env steps; benchmarks/learner_study)."""
    final_learning_rate: float | None = field(
        default=1e-4, metadata=valid(lambda v: v >= 0, ">= 0", optional=True))
    """If set, the learning rate decays linearly to this value at the end of the step budget."""
    optimizer: str = field(default="adam", metadata=one_of(OPTIMIZERS))
    """One of ``OPTIMIZERS``: ``adam`` or ``rmsprop`` (the optimizer of the Nature DQN)."""
    optimizer_epsilon: float = field(default=1e-7, metadata=POSITIVE)
    """The optimizer's epsilon (added to the root of the second-moment estimate)."""
    max_grad_norm: float = field(default=10.0, metadata=POSITIVE)
    """Global-norm gradient clipping threshold."""
    huber_delta: float = field(default=1.0, metadata=POSITIVE)
    """Huber loss threshold between the quadratic and linear regimes."""
    double_dqn: bool = True
    """Select the bootstrap action with the online network, evaluate it with the target."""
    target_update_interval: int = field(default=16, metadata=POSITIVE_INT)
    """Env steps between target updates (applied at the end of the training phase due then)."""
    tau: float = field(default=0.02, metadata=valid(lambda v: 0 < v <= 1, "in (0, 1]"))
    """Target update weight: 1.0 is a hard copy, < 1 a Polyak average (0.02 per phase of 4
    gradient steps: about 0.005 per step)."""
    exploration_initial_eps: float = field(default=1.0, metadata=UNIT)
    """Epsilon at the first step."""
    exploration_final_eps: float = field(default=0.05, metadata=UNIT)
    """Epsilon after ``exploration_steps``."""
    exploration_steps: int = field(default=20_000, metadata=POSITIVE_INT)
    """Env steps over which epsilon decays linearly."""
    jit_compile: bool = False
    """XLA-compile the fused update (faster for small MLPs on CPU: measure for your model)."""
    n_step: int = field(default=10, metadata=valid(lambda v: v >= 1, "an integer >= 1"))
    """Steps of reward summed before bootstrapping (1 = one-step TD)."""
    prioritized: bool = True
    """Proportional prioritized replay (sum tree) with importance-sampling weights."""
    priority_alpha: float = field(default=0.6, metadata=valid(lambda v: v >= 0, ">= 0"))
    """How much priorities skew sampling: 0 is uniform."""
    priority_beta_initial: float = field(default=0.4, metadata=UNIT)
    """Importance-weight exponent at the start; annealed linearly to 1 at ``total_steps``."""
    priority_eps: float = field(default=1e-6, metadata=POSITIVE)
    """Added to |TD error| so no transition's priority is zero."""
    eval_weight_average: float | None = field(
        default=0.999, metadata=valid(lambda v: 0 < v < 1, "in (0, 1)", optional=True))
    """If set: greedy evaluations and the saved model use an exponential moving average of the
    online weights with this decay per gradient step (Polyak averaging of the iterates, Nikishin
    et al. 2018); acting and learning are unchanged, and the final evaluation also grades the
    online network on the same episodes (eval.json ``online_network``). None: the online
    weights. On pixels it lifted the one seed of 5-9 whose online network wavered (451.4 ->
    497.1; benchmarks/learner_study)."""
    learning_starts_burst: bool = True
    """When learning starts, run at once the gradient steps "owed" since env step 0 (the replay
    ratio counted from step 0: ``learning_starts / train_freq`` phases on the first random
    transitions); false counts the replay ratio from ``learning_starts``, as SB3 does."""
    augment_pad: int = field(default=2, metadata=valid(lambda v: v >= 0, ">= 0 (0 = off)"))
    """DrQ's random shift of sampled image observations (Kostrikov et al. 2020), up to this many
    pixels each way (edge-padded, one shift for all frames of an observation, drawn
    independently for the observation and the next one); 0 turns it off. Acting and evaluation
    see unshifted frames. The 4-float state has no image to shift: on a state env it changes
    nothing, so one trainer serves both inputs. On pixel seeds 5-9 it took the final networks
    from 1 of 5 to 5 of 5 at >= 475 (benchmarks/learner_study)."""


@dataclass
class ReinforceConfig:
    """REINFORCE hyperparameters (the seed notebook's; ``trainer=reinforce``)."""

    _target_: str = "pixel_dqn.config.ReinforceConfig"
    episodes_per_update: int = field(default=10, metadata=POSITIVE_INT)
    """Episodes played (side by side, one sub-env each) with the policy before each update."""
    updates: int = field(default=150, metadata=POSITIVE_INT)
    """Policy-gradient updates: the training budget (``total_steps`` is not used)."""
    max_episode_steps: int = field(default=200, metadata=POSITIVE_INT)
    """Cap on every episode of the run, training and evaluation (the notebook's 200)."""
    gamma: float = field(default=0.95, metadata=UNIT)
    """Discount of the returns that weight each step's gradient, in [0, 1]."""
    learning_rate: float = field(default=0.01, metadata=POSITIVE)
    """Adam learning rate."""


@dataclass
class EvalConfig:
    """Greedy evaluation on a separate env with its own seeds."""

    every_steps: int = field(default=5_000, metadata=POSITIVE_INT)
    """Env steps between evaluations during training (the learning curve's points)."""
    episodes: int = field(default=10, metadata=POSITIVE_INT)
    """Episodes per periodic evaluation. They are for curves: eval.json counts the greedy env
    steps they played (``evaluation_env_steps``), about ``episodes * 500`` each once solved."""
    final_episodes: int = field(default=100, metadata=POSITIVE_INT)
    """Episodes of the final evaluation written to eval.json: the grade of the run."""
    keep_best: bool = False
    """Selection, off by default: keep the evaluated network's weights of the best periodic
    evaluation (the latest of ties); the final evaluation and ``model.keras`` use them, and
    eval.json also reports the last network's final evaluation (``last_network``) on the same
    episodes' seeds. The periodic evaluations it chooses from are extra interaction."""


@dataclass
class ThreadsConfig:
    """TensorFlow thread pools, set before TensorFlow initialises (0 = one per core)."""

    intra_op: int = field(default=1, metadata=valid(lambda v: v >= 0, ">= 0 (0 = one per core)"))
    """Threads inside one op (convolutions, matrix products); 0 = one per core (the joblib
    launcher then gives each parallel job its share of the cores). A pixel run's numbers
    depend on it (convolutions split their sums by thread)."""
    inter_op: int = field(default=0, metadata=valid(lambda v: v >= 0, ">= 0 (0 = one per core)"))
    """Independent ops run side by side; 0 = one per core (under joblib: each job's share).
    Changes no result: each op's kernel runs the same, only their order in time differs."""


@dataclass
class CheckpointConfig:
    """Kill-safe checkpoints in ``<run_dir>/checkpoints``; rerunning the command resumes."""

    enabled: bool = True
    """Checkpoint periodically, at the end and on SIGTERM/SIGINT; resume from the newest."""
    every_steps: int | None = field(
        default=25_000, metadata=valid(lambda v: v > 0, "a positive integer", optional=True))
    """Env steps between periodic checkpoints (null: only at the end and on a signal)."""
    keep: int = field(default=2, metadata=valid(lambda v: v >= 1, "an integer >= 1"))
    """Newest checkpoints kept on disk (a pixel checkpoint holds the replay: ~0.36 GB/100k)."""


@dataclass
class DisplayConfig:
    """Headless rendering."""

    virtual: bool = False
    """Start an Xvfb virtual display for renderers that need X (needs the xvfb package)."""


@dataclass
class Config:
    """Top-level training config: one env, one model, one trainer."""

    env: Any = MISSING
    """A ``StateEnvConfig`` or ``PixelEnvConfig`` (the ``env`` option)."""
    model: Any = MISSING
    """An ``MLPConfig`` or ``CNNConfig`` (the ``model`` option)."""
    trainer: Any = MISSING
    """A ``DQNConfig`` or ``ReinforceConfig`` (the ``trainer`` option)."""
    seed: int = 0
    """The one seed everything (networks, replay, exploration, envs) is derived from."""
    total_steps: int = field(default=100_000, metadata=POSITIVE_INT)
    """Env step budget."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    threads: ThreadsConfig = field(default_factory=ThreadsConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    deterministic: bool = True
    """TensorFlow op determinism: the same seed on the same machine gives identical runs."""
    progress_interval_s: float = field(default=10.0, metadata=POSITIVE)
    """Seconds between progress lines when stdout is not a terminal."""
    tensorboard: bool = True
    """Write TensorBoard event files to ``<run_dir>/tb``."""


BASE_OPTIONS = {
    "env": {"base_state": StateEnvConfig, "base_pixels": PixelEnvConfig},
    "model": {"base_mlp": MLPConfig, "base_cnn": CNNConfig},
    "trainer": {"base_dqn": DQNConfig, "base_reinforce": ReinforceConfig},
}
"""Each group's schemas, by the name a ``conf/<group>/*.yaml`` defaults list extends them by."""
GROUP_SCHEMAS = tuple(schema for bases in BASE_OPTIONS.values() for schema in bases.values())
_SCHEMA_BY_TARGET = {schema._target_: schema for schema in GROUP_SCHEMAS}


def load_config(node: DictConfig | Mapping, source: str = "the config") -> Config:
    """The run's config as typed dataclasses, checked: a composed Hydra config (the entry
    point's) or a run's saved ``config.yaml`` read back. Raises ``ConfigError`` in one line.

    Each group (``env``, ``model``, ``trainer``) becomes the schema its ``_target_`` names, so a
    config read back from a file types the same as the one Hydra composed.
    """
    node = OmegaConf.create(node)
    groups = {group: _group_schema(group, OmegaConf.to_container(node).get(group), source)
              for group in GROUPS}
    # before resolving: a CNN reads the env's obs_mode, which a state env does not have
    _check_model_fits_env(groups["env"], groups["model"])
    try:
        tree = OmegaConf.to_container(node, resolve=True)
        untyped = {**tree, **dict.fromkeys(GROUPS, None)}
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), untyped))
        cfg = replace(cfg, **{group: OmegaConf.to_object(OmegaConf.merge(
            OmegaConf.structured(schema), tree[group])) for group, schema in groups.items()})
    except OmegaConfBaseException as error:
        reason = str(error).splitlines()[0]
        raise ConfigError(f"{source} does not fit the config schema: {reason}") from None
    validate(cfg)
    return cfg


def _group_schema(group: str, node: Any, source: str) -> type:
    target = node.get("_target_") if isinstance(node, dict) else None
    if target not in _SCHEMA_BY_TARGET:
        raise ConfigError(f"{source}: {group}._target_={target!r} names no schema; known: "
                          f"{', '.join(sorted(_SCHEMA_BY_TARGET))}")
    return _SCHEMA_BY_TARGET[target]


def validate(cfg: Config) -> None:
    """Check every field's range, then the rules between fields; raise ``ConfigError``."""
    check_ranges(cfg)
    env, model, trainer = cfg.env, cfg.model, cfg.trainer
    if cfg.total_steps < env.num_envs:
        _invalid("total_steps", cfg.total_steps, f">= env.num_envs ({env.num_envs})")
    if cfg.checkpoint.enabled and env.vector_mode == "async":
        raise ConfigError("env.vector_mode='async' cannot be checkpointed (its envs live in "
                          "other processes): use env.vector_mode=sync or checkpoint.enabled=false")
    _check_model_fits_env(type(env), type(model))
    if isinstance(env, PixelEnvConfig):
        _check_cnn_fits(model, env)
    if isinstance(trainer, DQNConfig):
        if trainer.batch_size > trainer.buffer_size:
            _invalid("trainer.batch_size", trainer.batch_size,
                     f"<= trainer.buffer_size ({trainer.buffer_size})")
        if trainer.learning_starts < trainer.batch_size:
            _invalid("trainer.learning_starts", trainer.learning_starts,
                     f">= trainer.batch_size ({trainer.batch_size})")


def check_ranges(node: Any, prefix: str = "") -> None:
    """Walk a config's fields (nested ones too) and check each against its ``Range``."""
    for spec in fields(node):
        value = getattr(node, spec.name)
        rule = spec.metadata.get("range")
        if rule is not None and not rule.test(value):
            _invalid(prefix + spec.name, value, rule.valid)
        if is_dataclass(value):
            check_ranges(value, f"{prefix}{spec.name}.")


def _check_model_fits_env(env: type, model: type) -> None:
    pixels, cnn = issubclass(env, PixelEnvConfig), issubclass(model, CNNConfig)
    if pixels != cnn:
        fits = "model=cnn for env=cartpole_pixels" if pixels else "model=mlp for a state env"
        raise ConfigError(f"model={'cnn' if cnn else 'mlp'} does not fit this env: use {fits}")


def _check_cnn_fits(model: CNNConfig, env: PixelEnvConfig) -> None:
    layers = len(model.filters)
    for key in ("kernel_sizes", "strides"):
        if len(getattr(model, key)) != layers:
            _invalid(f"model.{key}", getattr(model, key),
                     f"one entry per convolution ({layers}, as model.filters)")
    height, width = env.size
    for kernel, stride in zip(model.kernel_sizes, model.strides, strict=True):
        height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    if min(height, width) < 1:
        _invalid("env.size", env.size, "large enough for the CNN's kernels and strides "
                                       "(model.kernel_sizes, model.strides)")


def _invalid(key: str, value: Any, valid_values: str) -> None:
    raise ConfigError(f"{key}={value!r} is invalid: must be {valid_values}")


def register_configs() -> None:
    """Register the schemas; call before Hydra composes ``conf/``."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, bases in BASE_OPTIONS.items():
        for name, schema in bases.items():
            store.store(group=group, name=name, node=schema)
