"""Helpers shared by the entry-point scripts."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pixel_dqn.config import ConfigError
from pixel_dqn.envs.display import DisplayError


class UserError(ValueError):
    """A mistake in what the user asked for (a path, an argument); shown as one line."""


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn a user mistake (bad config, missing Xvfb, bad argument) into one line and exit 2."""
    try:
        yield
    except (ConfigError, DisplayError, UserError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def quiet_tensorflow_logs() -> None:
    """Hide TensorFlow's C++ info and warning lines unless the user chose a level already."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
