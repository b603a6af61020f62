"""Launcher benchmark: the same multirun through Hydra's basic launcher and through joblib.

    python scripts/benchmark_launchers.py

Runs each workload twice, one launcher after the other (never both at once): the basic launcher
runs its jobs one after another, joblib runs them side by side with each job's TensorFlow thread
pools sized to its share of the cores. Reports the wall time of each sweep, their ratio, and
whether every job's final greedy evaluation is the same under both launchers. Writes
``benchmarks/launchers.md`` and ``benchmarks/launchers.json``; sweep directories go to
``outputs/benchmarks/launchers/<workload>/<launcher>``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from pixel_dqn.benchmarking import Provenance, publish
from pixel_dqn.report import find_jobs
from pixel_dqn.run_directory import train_command

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {
    "state": ["+experiment=state_vs_pixels", "+arm=state", "seed=0,1,2,3",
              "total_steps=10000", "eval.final_episodes=20"],
    "pixels": ["+experiment=state_vs_pixels", "+arm=pixels", "seed=0,1,2,3",
               "total_steps=8000", "eval.final_episodes=20"],
}
LAUNCHERS = {"basic": [], "joblib": ["hydra/launcher=joblib"]}


def run_sweep(workload: str, launcher: str) -> dict:
    sweep_dir = ROOT / "outputs" / "benchmarks" / "launchers" / workload / launcher
    shutil.rmtree(sweep_dir, ignore_errors=True)  # a job dir that exists would resume
    overrides = [*WORKLOADS[workload], *LAUNCHERS[launcher], f"hydra.sweep.dir={sweep_dir}",
                 "progress_interval_s=60", "checkpoint.enabled=false",
                 "threads.intra_op=0"]  # basic: all cores for the one job; joblib: its share
    command = train_command(*overrides, multirun=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    jobs = {
        job.name: {
            "final_eval_mean": job.final_eval,
            "steps_per_s": job.steps_per_s,
            "intra_op_threads": yaml.safe_load((sweep_dir / job.name / "config.yaml").read_text())
            ["threads"]["intra_op"],  # as the job ran it
        }
        for job in find_jobs(sweep_dir) if job.finished
    }
    return {"overrides": overrides, "wall_time_s": wall, "jobs": jobs}


def mean_rate(sweep: dict) -> float:
    return sum(j["steps_per_s"] for j in sweep["jobs"].values()) / len(sweep["jobs"])


def thread_counts(sweep: dict) -> list[int]:
    return sorted({j["intra_op_threads"] for j in sweep["jobs"].values()})


def to_markdown(provenance: Provenance, results: dict) -> str:
    lines = [
        "# Launcher benchmark: basic (sequential) vs joblib (parallel)",
        "",
        *provenance.markdown(),
        "",
        "| workload | jobs | basic: wall time (s) | joblib: wall time (s) | speed-up | "
        "threads per job (basic / joblib) | env steps/s per job (basic / joblib) | "
        "same final evals |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for workload, by_launcher in results.items():
        basic, joblib = by_launcher["basic"], by_launcher["joblib"]

        finals = [{name: j["final_eval_mean"] for name, j in sweep["jobs"].items()}
                  for sweep in (basic, joblib)]
        same = finals[0] == finals[1]
        threads = f"{thread_counts(basic)} / {thread_counts(joblib)}"
        lines.append(
            f"| {workload}: `{' '.join(WORKLOADS[workload])}` | {len(joblib['jobs'])} | "
            f"{basic['wall_time_s']:.1f} | {joblib['wall_time_s']:.1f} | "
            f"{basic['wall_time_s'] / joblib['wall_time_s']:.2f}x | {threads} | "
            f"{mean_rate(basic):.0f} / {mean_rate(joblib):.0f} | {'yes' if same else 'NO'} |")
    lines += [
        "",
        "Wall time: the whole `python scripts/train.py -m ...` process, start-up included. "
        "Threads: `threads.intra_op` as each job ran it (its config.yaml; 0 = TensorFlow's "
        "default, one per core). The basic launcher runs the jobs one after another in one "
        "process; joblib runs one job per core, each with intra_op = cores / parallel jobs. "
        "Same final evals: every job's final greedy evaluation is equal under both launchers. "
        "The state MLP's results do not depend on the thread count; the CNN's do (TensorFlow's "
        "convolution kernels split their sums by thread), so pixel jobs at one thread and at "
        "two are different runs of the same seed.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    args = parser.parse_args()
    provenance = Provenance.of_this_run(ROOT, "scripts/benchmark_launchers.py")
    results = {w: {launcher: run_sweep(w, launcher) for launcher in LAUNCHERS}
               for w in args.workloads}
    publish(ROOT / "benchmarks", "launchers", to_markdown(provenance, results),
            {"results": results}, provenance)


if __name__ == "__main__":
    main()
