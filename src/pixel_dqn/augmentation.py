"""Image augmentation of sampled frames: DrQ's random shift (Kostrikov et al., 2020)."""

from __future__ import annotations

import numpy as np


def random_shift(
    observations: np.ndarray, pad: int, rng: np.random.Generator, obs_ndim: int = 3
) -> np.ndarray:
    """Shift each observation by a random whole number of pixels in [-pad, pad] per axis.

    ``observations`` is ``(..., frames, height, width[, channels])``: the trailing ``obs_ndim``
    axes are one observation (3 for gray frame stacks, 4 for RGB), every leading index is a
    sample. An observation is padded by repeating its edge pixels and cropped back to its size
    at one random offset, the same for all its frames (so the diff the network forms is the
    diff of the shifted patches, not a difference of two shifts). Returns a new array.
    """
    if pad <= 0:
        return observations
    obs_shape = observations.shape[observations.ndim - obs_ndim:]
    height, width = obs_shape[1:3]
    samples = observations.reshape(-1, *obs_shape)
    padded = _pad_edges(samples, pad)
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, len(samples)))
    # every crop of the padded observations, as a view: (sample, frame, top, left, [C,] H, W)
    crops = np.lib.stride_tricks.sliding_window_view(padded, (height, width), axis=(2, 3))
    shifted = crops[np.arange(len(samples)), :, dy, dx]  # (sample, frame, [C,] H, W)
    if len(obs_shape) == 4:
        shifted = np.moveaxis(shifted, -3, -1)  # the colour channels back last
    return np.ascontiguousarray(shifted).reshape(observations.shape)


def _pad_edges(samples: np.ndarray, pad: int) -> np.ndarray:
    """``np.pad(mode="edge")`` on axes 2 and 3, several times faster for small uint8 frames."""
    n, f, h, w, *channels = samples.shape
    padded = np.empty((n, f, h + 2 * pad, w + 2 * pad, *channels), samples.dtype)
    padded[:, :, pad : pad + h, pad : pad + w] = samples
    padded[:, :, :pad, pad : pad + w] = samples[:, :, :1]
    padded[:, :, pad + h :, pad : pad + w] = samples[:, :, -1:]
    padded[:, :, :, :pad] = padded[:, :, :, pad : pad + 1]
    padded[:, :, :, pad + w :] = padded[:, :, :, pad + w - 1 : pad + w]
    return padded
