"""A sum tree over non-negative priorities: proportional sampling and updates in O(log n)."""

from __future__ import annotations

import numpy as np


class SumTree:
    """Binary tree whose leaves hold priorities and whose inner nodes hold the sums below them.

    Both ``update`` and ``find`` work on whole index batches with numpy, one tree level at a
    time (no Python loop over the batch).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._leaves = 1 << max(size - 1, 1).bit_length()  # a power of two >= size
        self._nodes = np.zeros(2 * self._leaves, np.float64)  # node i has children 2i, 2i + 1

    @property
    def total(self) -> float:
        return float(self._nodes[1])

    def get(self, indices: np.ndarray) -> np.ndarray:
        """The priorities at ``indices``."""
        return self._nodes[self._leaves + np.asarray(indices)]

    def update(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priorities at ``indices`` (repeated indices keep the last value)."""
        indices = np.asarray(indices, np.int64)
        priorities = np.asarray(priorities, np.float64)
        if np.any(priorities < 0) or not np.all(np.isfinite(priorities)):
            raise ValueError("priorities must be finite and non-negative")
        nodes = self._leaves + indices
        self._nodes[nodes] = priorities
        for _ in range(self._leaves.bit_length() - 1):  # one level up at a time, to the root
            nodes //= 2
            # a repeated parent is written twice with the same sum: no need to deduplicate
            self._nodes[nodes] = self._nodes[2 * nodes] + self._nodes[2 * nodes + 1]

    def find(self, masses: np.ndarray) -> np.ndarray:
        """For each mass in [0, total), the leaf where the running sum of priorities passes it."""
        masses = np.array(masses, np.float64)
        nodes = np.ones(masses.shape, np.int64)
        for _ in range(self._leaves.bit_length() - 1):  # every leaf is at the same depth
            left = 2 * nodes
            left_sum = self._nodes[left]
            go_right = masses >= left_sum
            masses = np.where(go_right, masses - left_sum, masses)
            nodes = np.where(go_right, left + 1, left)
        # float rounding can walk into a zero-priority leaf at the end: step back to the last
        # leaf with mass (this only happens for masses within rounding of the total)
        leaves = nodes - self._leaves
        empty = self._nodes[nodes] <= 0
        if np.any(empty):
            nonzero = np.flatnonzero(self._nodes[self._leaves : self._leaves + self.size] > 0)
            if nonzero.size == 0:
                raise ValueError("cannot sample from a sum tree whose priorities are all zero")
            positions = np.searchsorted(nonzero, leaves[empty], side="right") - 1
            leaves[empty] = nonzero[np.clip(positions, 0, None)]
        return leaves

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Stratified proportional sampling: one leaf from each of ``batch_size`` equal slices."""
        total = self.total
        if total <= 0:
            raise ValueError("cannot sample from a sum tree whose priorities are all zero")
        edges = np.arange(batch_size) * (total / batch_size)
        return self.find(edges + rng.random(batch_size) * (total / batch_size))
