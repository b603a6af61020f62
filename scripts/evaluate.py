"""Evaluate a trained run or the baseline: ``python scripts/evaluate.py run_dir=... [video=true]``.

The same command as ``python -m pixel_dqn.evaluate`` and ``pixel-dqn-evaluate``
(pixel_dqn.evaluate).
"""

from pixel_dqn.evaluate import run

if __name__ == "__main__":
    run()
