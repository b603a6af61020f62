"""Train an agent: ``python scripts/train.py [group=option ...] [key=value ...]``.

The same command as ``python -m pixel_dqn.train`` and ``pixel-dqn-train`` (pixel_dqn.train).
"""

from pixel_dqn.train import main

if __name__ == "__main__":
    main()
