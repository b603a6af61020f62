"""Typed configuration schemas, registered in Hydra's ConfigStore: the home of every default.

Each YAML file under ``conf/`` extends one of these dataclasses (through its defaults list), so
Hydra rejects a wrongly typed value with the key's full name (``trainer.gamma``) before anything
runs. ``pixel_dqn.validation.validate`` then checks the ranges that types cannot express.
A schema's defaults are those of the default run (``conf/config.yaml``'s choices); a YAML file
sets only what differs from its schema, and the builders' keyword defaults read the schema's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

OPTIMIZERS = ("adam", "rmsprop")
"""``trainer.optimizer`` choices (pixel_dqn.agents.optimizers builds them)."""


@dataclass
class EnvConfig:
    """What every env option has: the env id, its time limit and the vector env around it."""

    _target_: str = "pixel_dqn.envs.make_env"
    _partial_: bool = True
    id: str = "CartPole-v1"
    """Gymnasium environment id."""
    max_episode_steps: int | None = None
    """Time limit (a truncation, not a terminal); None keeps the env's own (500 for v1)."""
    num_envs: int = 1
    """Parallel envs stepped together; the agent acts for all in one batched call."""
    vector_mode: str = "sync"
    """``sync`` (one process) or ``async`` (a subprocess per env)."""


@dataclass
class StateEnvConfig(EnvConfig):
    """CartPole whose observation is the 4-float physics state."""

    num_envs: int = 8


@dataclass
class PixelEnvConfig(EnvConfig):
    """CartPole seen as uint8 screen patches around the cart (pixel_dqn.envs.pixels)."""

    _target_: str = "pixel_dqn.envs.make_pixel_env"
    num_envs: int = 4
    renderer: str = "fast"
    """``fast`` (OpenCV, draws the patch only) or ``pygame`` (gymnasium's full frame, cropped)."""
    band: list[float] = field(default_factory=lambda: [0.4, 0.8])
    """Top and bottom of the cropped band, as fractions of the screen height."""
    window: float = 0.6
    """Width of the window around the cart, as a fraction of the screen width."""
    follow: float = 0.5
    """How far the window follows the cart: 1 centres it on the cart, 0.5 moves it half as
    far (the cart's place in the patch then shows its position on the track)."""
    size: list[int] = field(default_factory=lambda: [40, 90])
    """Patch height and width after area resizing."""
    gray: bool = True
    """Gray patches (1 byte per pixel) or RGB (3)."""
    obs_mode: str = "diff_current"
    """``diff`` (current - previous), ``diff_current`` (current and diff) or ``stack``."""
    stack: int = 4
    """Patches per observation in ``stack`` mode."""
    track_rows: int = 0
    """Rows of a coarse view of the whole track (the same band, fixed on the screen, as wide as
    the patch) stacked under the patch around the cart, so the cart's position on the track
    shows while the patch keeps the pole's detail; 0: no track view."""
    diff_lag: int = 1
    """Env steps between the two patches a diff subtracts (``diff`` and ``diff_current``): the
    observation carries the last ``diff_lag + 1`` patches and the diff is the newest minus the
    oldest, so slow motion shows ``diff_lag`` times larger."""


@dataclass
class MLPConfig:
    """Fully connected Q-network; input and output sizes come from the env at build time."""

    _target_: str = "pixel_dqn.networks.build_mlp"
    _partial_: bool = True
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """Units of each hidden layer."""
    activation: str = "relu"
    """Keras activation name for hidden layers."""
    dueling: bool = False
    """Dueling head: Q = V + A - mean(A), from separate value and advantage streams."""
    layer_norm: bool = True
    """LayerNorm on each hidden layer's pre-activation (PQN, Gallici et al. 2024): it keeps
    the DQN runs' greedy policies from drifting once solved (benchmarks/learner_study)."""


