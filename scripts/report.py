"""Aggregate Hydra multiruns over seeds: ``python scripts/report.py <multirun dir> [...]``.

The same command as ``python -m pixel_dqn.report`` and ``pixel-dqn-report`` (pixel_dqn.report).
"""

from pixel_dqn.report import run

if __name__ == "__main__":
    run()
