"""Fixed policies: the hard-coded baseline of the seed notebook."""

from __future__ import annotations

import numpy as np

POLE_ANGLE = 2  # index of the pole angle in CartPole's 4-float state


def push_toward_tilt(obs: np.ndarray) -> np.ndarray:
    """Push the cart the way the pole leans: left (0) when its angle is negative, else right (1).

    Takes a batch of CartPole states (n, 4) and returns one action per state.
    """
    return (np.asarray(obs)[:, POLE_ANGLE] >= 0).astype(np.int32)
