"""Play greedy episodes with a trained run's model and print mean/std/min/max.

    python scripts/evaluate.py run_dir=outputs/2026-11-25/10-00-00_cartpole_state-mlp-dqn-seed0 \\
        episodes=100 seed=0 [max_episode_steps=200]
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pixel_dqn.cli import UserError, exit_on_user_error, quiet_tensorflow_logs


@dataclass
class EvaluateArgs:
    run_dir: str = MISSING
    """A run directory written by scripts/train.py."""
    episodes: int = 100
    """Greedy episodes to play."""
    seed: int = 0
    """Seed of the evaluation episodes (independent of the training seed)."""
    max_episode_steps: int | None = None
    """Override the env's time limit (e.g. 200 to compare with the seed notebook)."""


def parse_args(argv: list[str]) -> EvaluateArgs:
    try:
        args = OmegaConf.merge(OmegaConf.structured(EvaluateArgs), OmegaConf.from_dotlist(argv))
        return OmegaConf.to_object(args)
    except OmegaConfBaseException as error:
        first_line = str(error).splitlines()[0]
        raise UserError(f"{first_line} (valid keys: run_dir, episodes, seed, "
                        f"max_episode_steps; e.g. run_dir=outputs/... episodes=100)") from None


def main(argv: list[str]) -> None:
    quiet_tensorflow_logs()
    with exit_on_user_error():
        args = parse_args(argv)
        if args.episodes < 1:
            raise UserError(f"episodes={args.episodes} is invalid: must be a positive integer")
        from pixel_dqn.evaluation import evaluate_run_dir

        try:
            result = evaluate_run_dir(Path(args.run_dir), args.episodes, args.seed,
                                      args.max_episode_steps)
        except FileNotFoundError as error:
            raise UserError(str(error)) from None
    summary = result.summary()
    print(json.dumps(summary))
    print(f"{summary['episodes']} greedy episodes: mean {summary['mean']:.1f} "
          f"std {summary['std']:.1f} min {summary['min']:.0f} max {summary['max']:.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
