"""Compare two training runs: same metrics (wall-clock columns aside), evaluation and weights."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from pixel_dqn.run_directory import EVAL_FILE, METRICS_FILE, MODEL_FILE

WALL_CLOCK_COLUMNS = ("steps_per_s", "wall_time_s")  # the only columns allowed to differ


def deterministic_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of ``metrics.csv`` without the wall-clock columns."""
    with open(run_dir / METRICS_FILE, newline="") as f:
        return [{k: v for k, v in row.items() if k not in WALL_CLOCK_COLUMNS}
                for row in csv.DictReader(f)]


def run_differences(a: Path, b: Path) -> list[str]:
    """What differs between two finished runs (empty when they are identical).

    Compares every metrics row except its wall-clock columns, the final evaluation's returns
    and every weight of the saved model, bit for bit.
    """
    differences = []
    rows_a, rows_b = deterministic_rows(a), deterministic_rows(b)
    if len(rows_a) != len(rows_b):
        differences.append(f"{METRICS_FILE}: {len(rows_a)} rows vs {len(rows_b)}")
    for i, (row_a, row_b) in enumerate(zip(rows_a, rows_b, strict=False)):
        if row_a != row_b:
            differences.append(f"{METRICS_FILE} row {i + 1}: {row_a} vs {row_b}")
            break
    eval_a, eval_b = (json.loads((d / EVAL_FILE).read_text()) for d in (a, b))
    if eval_a["returns"] != eval_b["returns"]:
        differences.append(f"{EVAL_FILE}: mean {eval_a['mean']} vs {eval_b['mean']}")
    from pixel_dqn.networks import load_q_network  # deferred: loads TensorFlow

    weights_a, weights_b = (load_q_network(d / MODEL_FILE).get_weights() for d in (a, b))
    if len(weights_a) != len(weights_b) or not all(
        np.array_equal(x, y) for x, y in zip(weights_a, weights_b, strict=False)
    ):
        differences.append(f"{MODEL_FILE}: weights differ")
    return differences
