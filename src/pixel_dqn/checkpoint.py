"""Kill-safe checkpoints: one directory per checkpoint, written atomically, the last K kept.

A checkpoint is written under a temporary name, its files are flushed to disk, a manifest
(each file's size and SHA-256) is written last as the completeness marker, and only then is the
directory renamed to ``step-<env step>``. A process killed at any moment leaves either the
previous checkpoints untouched or a temporary directory that is never read. Loading verifies the
manifest; a checkpoint that fails (missing marker, truncated or corrupt file) is skipped with a
warning in favour of the one before it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixel_dqn.config import ConfigError
from pixel_dqn.flat_config import flatten_config

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
ARRAYS = "arrays.npz"
STATE = "state.pkl"
_PREFIX = "step-"
_TMP_PREFIX = ".tmp-"


class CheckpointError(RuntimeError):
    """A checkpoint directory that cannot be used (incomplete, truncated or corrupt)."""


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint holds: large numpy arrays and a picklable state object."""

    step: int
    arrays: dict[str, np.ndarray]
    state: Any
    path: Path


class CheckpointStore:
    """Checkpoints of one run under ``directory``; ``save`` keeps the newest ``keep``."""

    def __init__(self, directory: Path, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"keep={keep} must be >= 1")
        self.directory = directory
        self.keep = keep

    def save(self, step: int, arrays: dict[str, np.ndarray], state: Any) -> Path:
        """Write a checkpoint of env step ``step``; return its directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{_PREFIX}{step:010d}"
        tmp = self.directory / f"{_TMP_PREFIX}{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            with open(tmp / ARRAYS, "wb") as f:
                np.savez(f, **arrays)
                _sync(f)
            with open(tmp / STATE, "wb") as f:
                pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
                _sync(f)
            files = {name: _describe(tmp / name) for name in (ARRAYS, STATE)}
            manifest = {"step": step, "files": files}
            with open(tmp / MANIFEST, "w") as f:  # the completeness marker: written last
                json.dump(manifest, f, indent=2)
                _sync(f)
        except OSError:  # e.g. a full disk: leave no partial checkpoint behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if final.exists():  # the same step again (a resumed run re-saving): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _sync_directory(self.directory)
        self._prune()
        return final

    def paths(self) -> list[Path]:
        """Checkpoint directories that have a manifest, oldest first (unverified)."""
        if not self.directory.is_dir():
            return []
        found = [p for p in self.directory.iterdir()
                 if p.is_dir() and p.name.startswith(_PREFIX) and (p / MANIFEST).is_file()]
        return sorted(found, key=lambda p: p.name)

    def load_latest(self, config: dict | None = None,
                    may_change: tuple[str, ...] = ()) -> Checkpoint | None:
        """The newest checkpoint that verifies, or None; broken newer ones are skipped.

        With ``config`` (the run's config as a dict), a checkpoint saved with another config
        raises ``ConfigError`` naming the first key that differs: a run directory resumes only
        the run it holds. Keys under the top-level sections ``may_change`` may differ.
        """
        for path in reversed(self.paths()):
            try:
                checkpoint = load(path)
            except CheckpointError as error:
                log.warning("skipping checkpoint %s: %s", path, error)
                continue
            if config is not None:
                _check_same_config(checkpoint, config, may_change)
            return checkpoint
        return None

    def _prune(self) -> None:
        for old in self.paths()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        for tmp in self.directory.glob(f"{_TMP_PREFIX}*"):  # left by a killed writer
            if tmp.name.endswith(f"-{os.getpid()}"):
                continue
            shutil.rmtree(tmp, ignore_errors=True)


def load(path: Path) -> Checkpoint:
    """Read and verify one checkpoint directory; raise ``CheckpointError`` if it is broken."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        for name, expected in manifest["files"].items():
            if _describe(path / name) != expected:
                raise CheckpointError(f"{name} does not match its manifest (truncated or corrupt)")
        with np.load(path / ARRAYS, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        with open(path / STATE, "rb") as f:
            state = pickle.load(f)
        return Checkpoint(int(manifest["step"]), arrays, state, path)
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as error:
        raise CheckpointError(f"unreadable ({type(error).__name__}: {error})") from error


def _describe(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _sync(f) -> None:
    f.flush()
    os.fsync(f.fileno())


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_same_config(checkpoint: Checkpoint, config: dict, may_change: tuple[str, ...]) -> None:
    saved, current = flatten_config(checkpoint.state["config"]), flatten_config(config)
    for key in sorted(saved.keys() | current.keys()):
        if key.split(".")[0] in may_change or saved.get(key) == current.get(key):
            continue
        raise ConfigError(
            f"{key}={current.get(key)!r} differs from the checkpointed run's "
            f"{saved.get(key)!r} in {checkpoint.path.parent.parent}: rerun with the same "
            f"overrides to resume, or choose a new hydra.run.dir"
        )
