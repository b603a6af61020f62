"""Checkpointing Keras variables as named numpy arrays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def variables_to_arrays(groups: Mapping[str, Sequence]) -> dict[str, np.ndarray]:
    """``{"online": model.variables, ...}`` -> ``{"online/0": array, ...}`` (in variable order)."""
    return {f"{name}/{i}": variable.numpy()
            for name, variables in groups.items() for i, variable in enumerate(variables)}


def assign_arrays(groups: Mapping[str, Sequence], arrays: Mapping[str, np.ndarray]) -> None:
    """Assign the arrays of ``variables_to_arrays`` back to variables built the same way."""
    for name, variables in groups.items():
        saved = sum(key.startswith(f"{name}/") for key in arrays)
        if saved != len(variables):
            raise ValueError(f"{name}: {saved} saved variables for {len(variables)}")
        for i, variable in enumerate(variables):
            variable.assign(arrays[f"{name}/{i}"])
