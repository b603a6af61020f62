"""Two ways of running one seed sweep, compared as samples: the sweep runner and the test that
the benchmark scripts comparing them share (scripts/benchmark_seed_stack.py,
scripts/benchmark_precision.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pixel_dqn import run_directory as run_files
from pixel_dqn.report import iqm, iqm_ci


def run_seed_sweep(root: Path, sweep_dir: Path, seeds: list[int], overrides: list[str]) -> dict:
    """``python scripts/train.py -m seed=...`` of ``root``'s checkout into ``sweep_dir`` (from
    scratch: a run dir left there would resume); its wall time, each seed's final evaluation
    and timing, and the finals' IQM with its 95% bootstrap CI."""
    shutil.rmtree(sweep_dir, ignore_errors=True)
    command = [sys.executable, "scripts/train.py", "-m", f"seed={','.join(map(str, seeds))}",
               f"hydra.sweep.dir={sweep_dir}", "progress_interval_s=60", *overrides]
    print(f"== {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=root)
    wall = time.perf_counter() - start
    per_seed = {}
    for seed in seeds:
        (run_dir,) = sweep_dir.glob(f"*-seed{seed}")
        final = run_files.read_json(run_dir, run_files.EVAL_FILE)
        timing = run_files.read_json(run_dir, run_files.TIMING_FILE)
        per_seed[seed] = {"run_dir": str(run_dir), "final_eval_mean": final["mean"],
                          "final_eval_min": final["min"],
                          "online_network_mean": final.get("online_network", {}).get("mean"),
                          "env_steps": timing["env_steps"],
                          "train_wall_time_s": timing["seconds"],
                          "time_per_env_step_us": {k: v["us_per_env_step"]
                                                   for k, v in timing["phases"].items()}}
    finals = np.array([per_seed[s]["final_eval_mean"] for s in seeds])
    low, high = iqm_ci(finals)
    return {"command": " ".join(["python", *command[1:]]), "wall_time_s": wall,
            "iqm": float(iqm(finals)), "iqm_ci": [low, high],
            "solved": int((finals >= run_files.SOLVED).sum()), "seeds": per_seed}


def iqms_agree(a: dict, b: dict) -> bool:
    """Each sweep's IQM inside the other's 95% CI (``run_seed_sweep`` records)."""
    return (a["iqm_ci"][0] <= b["iqm"] <= a["iqm_ci"][1]
            and b["iqm_ci"][0] <= a["iqm"] <= b["iqm_ci"][1])
