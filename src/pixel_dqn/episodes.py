"""Episode bookkeeping on a vector env in gymnasium's next-step autoreset mode."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class EpisodeTally:
    """Each sub-env's running return and length, and which sub-envs are resetting.

    RL trap: in gymnasium 1.x (``AutoresetMode.NEXT_STEP``) a sub-env whose episode ended is
    reset by the *next* ``step`` call; that step carries no transition (its reward and action
    mean nothing) and must be neither stored nor counted. ``live`` says which sub-envs' next
    step is a real one.
    """

    returns: np.ndarray
    lengths: np.ndarray
    resetting: np.ndarray

    @classmethod
    def start(cls, num_envs: int) -> EpisodeTally:
        """A tally for envs just reset: every sub-env at the start of an episode."""
        return cls(np.zeros(num_envs), np.zeros(num_envs, dtype=np.int64),
                   np.zeros(num_envs, dtype=bool))

    @property
    def live(self) -> np.ndarray:
        """Sub-envs whose next step is a transition (not the reset after an episode's end)."""
        return ~self.resetting

    def step(self, rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
             counted: np.ndarray | None = None) -> list[tuple[int, float, int]]:
        """Count one vector step; return ``(sub-env, return, length)`` of each episode that
        ended with it. Only live sub-envs count (and of those, only ``counted`` if given)."""
        live = self.live if counted is None else self.live & counted
        self.returns[live] += rewards[live]
        self.lengths[live] += 1
        ended = [(int(i), float(self.returns[i]), int(self.lengths[i]))
                 for i in np.flatnonzero(live & (terminated | truncated))]
        for i, _, _ in ended:
            self.returns[i] = 0.0
            self.lengths[i] = 0
        self.resetting = terminated | truncated
        return ended
