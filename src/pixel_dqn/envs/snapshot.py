"""Snapshot a synchronous vector env mid-episode and restore it, for checkpoints.

A snapshot is the pickled env: CartPole's physics state and its random generator, the time
limit's step count, the pixel wrapper's frame history, the vector env's pending autoresets.
Pygame surfaces cannot be pickled; they only cache a drawing surface that gymnasium re-creates
on the next render, so they are stored as ``None``.
"""

from __future__ import annotations

import io
import pickle
import sys

import gymnasium as gym

_SURFACE = "pygame-surface"


class _EnvPickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> str | None:
        pygame = sys.modules.get("pygame")
        if pygame is not None and isinstance(obj, pygame.Surface | pygame.time.Clock):
            return _SURFACE
        return None


class _EnvUnpickler(pickle.Unpickler):
    def persistent_load(self, pid: str) -> None:
        if pid != _SURFACE:
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        return None


def snapshot_envs(envs: gym.vector.VectorEnv) -> bytes:
    """The complete state of a ``SyncVectorEnv`` as bytes (``AsyncVectorEnv`` cannot be)."""
    if not isinstance(envs, gym.vector.SyncVectorEnv):
        raise TypeError(f"only a SyncVectorEnv can be snapshotted, not {type(envs).__name__}")
    buffer = io.BytesIO()
    _EnvPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(envs)
    return buffer.getvalue()


def restore_envs(snapshot: bytes) -> gym.vector.SyncVectorEnv:
    """The env of ``snapshot_envs``, ready to step on from where it was."""
    return _EnvUnpickler(io.BytesIO(snapshot)).load()
