"""Optuna studies end to end (scripts/tune.py): pruning, the best trial's command repeating its
run, a SIGKILLed driver resumed with every trial counted once, and bad input in one line."""

import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna  # the tune extra: part of the README's test command
import pytest
import yaml
from conftest import CONF_DIR, ROOT, STATE
from optuna.trial import TrialState

from pixel_dqn.config import ConfigError
from pixel_dqn.metrics import COLUMNS
from pixel_dqn.tune.driver import StudySettings, prepare_study
from pixel_dqn.tune.report import load_study
from pixel_dqn.tune.space import (
    check_against_config,
    format_override,
    load_space,
    parse_space,
)
from pixel_dqn.tune.trial import periodic_evals

TUNE = [sys.executable, str(ROOT / "scripts" / "tune.py")]
# a 1,500-step state run with everything small: a trial takes seconds (most of them importing
# TensorFlow)
TINY_RUN = [*STATE, "total_steps=1500", "eval.every_steps=500", "eval.episodes=2",
            "eval.final_episodes=3", "checkpoint.every_steps=500", "trainer.learning_starts=500",
            "trainer.exploration_steps=1000", "trainer.batch_size=32", "trainer.train_freq=16",
            "trainer.gradient_steps=4", "trainer.jit_compile=false", "model.hidden_sizes=[32]",
            "progress_interval_s=1000", "tensorboard=false"]
# Pruned by construction: an episode capped at 5 steps returns at most 5, and an uncapped
# CartPole episode lasts at least 8 steps whatever the policy, so the threshold pruner (< 6)
# stops exactly the trials with env.max_episode_steps=5, at their first evaluation.
TINY_SPACE = {
    "seed": 0,
    "overrides": TINY_RUN,
    "sampler": {"type": "random"},
    "pruner": {"type": "threshold", "lower": 6.0},
    "params": {
        "trainer.learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
        "env.max_episode_steps": {"type": "categorical", "choices": [5, 500]},
    },
    "enqueue": [{"env.max_episode_steps": 5}, {"env.max_episode_steps": 500}],
}


def _write_space(path: Path, space: dict) -> Path:
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def _tune(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*TUNE, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, **kwargs)


def _trials(study_dir: Path, *states: TrialState) -> list:
    return load_study(study_dir).get_trials(deepcopy=False, states=states or None)


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_study_prunes_by_construction_and_its_best_command_repeats_the_trial(tmp_path):
    space = _write_space(tmp_path / "tiny.yaml", TINY_SPACE)
    study_dir = tmp_path / "study"
    done = _tune("--space", str(space), "--dir", str(study_dir), "--trials", "2",
                 "--workers", "2", "--heartbeat-s", "5")
    assert done.returncode == 0, done.stderr[-3000:]

    finished = _trials(study_dir, TrialState.COMPLETE, TrialState.PRUNED)
    assert len(finished) == 2  # the two enqueued trials, side by side
    pruned = [t for t in finished if t.state == TrialState.PRUNED]
    assert pruned and all(t.params["env.max_episode_steps"] == 5 for t in pruned)
    assert all(t.params["env.max_episode_steps"] == 500 for t in finished if t not in pruned)
    for trial in pruned:
        record = json.loads((study_dir / trial.user_attrs["run_dir"] / "pruned.json").read_text())
        assert record["value"] <= 5 and record["step"] in trial.intermediate_values
        assert "threshold" in record["reason"]
    for name in ("trials.csv", "trials.md", "space.yaml", "history.png", "intermediate.png"):
        assert (study_dir / name).is_file(), name
    assert len((study_dir / "trials.csv").read_text().splitlines()) == 1 + 2

    lines = done.stdout.splitlines()
    command = shlex.split(lines[lines.index(next(x for x in lines if "to repeat it:" in x)) + 1])
    assert command[:3] == ["python", "-m", "pixel_dqn.train"]
    best = load_study(study_dir).best_trial
    repeat = tmp_path / "repeat"
    subprocess.run([sys.executable, *command[1:], f"hydra.run.dir={repeat}"], cwd=ROOT,
                   check=True, capture_output=True, timeout=600)
    original = json.loads((study_dir / best.user_attrs["run_dir"] / "eval.json").read_text())
    repeated = json.loads((repeat / "eval.json").read_text())
    assert repeated["returns"] == original["returns"] and repeated["mean"] == best.value


