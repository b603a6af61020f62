"""Uniform experience replay over preallocated numpy arrays."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    """Transitions stacked along the first axis (or the first two for fused updates)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray


class ReplayBuffer:
    """Fixed-capacity ring buffer of transitions.

    ``terminated`` is stored, not ``done``: a time-limit truncation keeps ``terminated=False`` so
    the TD target still bootstraps from ``next_obs``.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        rng: np.random.Generator,
    ) -> None:
        self.capacity = capacity
        self._rng = rng
        self._obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self._next_obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self._actions = np.zeros(capacity, dtype=np.int32)
        self._rewards = np.zeros(capacity, dtype=np.float32)
        self._terminated = np.zeros(capacity, dtype=np.float32)
        self._pos = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held by the preallocated arrays."""
        arrays = (self._obs, self._next_obs, self._actions, self._rewards, self._terminated)
        return sum(a.nbytes for a in arrays)

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
    ) -> None:
        """Store a batch of transitions (leading axis: one per env), overwriting the oldest."""
        n = len(actions)
        idx = (self._pos + np.arange(n)) % self.capacity
        self._obs[idx] = obs
        self._actions[idx] = actions
        self._rewards[idx] = rewards
        self._next_obs[idx] = next_obs
        self._terminated[idx] = terminated
        self._pos = (self._pos + n) % self.capacity
        self._size = min(self._size + n, self.capacity)

    def sample(self, batch_size: int, num_batches: int | None = None) -> Batch:
        """Sample uniformly with replacement.

        With ``num_batches`` the arrays get a leading axis of that length, for fused updates.
        """
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        shape = (batch_size,) if num_batches is None else (num_batches, batch_size)
        idx = self._rng.integers(0, self._size, size=shape)
        return Batch(
            obs=self._obs[idx],
            actions=self._actions[idx],
            rewards=self._rewards[idx],
            next_obs=self._next_obs[idx],
            terminated=self._terminated[idx],
        )
