"""A short real training run: state DQN must clearly beat a random policy (~22 steps)."""

import json
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, STATE, STATE_SMOKE_OVERRIDES

from pixel_dqn.trainers import train

LEARNING_OVERRIDES = (
    *STATE,
    "total_steps=20000",
    "eval.every_steps=5000",
    "eval.episodes=5",
    "eval.final_episodes=20",
    "eval.keep_best=false",  # the trained network itself, not one picked by 5-episode evals
    "seed=0",
)


@pytest.mark.slow
def test_state_dqn_learns_within_a_small_budget(config, tmp_path):
    result = train(config(*LEARNING_OVERRIDES), tmp_path)
    assert result.mean >= 150, f"final greedy eval mean {result.mean:.1f} < 150"


@pytest.mark.slow
def test_the_learning_benchmark_runs_seeds_side_by_side_like_one_after_another(tmp_path):
    """--parallel 2 gives a seed the result it gets when run alone (seed 1 here, side by side
    with seed 0), and says how it ran."""
    tables = {}
    for parallel, seeds in ((1, ["1"]), (2, ["0", "1"])):
        name = f"test_parallel_{parallel}"
        subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark_learning.py"),
                        "--allow-dirty",
                        "--name", name, "--seeds", *seeds, "--parallel", str(parallel),
                        "--out", str(tmp_path), "--", *STATE_SMOKE_OVERRIDES],
                       cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
        shutil.rmtree(ROOT / "outputs" / "benchmarks" / name, ignore_errors=True)
        record = json.loads((tmp_path / f"{name}.json").read_text())
        assert record["parallel"] == parallel
        assert [r["seed"] for r in record["results"]] == [int(s) for s in seeds]
        tables[parallel] = {r["seed"]: (r["final_eval_mean"], r["env_steps"])
                            for r in record["results"]}
        assert ("side by side" in (tmp_path / f"{name}.md").read_text()) == (parallel == 2)
    assert tables[1][1] == tables[2][1]