@pytest.mark.slow
def test_a_killed_driver_rerun_counts_every_trial_once_and_resumes_its_run(tmp_path):
    space = _write_space(tmp_path / "tiny.yaml", TINY_SPACE)  # trial 0 pruned, trial 1 not
    study_dir = tmp_path / "study"
    # a heartbeat that a busy machine (the suite runs two test workers) cannot miss by accident
    args = ("--space", str(space), "--dir", str(study_dir), "--trials", "2", "--heartbeat-s", "4")
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen([*TUNE, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        # trial 0 finished (pruned) and trial 1 running, past its first checkpoint
        while not list((study_dir / "trials" / "1" / "checkpoints").glob("step-*")):
            assert driver.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert not (study_dir / "trials" / "1" / "eval.json").exists()

    done = _tune(*args)  # trial 1's heartbeat goes stale: it is failed and retried
    assert done.returncode == 0, done.stderr[-3000:]
    finished = _trials(study_dir, TrialState.COMPLETE, TrialState.PRUNED)
    assert len(finished) == 2
    assert {t.user_attrs["run_dir"] for t in finished} == {"trials/0", "trials/1"}
    failed = _trials(study_dir, TrialState.FAIL)
    assert [t.number for t in failed] == [1]
    retry = next(t for t in finished if t.system_attrs.get("failed_trial") == 1)
    assert retry.user_attrs["run_dir"] == "trials/1" and retry.params == failed[0].params
    assert "resuming from" in (study_dir / "trials" / "1" / "console.log").read_text()


@pytest.mark.parametrize("params, message", [
    ({"trainer.learning_rat": {"type": "float", "low": 1e-4, "high": 1e-3}},
     "params.trainer.learning_rat is not a key of the config"),
    ({"trainer.n_step": {"type": "int", "low": 5, "high": 1}},
     "params.trainer.n_step: low=5 > high=1, the range is empty"),
    ({"trainer.gamma": {"type": "categorical", "choices": []}},
     "params.trainer.gamma.choices is empty"),
    ({"trainer.gamma": {"type": "uniform", "low": 0.9, "high": 0.99}},
     "params.trainer.gamma.type='uniform' is invalid"),
    ({"trainer.gamma": {"type": "float", "low": 0.9, "high": 1.0}},
     "trainer.gamma=1.0 is invalid: must be in [0, 1)"),
    ({"trainer.n_step": {"type": "categorical", "choices": [1, 2.5]}},
     "could not be converted to Integer"),
])
def test_a_bad_space_is_one_line_naming_the_key(tmp_path, params, message):
    with pytest.raises(ConfigError, match=r"^search space bad: ") as error:
        space = parse_space("bad", {"overrides": list(STATE), "params": params})
        check_against_config(space, CONF_DIR, [])
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.slow
def test_bad_input_on_the_command_line_fails_in_one_line_and_loses_nothing(tmp_path):
    study_dir = tmp_path / "study"
    space = load_space(_write_space(tmp_path / "tiny.yaml", TINY_SPACE))
    prepare_study(StudySettings(study_dir, space, 1), CONF_DIR)
    before = _files(study_dir)
    assert "space.yaml" in before and "study.db" in before

    other = {**TINY_SPACE, "params": {**TINY_SPACE["params"], "trainer.learning_rate": {
        "type": "float", "low": 1e-4, "high": 1e-2, "log": True}}}
    done = _tune("--space", str(_write_space(tmp_path / "other.yaml", other)),
                 "--dir", str(study_dir), "--trials", "2")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"error: {study_dir} holds")
    assert "space.params.trainer.learning_rate.high is 0.003 there, 0.01 here" in done.stderr
    assert _files(study_dir) == before


def test_a_space_with_an_unknown_key_is_refused_before_anything_is_written(tmp_path):
    study_dir = tmp_path / "study"
    prepare_study(StudySettings(study_dir, load_space(_write_space(tmp_path / "tiny.yaml",
                                                                   TINY_SPACE)), 1),
                  CONF_DIR)
    before = _files(study_dir)
    unknown = parse_space("unknown", {**TINY_SPACE, "params": {
        **TINY_SPACE["params"], "trainer.learning_rat": {"type": "float", "low": 0.1, "high": 1}}})
    for where in (tmp_path / "new", study_dir):
        with pytest.raises(ConfigError, match=r"did you mean trainer\.learning_rate\?"):
            prepare_study(StudySettings(where, unknown, 1), CONF_DIR)
    assert not (tmp_path / "new").exists() and _files(study_dir) == before


def test_a_trial_reads_periodic_evaluations_only_from_whole_rows(tmp_path):
    """The worker polls metrics.csv while train.py appends to it: a half-written last row
    means "not yet", never a wrong value."""
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    header = ",".join(COLUMNS) + "\n"
    row = {column: "" for column in COLUMNS}
    lines = [",".join({**row, "kind": kind, "env_step": str(step), "return": str(value)}[c]
                      for c in COLUMNS) + "\n"
             for kind, step, value in (("train", 90, 12.0), ("eval", 100, 30.5),
                                       ("eval", 200, 41.0))]
    metrics = tmp_path / "metrics.csv"
    metrics.write_text(header + "".join(lines)[:-7])  # the last row cut mid-write
    assert periodic_evals(tmp_path) is None
    metrics.write_text(header + "".join(lines))
    assert periodic_evals(tmp_path) == [(100, 30.5), (200, 41.0)]


def test_spaces_in_conf_compose_and_build_their_pruner_and_sampler():
    for path in sorted((CONF_DIR / "search").glob("*.yaml")):
        space = load_space(path)
        check_against_config(space, CONF_DIR, [])
        assert isinstance(space.make_pruner(), optuna.pruners.MedianPruner)
        assert space.make_sampler(0) is not None
    halving = parse_space("x", {"pruner": {"type": "successive_halving", "min_resource": 500},
                                "params": TINY_SPACE["params"]})
    assert isinstance(halving.make_pruner(), optuna.pruners.SuccessiveHalvingPruner)
    with pytest.raises(ConfigError, match="pruner"):
        parse_space("x", {"pruner": {"type": "median", "warmup": 3},
                          "params": TINY_SPACE["params"]})


def test_overrides_give_hydra_back_the_exact_sampled_values(compose_config):
    values = {"trainer.learning_rate": 0.1 + 0.2, "trainer.eval_weight_average": None,
              "trainer.double_dqn": False, "trainer.n_step": 7, "trainer.optimizer": "rmsprop"}
    cfg = compose_config(*(format_override(k, v) for k, v in values.items()))
    for key, value in values.items():
        section, name = key.split(".")
        assert cfg[section][name] == value and type(cfg[section][name]) is type(value)


def test_the_optuna_private_parts_the_tuner_uses_are_still_there():
    """pixel_dqn.tune.optuna_api reaches into Optuna: this fails first if a release moves them."""
    from pixel_dqn.tune.optuna_api import distribution_contains, study_storage, trial_id

    study = optuna.create_study()  # in memory
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
    storage = study_storage(study)
    assert isinstance(storage, optuna.storages.BaseStorage)
    assert storage.get_trial(trial_id(trial)).number == trial.number
    ints = optuna.distributions.IntDistribution(1, 10)
    assert distribution_contains(ints, 3) and not distribution_contains(ints, 11)
    choices = optuna.distributions.CategoricalDistribution([None, 0.999])
    assert distribution_contains(choices, None) and not distribution_contains(choices, 0.5)
