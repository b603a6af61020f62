"""A nested config as one level of dotted keys: how runs, checkpoints and studies compare."""

from __future__ import annotations


def flatten_config(tree: dict, prefix: str = "") -> dict:
    """A nested config as ``{"trainer.gamma": 0.99, ...}`` (dotted keys, leaf values)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten_config(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
