"""``python -m pixel_dqn.tune``: see ``pixel_dqn.tune.cli``."""

from pixel_dqn.tune.cli import run

run()
