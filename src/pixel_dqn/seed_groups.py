"""Which configs can train as one seed stack: DQN configs equal but for their seeds."""

from __future__ import annotations

from dataclasses import asdict, replace

from pixel_dqn.cli import UserError
from pixel_dqn.config import Config, DQNConfig


def check_stackable(cfgs: list[Config]) -> None:
    """One-line errors unless ``cfgs`` are DQN configs equal up to their seeds."""
    if not cfgs:
        raise UserError("a seed stack needs at least one config")
    first = asdict(replace(cfgs[0], seed=0))
    for cfg in cfgs:
        if not isinstance(cfg.trainer, DQNConfig):
            raise UserError(f"a seed stack trains trainer=dqn configs only, not "
                        f"{type(cfg.trainer).__name__}")
        if cfg.model.precision != "float32":
            raise UserError(f"a seed stack computes in float32 only, not model.precision="
                            f"{cfg.model.precision}: run these seeds with "
                            f"hydra/launcher=joblib")
        if asdict(replace(cfg, seed=0)) != first:
            changed = sorted(k for k, v in asdict(replace(cfg, seed=0)).items() if first[k] != v)
            raise UserError(f"the seeds of a stack must share their config but for `seed`; "
                        f"these keys differ: {', '.join(changed)}")
    seeds = [cfg.seed for cfg in cfgs]
    if len(set(seeds)) != len(seeds):
        raise UserError(f"a seed stack's seeds must differ, got {seeds}")