@dataclass
class CNNConfig:
    """Convolutional Q-network; ``obs_mode`` and ``gray`` follow the env (interpolated)."""

    _target_: str = "pixel_dqn.networks.build_cnn"
    _partial_: bool = True
    obs_mode: str = MISSING
    """The env's observation mode: the first layer forms the diff from the stored frames."""
    gray: bool = MISSING
    """Whether the env's patches are gray (1 channel per frame) or RGB (3)."""
    filters: list[int] = field(default_factory=lambda: [8, 16])
    """Filters of each convolution."""
    kernel_sizes: list[int] = field(default_factory=lambda: [8, 4])
    """Kernel size of each convolution."""
    strides: list[int] = field(default_factory=lambda: [4, 2])
    """Stride of each convolution."""
    dense_sizes: list[int] = field(default_factory=lambda: [128])
    """Units of the dense layers after the convolutions."""
    dueling: bool = True
    """Dueling head: Q = V + A - mean(A), from separate value and advantage streams."""
    layer_norm: bool = True
    """LayerNorm on each dense layer's pre-activation (PQN, Gallici et al. 2024): it keeps
    the DQN runs' greedy policies from drifting once solved (benchmarks/learner_study)."""


@dataclass
class DQNConfig:
    """DQN hyperparameters. ``instantiate(cfg.trainer)`` returns an instance of this class."""

    _target_: str = "pixel_dqn.config.DQNConfig"
    buffer_size: int = 100_000
    """Replay capacity in transitions."""
    learning_starts: int = 1_000
    """Env steps of uniform-random actions before the first gradient step."""
    batch_size: int = 64
    """Transitions per gradient step."""
    train_freq: int = 16
    """Env steps between training phases."""
    gradient_steps: int = 4
    """Gradient steps per training phase (replay ratio = gradient_steps / train_freq)."""
    gamma: float = 0.995
    """Discount factor, in [0, 1). With 10-step returns and the Polyak target, 0.995's values
    (at most 200) settle within the budget; 0.999's still climbed at 100k env steps."""
    learning_rate: float = 1e-3
    """Adam learning rate at the start of training (5e-4 left slow pixel seeds short of solving
    at 100k env steps; benchmarks/learner_study)."""
    final_learning_rate: float | None = 1e-4
    """If set, the learning rate decays linearly to this value at the end of the step budget."""
    optimizer: str = "adam"
    """One of ``OPTIMIZERS``: ``adam`` or ``rmsprop`` (the optimizer of the Nature DQN)."""
    optimizer_epsilon: float = 1e-7
    """The optimizer's epsilon (added to the root of the second-moment estimate)."""
    max_grad_norm: float = 10.0
    """Global-norm gradient clipping threshold."""
    huber_delta: float = 1.0
    """Huber loss threshold between the quadratic and linear regimes."""
    double_dqn: bool = True
    """Select the bootstrap action with the online network, evaluate it with the target."""
    target_update_interval: int = 16
    """Env steps between target updates (applied at the end of the training phase due then)."""
    tau: float = 0.02
    """Target update weight: 1.0 is a hard copy, < 1 a Polyak average (0.02 per phase of 4
    gradient steps: about 0.005 per step)."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the first step."""
    exploration_final_eps: float = 0.05
    """Epsilon after ``exploration_steps``."""
    exploration_steps: int = 20_000
    """Env steps over which epsilon decays linearly."""
    jit_compile: bool = False
    """XLA-compile the fused update (faster for small MLPs on CPU: measure for your model)."""
    n_step: int = 10
    """Steps of reward summed before bootstrapping (1 = one-step TD)."""
    prioritized: bool = True
    """Proportional prioritized replay (sum tree) with importance-sampling weights."""
    priority_alpha: float = 0.6
    """How much priorities skew sampling: 0 is uniform."""
    priority_beta_initial: float = 0.4
    """Importance-weight exponent at the start; annealed linearly to 1 at ``total_steps``."""
    priority_eps: float = 1e-6
    """Added to |TD error| so no transition's priority is zero."""
    eval_weight_average: float | None = None
    """If set (e.g. 0.999): greedy evaluations and the saved model use an exponential moving
    average of the online weights with this decay per gradient step (Polyak averaging of the
    iterates); acting and learning are unchanged. None: the online weights."""
    learning_starts_burst: bool = True
    """When learning starts, run at once the gradient steps "owed" since env step 0 (the replay
    ratio counted from step 0: ``learning_starts / train_freq`` phases on the first random
    transitions); false counts the replay ratio from ``learning_starts``, as SB3 does."""
    augment_pad: int = 0
    """Pixels only: DrQ's random shift of sampled observations, up to this many pixels each
    way (edge-padded, one shift for all frames of an observation, drawn independently for the
    observation and the next one); 0 turns it off. Acting and evaluation see unshifted frames."""


