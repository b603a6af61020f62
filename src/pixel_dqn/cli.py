"""Helpers shared by the entry-point scripts."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pixel_dqn.config import ConfigError
from pixel_dqn.envs.display import DisplayError


class UserError(ValueError):
    """A mistake in what the user asked for (a path, an argument); shown as one line."""


class ReportedExit(SystemExit):
    """An exit whose reason was already printed in one line (a user mistake, a stop signal, a
    non-finite loss); other exits (a launcher's requeue) are not ours to reinterpret."""


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn a user mistake (bad config, missing Xvfb, bad argument) into one line and exit 2."""
    try:
        yield
    except (ConfigError, DisplayError, UserError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise ReportedExit(2) from None


def quiet_tensorflow_logs() -> None:
    """Hide TensorFlow's C++ info and warning lines unless the user chose a level already."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def check_writable(run_dir: Path) -> None:
    """Raise ``UserError`` unless files can be created in ``run_dir`` (made if missing)."""
    probe = run_dir / ".write-test"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UserError(f"run directory {run_dir} is not writable ({error.strerror}): "
                        f"choose another with hydra.run.dir=...") from None


class RunDirCheck(Callback):
    """Hydra callback: an unwritable run or sweep directory fails in one line, before Hydra
    tries to create it (Hydra itself would print a traceback)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._check(Path(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check(Path(config.hydra.sweep.dir))

    @staticmethod
    def _check(run_dir: Path) -> None:
        with exit_on_user_error():
            check_writable(run_dir)
