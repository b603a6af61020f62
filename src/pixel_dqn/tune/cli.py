"""Hyperparameter search with Optuna over the Hydra config (docs/tuning.md).

    python -m pixel_dqn.tune --space NAME --dir DIR --trials N [--workers W] [-- overrides]

(also ``pixel-dqn-tune``, or ``python scripts/tune.py`` in a checkout). Each trial is a
``python -m pixel_dqn.train`` run in ``DIR/trials/<n>``; the search space is
``conf/search/NAME.yaml`` (or a YAML file's path). Rerunning the same command continues the
study until N trials are complete or pruned. ``--report`` only writes the results
(``trials.md``, ``trials.csv``, plots) and prints the best trial's command:

    python scripts/tune.py --space state_dqn --dir multirun/tune/state --trials 20 --workers 2
    python scripts/tune.py --dir multirun/tune/state --report
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pixel_dqn.cli import UserError, exit_on_user_error
from pixel_dqn.config import CONF_DIR


def main(argv: list[str] | None = None) -> int:
    """Run (or continue) a study, or with ``--report`` only write its results; the exit
    status."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", help="conf/search/<SPACE>.yaml, or a YAML file's path")
    parser.add_argument("--dir", type=Path, required=True, help="the study directory")
    parser.add_argument("--trials", type=int,
                        help="complete + pruned trials to reach (counted over every rerun)")
    parser.add_argument("--workers", type=int, default=1,
                        help="parallel trials, each train.py with one TensorFlow thread")
    parser.add_argument("--heartbeat-s", type=int, default=30,
                        help="a trial whose worker is silent for 3 heartbeats is retried")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL (default: sqlite:///DIR/study.db)")
    parser.add_argument("--report", action="store_true",
                        help="only write trials.md, trials.csv and plots; print the best trial")
    parser.add_argument("overrides", nargs="*",
                        help="Hydra overrides for every trial, after the space's (after --)")
    args = parser.parse_args(argv)
    with exit_on_user_error():
        try:
            from pixel_dqn.tune.driver import StudySettings, run_study
            from pixel_dqn.tune.report import write_results
        except ModuleNotFoundError as error:
            if error.name != "optuna":
                raise
            raise UserError('optuna is not installed: pip install -e ".[tune]"') from None
        if not args.report:
            _check_arguments(args)
            from pixel_dqn.tune.space import find_space, load_space

            space = load_space(find_space(args.space, CONF_DIR))
            settings = StudySettings(args.dir, space, args.trials, tuple(args.overrides),
                                     args.workers, args.heartbeat_s, args.storage)
            status = run_study(settings, CONF_DIR)
        else:
            status = 0
        lines = write_results(args.dir, args.storage)
    print("\n".join(lines), flush=True)
    return status


def _check_arguments(args: argparse.Namespace) -> None:
    if args.space is None or args.trials is None:
        raise UserError("a study needs --space NAME and --trials N (or --report alone)")
    for name in ("trials", "workers", "heartbeat_s"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')}={getattr(args, name)} is invalid: "
                            "must be >= 1")


def run() -> None:
    """The console script ``pixel-dqn-tune``."""
    sys.exit(main())
