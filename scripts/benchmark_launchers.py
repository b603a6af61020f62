"""Launcher benchmark: the same multirun through Hydra's basic launcher and through joblib.

    python scripts/benchmark_launchers.py

Runs each workload twice, one launcher after the other (never both at once): the basic launcher
runs its jobs one after another, joblib runs them side by side; every job runs at one intra-op
thread under both (the default), so the two sweeps run the same jobs. Reports the wall time of
each sweep, their ratio, and whether every job's final greedy evaluation is the same under both
launchers. Writes
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

from pixel_dqn.benchmarking import Provenance, add_provenance_options, publish
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
                 "progress_interval_s=60", "checkpoint.enabled=false"]
    # like with like: every job at one intra-op thread (the default) under both launchers, so
    # each job's result is the same bit for bit and only how the jobs share the cores differs
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
        "default, one per core): one under both launchers, so both run the same jobs. The "
        "basic launcher runs them one after another in one process (the second core left to "
        "its inter-op pool); joblib runs one job per core. Same final evals: every job's final "
        "greedy evaluation is equal under both launchers, as it must be at the same thread "
        "count.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    add_provenance_options(parser)
    args = parser.parse_args()
    provenance = Provenance.of_this_run(ROOT, "scripts/benchmark_launchers.py", args.allow_dirty)
    results = {w: {launcher: run_sweep(w, launcher) for launcher in LAUNCHERS}
               for w in args.workloads}
    publish(ROOT / "benchmarks", "launchers", to_markdown(provenance, results),
            {"results": results}, provenance)


if __name__ == "__main__":
    main()
