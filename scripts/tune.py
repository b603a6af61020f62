"""Hyperparameter search with Optuna: ``python scripts/tune.py --space NAME --dir DIR ...``.

The same command as ``python -m pixel_dqn.tune`` and ``pixel-dqn-tune`` (pixel_dqn.tune.cli).
"""

from pixel_dqn.tune.cli import run

if __name__ == "__main__":
    run()
