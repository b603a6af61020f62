"""The private parts of Optuna the tuner needs, in one place.

Optuna has no public way to reach a trial's storage id, a study's storage, or whether a value
lies inside a distribution; the tuner needs all three (heartbeats recorded from its own loop,
a trial failed and retried at once, an enqueued trial checked before anything runs).
``tests/test_tuning.py`` fails if an Optuna release moves them.
"""

from __future__ import annotations

from typing import Any

import optuna


def trial_id(trial: optuna.Trial) -> int:
    """The trial's id in its storage (``trial.number`` counts within the study only)."""
    return trial._trial_id


def study_storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study reads and writes."""
    return study._storage


def distribution_contains(distribution: optuna.distributions.BaseDistribution,
                          value: Any) -> bool:
    """Whether ``value`` (a parameter value, not its internal form) lies inside
    ``distribution``; a value of the wrong type does not."""
    try:
        return distribution._contains(distribution.to_internal_repr(value))
    except (TypeError, ValueError):
        return False
