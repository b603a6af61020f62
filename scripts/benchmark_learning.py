"""Learning benchmark: train seeds one after another and tabulate the final greedy evaluations.

    python scripts/benchmark_learning.py --name state_dqn --seeds 0 1 2 3 4 -- \\
        env=cartpole_state model=mlp trainer=dqn

Runs are sequential by default; ``--parallel 2`` runs two seeds side by side, as a joblib
sweep does on 2 cores (each run has one TensorFlow thread by default, so a seed's results are the
same either way; its env steps/s is then that of a run sharing the machine, and the table says
so). Writes ``benchmarks/<name>.md`` and ``benchmarks/<name>.json`` with the
machine, the command and the date next to the figures; run directories go to
``outputs/benchmarks/<name>/seed<k>``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pixel_dqn import run_directory as run_files
from pixel_dqn.benchmarking import Provenance, add_provenance_options, publish

ROOT = Path(__file__).resolve().parents[1]


def run_seed(name: str, seed: int, overrides: list[str], tail: int) -> dict:
    run_dir = ROOT / "outputs" / "benchmarks" / name / f"seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # train from scratch: a run dir would resume
    command = run_files.train_command(*overrides, f"seed={seed}", "progress_interval_s=60",
                            run_dir=run_dir)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    final = run_files.read_json(run_dir, run_files.EVAL_FILE)
    timing = run_files.read_json(run_dir, run_files.TIMING_FILE)
    rows = run_files.read_metrics(run_dir)
    train_returns = [float(r["return"]) for r in rows if r["kind"] == "train"]
    first_solved = run_files.first_solved_step(run_files.eval_curve(rows))
    if first_solved is None and final["mean"] >= run_files.SOLVED:
        first_solved = timing["env_steps"]  # only the final evaluation reached it
    return {
        "seed": seed,
        "final_eval_mean": final["mean"],
        "final_eval_std": final["std"],
        "final_eval_min": final["min"],
        "final_eval_episodes": final["episodes"],
        # eval.keep_best: the final eval is the kept network's; the last one's is beside it
        "last_network_eval_mean": final.get("last_network", {}).get("mean"),
        "kept_from_env_step": final.get("kept_from", {}).get("env_step"),
        # greedy env steps the evaluations played: {training, periodic, final}
        "evaluation_env_steps": final.get("evaluation_env_steps"),
        "env_steps": timing["env_steps"],
        "first_eval_at_475": first_solved,
        "train_tail_episodes": min(tail, len(train_returns)),
        "train_tail_return_mean": float(np.mean(train_returns[-tail:])),
        "train_wall_time_s": timing["seconds"],
        "train_steps_per_s": timing["steps_per_s"],
        "time_per_env_step_us": {k: v["us_per_env_step"] for k, v in timing["phases"].items()},
        "process_wall_time_s": wall,
    }


def to_markdown(name: str, provenance: Provenance, results: list[dict],
                train_target: float | None = None, parallel: int = 1) -> str:
    solved = sum(r["final_eval_mean"] >= run_files.SOLVED for r in results)
    means = [r["final_eval_mean"] for r in results]
    tail = results[0]["train_tail_episodes"]
    target_line = [] if train_target is None else [
        f"- seeds whose last {tail} training episodes average >= {train_target:g}: **"
        f"{sum(r['train_tail_return_mean'] >= train_target for r in results)} of "
        f"{len(results)}**"]
    lines = [
        f"# Learning benchmark: {name}",
        "",
        *provenance.markdown(),
        "- runs: one after another" if parallel == 1 else
        f"- runs: {parallel} side by side (env steps/s is that of a run sharing the machine)",
        f"- seeds with final greedy eval mean >= {run_files.SOLVED:.0f}: "
        f"**{solved} of {len(results)}**; mean over the seeds {np.mean(means):.1f}",
        *target_line,
        *keep_best_lines(results),
        *evaluation_cost_lines(results),
        "",
        "| seed | final greedy eval (episodes) | env steps | first eval >= 475 at | "
        f"mean training return, last {tail} episodes | evaluation env steps (periodic + final) | "
        "train wall time (s) | env steps/s | process wall time (s) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        first = r["first_eval_at_475"] if r["first_eval_at_475"] is not None else "never"
        cost = r.get("evaluation_env_steps")
        spent = "-" if cost is None else f"{cost['periodic']} + {cost['final']}"
        lines.append(
            f"| {r['seed']} | {r['final_eval_mean']:.1f} +- {r['final_eval_std']:.1f} "
            f"(min {r['final_eval_min']:.0f}; {r['final_eval_episodes']}) | {r['env_steps']} | "
            f"{first} | {r['train_tail_return_mean']:.1f} | {spent} | "
            f"{r['train_wall_time_s']:.1f} | {r['train_steps_per_s']:.0f} | "
            f"{r['process_wall_time_s']:.1f} |"
        )
    phases = list(results[0]["time_per_env_step_us"])
    lines += [
        "",
        "env steps/s = env steps / training wall time (periodic evaluations included); the "
        "process wall time adds start-up, the final evaluation and saving. \"first eval >= 475\" "
        "is the first periodic greedy evaluation (or the final one) whose mean reached 475.",
        "",
        "Where the training time goes (us per env step, from each run's `timing.json`):",
        "",
        "| seed | " + " | ".join(phases) + " |",
        "|---:|" + "---:|" * len(phases),
    ]
    for r in results:
        cells = " | ".join(f"{r['time_per_env_step_us'][p]:.0f}" for p in phases)
        lines.append(f"| {r['seed']} | {cells} |")
    lines.append("")
    return "\n".join(lines)


def evaluation_cost_lines(results: list[dict]) -> list[str]:
    """The greedy env steps evaluation played, against the training budget."""
    costs = [r.get("evaluation_env_steps") for r in results]
    if any(c is None for c in costs):
        return []
    periodic = np.mean([c["periodic"] / c["training"] for c in costs])
    final = np.mean([c["final"] / c["training"] for c in costs])
    return [f"- greedy env steps played by evaluation, per run: periodic evaluations "
            f"{periodic:.2f}x the training env steps (curves only: no network is chosen by "
            f"them unless eval.keep_best), final evaluation {final:.2f}x"]


def keep_best_lines(results: list[dict]) -> list[str]:
    """With ``eval.keep_best``: how the last networks did, and where each kept one came from."""
    if any(r.get("last_network_eval_mean") is None for r in results):
        return []
    solved = sum(r["last_network_eval_mean"] >= run_files.SOLVED for r in results)
    per_seed = ", ".join(f"seed {r['seed']}: {r['last_network_eval_mean']:.1f} (kept: env step "
                         f"{r['kept_from_env_step']})" for r in results)
    return [f"- eval.keep_best: the final evaluation above is the network of the best periodic "
            f"evaluation's; the last network's final greedy eval (same episodes' seeds) >= "
            f"{run_files.SOLVED:.0f}: **{solved} of {len(results)}** ({per_seed})"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="benchmark name: file stem under benchmarks/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--tail", type=int, default=100,
                        help="training episodes at the end whose mean return is reported")
    parser.add_argument("--train-target", type=float, default=None,
                        help="also count seeds whose tail mean training return reaches this")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks",
                        help="where <name>.md and <name>.json go")
    parser.add_argument("--parallel", type=int, default=1,
                        help="seeds trained side by side (default 1: one after another)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides passed to scripts/train.py")
    add_provenance_options(parser)
    args = parser.parse_args()
    if args.parallel < 1:
        parser.error(f"--parallel {args.parallel}: must be >= 1")
    provenance = Provenance.of_this_run(ROOT, "scripts/benchmark_learning.py", args.allow_dirty)
    # side by side, each run's concurrent ops get its share of the cores (this changes no result)
    share = [] if args.parallel == 1 else [
        f"threads.inter_op={max((os.cpu_count() or 1) // args.parallel, 1)}"]
    overrides = [*share, *args.overrides]
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:  # each seed is a subprocess
        results = list(pool.map(lambda seed: run_seed(args.name, seed, overrides, args.tail),
                                args.seeds))
    markdown = to_markdown(args.name, provenance, results, args.train_target, args.parallel)
    publish(args.out, args.name, markdown, {"parallel": args.parallel, "results": results},
            provenance)


if __name__ == "__main__":
    main()
