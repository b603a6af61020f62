"""Search spaces of ``scripts/tune.py`` (``conf/search/*.yaml``): the overrides every trial
starts from, the training seed, the objective, sampler and pruner, the searched ``params``
(dotted config keys -> distributions) and ``enqueue`` trials to run first. Each mistake is a
one-line ``ConfigError`` naming the space and the key."""

from __future__ import annotations

import contextlib
import difflib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from omegaconf import DictConfig, OmegaConf

from pixel_dqn.config import ConfigError, load_config, register_configs
from pixel_dqn.flat_config import flatten_config
from pixel_dqn.tune.optuna_api import distribution_contains

SPACE_DIR = "search"
OBJECTIVES = ("final_eval_mean",)  # eval.json's mean; periodic eval rows are its intermediates
DIRECTIONS = ("maximize", "minimize")
# keys the tuner sets on every trial's command line itself
TUNER_KEYS = ("seed", "threads.intra_op", "threads.inter_op", "hydra.run.dir")
TOP_KEYS = ("description", "seed", "overrides", "objective", "sampler", "pruner", "params",
            "enqueue")
FIELDS = {"float": ("low", "high", "log", "step"), "int": ("low", "high", "log", "step"),
          "categorical": ("choices",)}
PRUNERS = {"median": optuna.pruners.MedianPruner, "percentile": optuna.pruners.PercentilePruner,
           "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
           "hyperband": optuna.pruners.HyperbandPruner,
           "threshold": optuna.pruners.ThresholdPruner, "none": optuna.pruners.NopPruner}
SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}


@dataclass(frozen=True)
class SearchSpace:
    """A checked search space; ``spec`` is its normalised form (what a study dir records)."""

    name: str
    spec: dict[str, Any]
    params: dict[str, optuna.distributions.BaseDistribution]

    @property
    def overrides(self) -> list[str]:
        return list(self.spec["overrides"])

    @property
    def seed(self) -> int:
        return int(self.spec["seed"])

    def make_pruner(self) -> optuna.pruners.BasePruner:
        """The pruner the space's ``pruner`` mapping describes (median by default)."""
        return _build(self.name, "pruner", PRUNERS, self.spec["pruner"])

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """The space's sampler (TPE by default), seeded with ``seed``."""
        return _build(self.name, "sampler", SAMPLERS, {**self.spec["sampler"], "seed": seed})

    def suggest(self, trial: optuna.Trial) -> list[str]:
        """Sample (or, for an enqueued or retried trial, read) every param of ``trial`` and
        return them as Hydra overrides."""
        overrides = []
        for key, dist in self.params.items():
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                value = trial.suggest_categorical(key, dist.choices)
            elif isinstance(dist, optuna.distributions.IntDistribution):
                value = trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
            else:
                value = trial.suggest_float(key, dist.low, dist.high, step=dist.step, log=dist.log)
            overrides.append(format_override(key, value))
        return overrides


def format_override(key: str, value: Any) -> str:
    """``key=value`` as Hydra parses it back to the same value (floats by ``repr``, which
    round-trips exactly, so a printed command repeats the trial bit for bit)."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str) and not re.fullmatch(r"[\w./-]+", value):
        text = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    else:
        text = str(value)
    return f"{key}={text}"


def override_key(override: str) -> str:
    """The config key an override sets (``+arm=x`` -> ``arm``)."""
    return override.split("=", 1)[0].lstrip("+~")


def find_space(name_or_path: str, conf_dir: Path) -> Path:
    """``conf/search/<name>.yaml``, or the YAML file given by its path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.parent != Path("."):
        if not path.is_file():
            raise ConfigError(f"search space file {path} not found")
        return path
    path = conf_dir / SPACE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (conf_dir / SPACE_DIR).glob("*.yaml"))
        raise ConfigError(f"search space {name_or_path!r} not found in {path.parent}: "
                          f"use one of {', '.join(known)} or a YAML file's path")
    return path