@dataclass
class ReinforceConfig:
    """REINFORCE hyperparameters (the seed notebook's); ``instantiate`` returns an instance."""

    _target_: str = "pixel_dqn.config.ReinforceConfig"
    episodes_per_update: int = 10
    """Episodes played (side by side, one sub-env each) with the policy before each update."""
    updates: int = 150
    """Policy-gradient updates: the training budget (``total_steps`` is not used)."""
    max_episode_steps: int = 200
    """Cap on every episode of the run, training and evaluation (the notebook's 200)."""
    gamma: float = 0.95
    """Discount of the returns that weight each step's gradient, in [0, 1]."""
    learning_rate: float = 0.01
    """Adam learning rate."""


@dataclass
class EvalConfig:
    """Greedy evaluation on a separate env with its own seeds."""

    every_steps: int = 5_000
    """Env steps between evaluations during training (the learning curve's points)."""
    episodes: int = 10
    """Episodes per periodic evaluation. They are for curves: eval.json counts the greedy env
    steps they played (``evaluation_env_steps``), about ``episodes * 500`` each once solved."""
    final_episodes: int = 100
    """Episodes of the final evaluation written to eval.json: the grade of the run."""
    keep_best: bool = False
    """Selection, off by default: keep the evaluated network's weights of the best periodic
    evaluation (the latest of ties); the final evaluation and ``model.keras`` use them, and
    eval.json also reports the last network's final evaluation (``last_network``) on the same
    episodes' seeds. The periodic evaluations it chooses from are extra interaction."""


@dataclass
class ThreadsConfig:
    """TensorFlow thread pools, set before TensorFlow initialises (0 = one per core)."""

    intra_op: int = 1
    """Threads inside one op (convolutions, matrix products); 0 = one per core (the joblib
    launcher then gives each parallel job its share of the cores). A pixel run's numbers
    depend on it (convolutions split their sums by thread)."""
    inter_op: int = 0
    """Independent ops run side by side; 0 = one per core (under joblib: each job's share).
    Changes no result: each op's kernel runs the same, only their order in time differs."""


@dataclass
class CheckpointConfig:
    """Kill-safe checkpoints in ``<run_dir>/checkpoints``; rerunning the command resumes."""

    enabled: bool = True
    """Checkpoint periodically, at the end and on SIGTERM/SIGINT; resume from the newest."""
    every_steps: int | None = 25_000
    """Env steps between periodic checkpoints (null: only at the end and on a signal)."""
    keep: int = 2
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
    model: Any = MISSING
    trainer: Any = MISSING
    seed: int = 0
    """The one seed everything (networks, replay, exploration, envs) is derived from."""
    total_steps: int = 100_000
    """Env step budget."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    threads: ThreadsConfig = field(default_factory=ThreadsConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    deterministic: bool = True
    """TensorFlow op determinism: the same seed on the same machine gives identical runs."""
    progress_interval_s: float = 10.0
    """Seconds between progress lines when stdout is not a terminal."""
    tensorboard: bool = True
    """Write TensorBoard event files to ``<run_dir>/tb``."""


GROUP_SCHEMAS = (StateEnvConfig, PixelEnvConfig, MLPConfig, CNNConfig, DQNConfig, ReinforceConfig)
_SCHEMA_BY_TARGET = {schema._target_: schema for schema in GROUP_SCHEMAS}


def config_class(node: DictConfig) -> type:
    """The schema an ``env``, ``model`` or ``trainer`` node was composed from (e.g.
    ``PixelEnvConfig``), also for a node read back from a run's ``config.yaml``."""
    schema = OmegaConf.get_type(node)
    if schema in GROUP_SCHEMAS:
        return schema
    target = node.get("_target_")
    if target not in _SCHEMA_BY_TARGET:
        raise ValueError(f"no schema builds {target!r}; known: {sorted(_SCHEMA_BY_TARGET)}")
    return _SCHEMA_BY_TARGET[target]


def register_configs() -> None:
    """Register the schemas; call before Hydra composes ``conf/``."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    store.store(group="env", name="base_state", node=StateEnvConfig)
    store.store(group="env", name="base_pixels", node=PixelEnvConfig)
    store.store(group="model", name="base_mlp", node=MLPConfig)
    store.store(group="model", name="base_cnn", node=CNNConfig)
    store.store(group="trainer", name="base_dqn", node=DQNConfig)
    store.store(group="trainer", name="base_reinforce", node=ReinforceConfig)
