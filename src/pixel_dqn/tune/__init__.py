"""Hyperparameter studies with Optuna, run by ``scripts/tune.py``.

``space`` reads a search space (``conf/search/*.yaml``) and checks it against the config;
``driver`` runs a study's workers (trial counting, retries, resume); ``trial`` runs one trial as
a ``train.py`` subprocess and reports its periodic evaluations; ``report`` writes a study's
trials table, plots and best command. ``optuna_api`` is the one place that touches Optuna's
private attributes.
"""
