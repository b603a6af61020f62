"""A study's results: ``trials.csv``, ``trials.md``, plots, and the best trial's command."""

from __future__ import annotations

import contextlib
import csv
import json
import shlex
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from pixel_dqn.config import ConfigError
from pixel_dqn.report import read_job
from pixel_dqn.run_directory import TRAIN_MODULE
from pixel_dqn.tune.driver import (
    SPACE_FILE,
    STUDY_DB,
    STUDY_NAME,
    default_storage,
    open_storage,
    retry_callback,
)
from pixel_dqn.tune.trial import PRUNED_FILE

PLOTS = ("history.png", "importances.png", "intermediate.png")


def load_study(study_dir: Path, storage_url: str | None = None) -> optuna.Study:
    """The study kept in ``study_dir`` (or in ``storage_url``)."""
    if storage_url is None and not (study_dir / STUDY_DB).is_file():
        raise ConfigError(f"{study_dir} holds no study (no {STUDY_DB}): run scripts/tune.py "
                          "with --space first")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage_url or default_storage(study_dir)
    try:
        return optuna.load_study(study_name=STUDY_NAME, storage=open_storage(url))
    except KeyError:
        raise ConfigError(f"no study named {STUDY_NAME} in {url}") from None


def trial_command_line(trial: FrozenTrial) -> str:
    """The trial's ``python -m pixel_dqn.train ...`` command (without its run directory): it
    repeats the trial bit for bit (same seed, one TensorFlow thread), from any directory."""
    return shlex.join(["python", "-m", TRAIN_MODULE, *trial.user_attrs.get("overrides", [])])


def trial_rows(study: optuna.Study, study_dir: Path) -> list[dict]:
    """One row per trial: number, state, value, env steps reached, params, and why it was
    pruned, failed or retried."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retried_from = retry_callback()[1].retried_trial_number
        trials = study.get_trials(deepcopy=False)
        # the trial each retry continues: the last of its retry history
        retries = {t.system_attrs["retry_history"][-1]: t.number for t in trials
                   if t.system_attrs.get("retry_history")}
        rows = []
        for trial in trials:
            run_dir = study_dir / trial.user_attrs.get("run_dir", "-")
            note = trial.user_attrs.get("failure", "")
            if trial.state == TrialState.PRUNED and (run_dir / PRUNED_FILE).is_file():
                note = "pruned " + json.loads((run_dir / PRUNED_FILE).read_text())["reason"]
            retry_of = retried_from(trial)
            if retry_of is not None:
                note = f"retry of trial {retry_of}; {note}".rstrip("; ")
            if trial.number in retries:
                note = f"stopped, retried as trial {retries[trial.number]}"
            rows.append({"number": trial.number, "state": trial.state.name,
                         "value": trial.value, "env_steps": _steps_reached(trial, run_dir),
                         "run_dir": trial.user_attrs.get("run_dir", ""), "note": note,
                         **trial.params})
    return rows


def _steps_reached(trial: FrozenTrial, run_dir: Path) -> int | None:
    """Env steps of the run's last evaluation (the final one for a complete run)."""
    if (run_dir / ".hydra" / "overrides.yaml").is_file():
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError, yaml.YAMLError):
            curve = read_job(run_dir).curve  # may fail on a half-written row of a running trial
            if curve:
                return max(step for step, _ in curve)
    return max(trial.intermediate_values, default=None)


def write_results(study_dir: Path, storage_url: str | None = None) -> list[str]:
    """Write ``trials.csv``, ``trials.md`` and the plots into ``study_dir``; return the summary
    lines to print (counts, the best trial and its command)."""
    study = load_study(study_dir, storage_url)
    rows = trial_rows(study, study_dir)
    params = list(dict.fromkeys(key for row in rows for key in row
                                if key not in ("number", "state", "value", "env_steps",
                                               "run_dir", "note")))
    _write_csv(study_dir / "trials.csv", rows, params)
    states = {state: sum(r["state"] == state for r in rows)
              for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    summary = [f"study {study_dir}: {states['COMPLETE']} complete, {states['PRUNED']} pruned, "
               f"{states['FAIL']} failed or retried, {states['RUNNING']} running, "
               f"{states['WAITING']} waiting"]
    try:
        best = study.best_trial
    except ValueError:
        summary.append("best: no complete trial yet")
    else:
        summary += [f"best: trial {best.number}, final greedy eval mean {best.value:.2f} "
                    f"(run dir {study_dir / best.user_attrs['run_dir']}); to repeat it:",
                    f"  {trial_command_line(best)}"]
    notes = _plots(study, study_dir)
    best_lines = [f"- {summary[1]}"] if len(summary) == 2 else [
        f"- {summary[1]}", "", "```bash", summary[2].strip(), "```", ""]
    lines = [f"# Study {study_dir}", "", f"- {summary[0]}", *best_lines,
             f"- search space and overrides: [{SPACE_FILE}]({SPACE_FILE})",
             f"- direction: {study.direction.name.lower()} eval.json's mean (final greedy "
             "evaluation); intermediate values: the periodic evaluations (metrics.csv)", "",
             "| trial | state | value | env steps | params | note |",
             "|---:|---|---:|---:|---|---|"]
    for row in rows:
        value = "" if row["value"] is None else f"{row['value']:.2f}"
        shown = " ".join(f"{k}={row[k]}" for k in params if k in row)
        lines.append(f"| {row['number']} | {row['state']} | {value} | "
                     f"{row['env_steps'] if row['env_steps'] is not None else ''} | {shown} | "
                     f"{row['note']} |")
    lines += ["", *(f"![{name}]({name})" for name in PLOTS if (study_dir / name).is_file()),
              *(f"- {note}" for note in notes), ""]
    _replace(study_dir / "trials.md", "\n".join(lines))
    return [*summary, f"results: {study_dir / 'trials.md'}, trials.csv and plots"]


def _write_csv(path: Path, rows: list[dict], params: list[str]) -> None:
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["number", "state", "value", "env_steps", *params,
                                               "run_dir", "note"])
        writer.writeheader()
        writer.writerows(rows)
    temporary.replace(path)


def _replace(path: Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _plots(study: optuna.Study, study_dir: Path) -> list[str]:
    """Optimization history, parameter importances and intermediate values as PNGs; returns
    a note for each plot that could not be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    notes = []
    def importances(study: optuna.Study) -> Any:
        # PED-ANOVA: fANOVA, Optuna's default importance evaluator, needs scikit-learn
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        return plots.plot_param_importances(study, evaluator=evaluator)

    for name, plot in zip(PLOTS, (plots.plot_optimization_history, importances,
                                  plots.plot_intermediate_values), strict=True):
        needed = {"importances.png": 2, "history.png": 1}.get(name, 0)
        if complete < needed:
            notes.append(f"{name}: not drawn: needs >= {needed} complete trials ({complete} "
                         "so far)")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental API, legend and layout notices
                axes = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            # importances fail when every complete trial has the same value, and the like
            notes.append(f"{name}: not drawn: {error}")
            continue
        figure = axes.figure
        figure.savefig(study_dir / name, dpi=110, bbox_inches="tight")
        plt.close(figure)
    return notes