def load_space(path: Path) -> SearchSpace:
    """Read and check a space file (structure, distributions, enqueued values)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"search space {path} is not valid YAML: "
                          f"{str(error).splitlines()[0]}") from None
    return parse_space(path.stem, raw)


def parse_space(name: str, raw: Any) -> SearchSpace:
    """Check a space given as a mapping and normalise it (defaults filled in)."""
    def fail(message: str) -> ConfigError:
        return ConfigError(f"search space {name}: {message}")

    if not isinstance(raw, dict):
        raise fail("must be a mapping with a params: entry")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise fail(f"unknown entry {unknown[0]!r}: use {', '.join(TOP_KEYS)}")
    overrides = raw.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise fail("overrides must be a list of Hydra overrides (key=value)")
    for key in ("objective", "sampler", "pruner"):
        if not isinstance(raw.get(key) or {}, dict):
            raise fail(f"{key} must be a mapping, not {raw[key]!r}")
    objective = {"metric": "final_eval_mean", "direction": "maximize",
                 **(raw.get("objective") or {})}
    if objective["metric"] not in OBJECTIVES or objective["direction"] not in DIRECTIONS \
            or len(objective) != 2:
        raise fail(f"objective must be {{metric: {' | '.join(OBJECTIVES)}, "
                   f"direction: {' | '.join(DIRECTIONS)}}}, not {raw.get('objective')!r}")
    params_raw = raw.get("params")
    if not isinstance(params_raw, dict) or not params_raw:
        raise fail("params must map dotted config keys to distributions")
    params_spec, params = {}, {}
    for key, spec in params_raw.items():
        params_spec[key], params[key] = _parse_param(fail, str(key), spec)
    for key in params:
        if key in TUNER_KEYS or key.startswith("hydra."):
            raise fail(f"params.{key}: {key} is set by the tuner, it cannot be searched")
    spec = {
        "description": str(raw.get("description", "")),
        "seed": raw.get("seed", 0),
        "overrides": overrides,
        "objective": objective,
        "sampler": {"type": "tpe", **(raw.get("sampler") or {})},
        "pruner": {"type": "median", **(raw.get("pruner") or {})},
        "params": params_spec,
        "enqueue": raw.get("enqueue") or [],
    }
    if not isinstance(spec["seed"], int) or isinstance(spec["seed"], bool):
        raise fail(f"seed={spec['seed']!r} is invalid: must be an integer")
    if "seed" in spec["sampler"]:
        raise fail("sampler.seed is invalid: the sampler's seed derives from the space's seed")
    space = SearchSpace(name, spec, params)
    space.make_pruner()
    space.make_sampler(0)
    _check_enqueue(fail, spec["enqueue"], params)
    return space


def _parse_param(fail: Callable[[str], ConfigError], key: str, spec: Any
                 ) -> tuple[dict, optuna.distributions.BaseDistribution]:
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind not in FIELDS:
        raise fail(f"params.{key}.type={kind!r} is invalid: must be one of {', '.join(FIELDS)}")
    unknown = sorted(set(spec) - {"type", *FIELDS[kind]})
    if unknown:
        raise fail(f"params.{key}: unknown field {unknown[0]!r} for type {kind}: use "
                   f"{', '.join(FIELDS[kind])}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise fail(f"params.{key}.choices is empty: list at least one value")
        if not all(c is None or isinstance(c, bool | int | float | str) for c in choices):
            raise fail(f"params.{key}.choices={choices!r}: choices must be single values "
                       "(null, true/false, numbers or strings)")
        if len({repr(c) for c in choices}) != len(choices):
            raise fail(f"params.{key}.choices={choices!r} repeats a choice")
        return ({"type": kind, "choices": choices},
                optuna.distributions.CategoricalDistribution(choices))
    number = float if kind == "float" else int
    bounds = {}
    for field in ("low", "high"):
        value = spec.get(field)
        if kind == "float" and isinstance(value, str | int) and not isinstance(value, bool):
            with contextlib.suppress(ValueError):  # YAML 1.1 reads 1e-5 as a string
                value = float(value)
        if not isinstance(value, number) or isinstance(value, bool):
            raise fail(f"params.{key}.{field}={value!r} is invalid: must be a number"
                       + (" (an integer)" if kind == "int" else ""))
        bounds[field] = number(value)
    low, high = bounds["low"], bounds["high"]
    if low > high:
        raise fail(f"params.{key}: low={low} > high={high}, the range is empty")
    normal = {"type": kind, "low": low, "high": high, "log": bool(spec.get("log", False)),
              "step": spec.get("step", 1 if kind == "int" else None)}
    dist_class = (optuna.distributions.FloatDistribution if kind == "float"
                  else optuna.distributions.IntDistribution)
    try:
        return normal, dist_class(**{k: v for k, v in normal.items() if k != "type"})
    except ValueError as error:
        raise fail(f"params.{key}: {error}") from None


def _build(name: str, what: str, classes: dict, spec: dict) -> Any:
    kind = spec.get("type")
    if kind not in classes:
        raise ConfigError(f"search space {name}: {what}.type={kind!r} is invalid: must be one "
                          f"of {', '.join(classes)}")
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return classes[kind](**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"search space {name}: {what} {spec}: {error}") from None


def _check_enqueue(fail: Callable[[str], ConfigError], enqueue: Any, params: dict) -> None:
    if not isinstance(enqueue, list) or not all(isinstance(e, dict) for e in enqueue):
        raise fail("enqueue must be a list of {param: value} mappings")
    for index, entry in enumerate(enqueue):
        for key, value in entry.items():
            dist = params.get(key)
            if dist is None:
                raise fail(f"enqueue[{index}].{key} is not a searched param")
            if not distribution_contains(dist, value):
                raise fail(f"enqueue[{index}].{key}={value!r} is outside its distribution")


def check_against_config(space: SearchSpace, conf_dir: Path, extra: list[str]) -> None:
    """Compose the Hydra config with the space's overrides (and ``extra``): every searched key
    must exist, and each bound or choice alone must compose and pass ``load_config``'s checks."""
    from hydra import compose, initialize_config_dir

    base = [*space.overrides, *extra]
    for key in map(override_key, base):
        if key in TUNER_KEYS or key.startswith("hydra."):
            raise ConfigError(f"search space {space.name}: the overrides set {key}, which the "
                              "tuner sets (the space's seed, one thread per trial, its run dir)")
        if key in space.params:
            raise ConfigError(f"search space {space.name}: {key} is both searched (params) and "
                              "set in the overrides: drop one")
    register_configs()

    def composed(overrides: list[str], where: str) -> DictConfig:
        try:
            cfg = compose(config_name="config", overrides=overrides)
        except Exception as error:  # Hydra's many composition errors: keep their first line
            reason = " ".join(str(e).strip().splitlines()[0]
                              for e in (error, error.__cause__) if e is not None)
            raise ConfigError(f"search space {space.name}: {where}: {reason}") from None
        try:
            load_config(cfg)
        except ConfigError as error:
            raise ConfigError(f"search space {space.name}: {where}: {error}") from None
        return cfg

    with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
        cfg = composed(base, f"overrides {' '.join(base) or '(none)'}")
        keys = flatten_config(OmegaConf.to_container(cfg))
        values = {}
        for key, dist in space.params.items():
            if key not in keys:
                near = difflib.get_close_matches(key, keys, n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                raise ConfigError(f"search space {space.name}: params.{key} is not a key of the "
                                  f"config composed with {' '.join(base) or 'the defaults'}{hint}")
            values[key] = [format_override(key, v) for v in (
                dist.choices if isinstance(dist, optuna.distributions.CategoricalDistribution)
                else (dist.low, dist.high))]
        for index in range(max(map(len, values.values()))):
            try:  # every param at once, its index-th bound or choice: a few composes in all
                composed([*base, *(v[min(index, len(v) - 1)] for v in values.values())], "")
            except ConfigError:  # find the culprit; a clash between params is left to train.py
                for key, overrides in values.items():
                    for override in overrides:
                        composed([*base, override], f"params.{key}")
