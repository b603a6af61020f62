"""A seed sweep both ways, in one invocation: today's joblib sweep and seed stacks.

    python scripts/benchmark_seed_stack.py                       # 10 pixel seeds, the defaults
    python scripts/benchmark_seed_stack.py --name seed_stack_state -- env=cartpole_state model=mlp

Runs ``python scripts/train.py -m seed=...`` twice, one sweep after the other on the same
machine: with ``hydra/launcher=joblib`` (two jobs side by side, one TensorFlow thread each) and
with ``hydra/launcher=seed_stack`` (pixel_dqn.trainers.seed_stack: a stack per core, each seed
in its own run directory). Reports each sweep's wall time and their ratio, and per seed the
final greedy evaluations, with the two sweeps' IQMs and 95% bootstrap CIs: a seed in a stack
is not bit-identical to the same seed alone (its ops are batched with other seeds', which
rounds differently), so the two are compared as samples. Writes ``benchmarks/<name>.md`` and
``.json``; the sweeps go to ``outputs/benchmarks/<name>/{joblib,seed_stack}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pixel_dqn import run_directory as run_files
from pixel_dqn.benchmarking import Provenance, add_provenance_options, publish
from pixel_dqn.sweep_comparison import iqms_agree, run_seed_sweep

ROOT = Path(__file__).resolve().parents[1]
WAYS = {"joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        "seed_stack": ["hydra/launcher=seed_stack"]}


def to_markdown(provenance: Provenance, seeds: list[int], sweeps: dict[str, dict],
                target: float) -> str:
    joblib, stack = sweeps["joblib"], sweeps["seed_stack"]
    speedup = joblib["wall_time_s"] / stack["wall_time_s"]
    overlap = iqms_agree(joblib, stack)
    same = all(joblib["seeds"][s]["final_eval_mean"] == stack["seeds"][s]["final_eval_mean"]
               for s in seeds)
    lines = [
        "# Seed sweep: joblib vs seed stacks",
        "",
        *provenance.markdown(),
        f"- seeds: {' '.join(map(str, seeds))}, the same config both ways",
        f"- **seed stacks {speedup:.2f}x the speed of the joblib sweep** (wall time "
        f"{joblib['wall_time_s']:.0f} s vs {stack['wall_time_s']:.0f} s); target >= "
        f"{target:g}x: {'yes' if speedup >= target else 'NO'}",
        f"- final evaluations per seed equal: {'yes' if same else 'no'} (not expected: a seed in "
        f"a stack rounds differently from the same seed alone)",
        f"- IQM of the final evaluations [95% CI]: joblib {joblib['iqm']:.1f} "
        f"[{joblib['iqm_ci'][0]:.1f}, {joblib['iqm_ci'][1]:.1f}], seed stacks "
        f"{stack['iqm']:.1f} [{stack['iqm_ci'][0]:.1f}, {stack['iqm_ci'][1]:.1f}]; each within "
        f"the other's CI: {'yes' if overlap else 'no'}",
        f"- seeds with final eval >= {run_files.SOLVED:.0f}: joblib {joblib['solved']} of "
        f"{len(seeds)}, seed stacks {stack['solved']} of {len(seeds)}",
        "",
        "| way | command | wall time (s) |",
        "|---|---|---:|",
        *[f"| {way} | `{sweep['command']}` | {sweep['wall_time_s']:.0f} |"
          for way, sweep in sweeps.items()],
        "",
        "| seed | joblib final eval | seed stack final eval | joblib train wall (s) | "
        "seed stack train wall (s) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for s in seeds:
        a, b = joblib["seeds"][s], stack["seeds"][s]
        lines.append(f"| {s} | {a['final_eval_mean']:.1f} | {b['final_eval_mean']:.1f} | "
                     f"{a['train_wall_time_s']:.0f} | {b['train_wall_time_s']:.0f} |")
    phases = sorted({p for sweep in sweeps.values() for r in sweep["seeds"].values()
                     for p in r["time_per_env_step_us"]})
    lines += ["", "Where a seed's training time goes, mean over the seeds (us per env step of "
              "the seed; in a stack, \"other\" is mostly the other seeds' turns):", "",
              "| way | " + " | ".join(phases) + " |", "|---|" + "---:|" * len(phases)]
    for way, sweep in sweeps.items():
        cells = [np.mean([r["time_per_env_step_us"].get(p, 0.0)
                          for r in sweep["seeds"].values()]) for p in phases]
        lines.append(f"| {way} | " + " | ".join(f"{c:.0f}" for c in cells) + " |")
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="seed_stack", help="file stem under benchmarks/")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--target", type=float, default=2.0,
                        help="the speed-up the record checks (default 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both sweeps")
    add_provenance_options(parser)
    args = parser.parse_args()
    provenance = Provenance.of_this_run(ROOT, "scripts/benchmark_seed_stack.py",
                                        args.allow_dirty)
    sweeps = {way: run_seed_sweep(ROOT, ROOT / "outputs" / "benchmarks" / args.name / way,
                                  args.seeds, [*launcher, *args.overrides])
              for way, launcher in WAYS.items()}
    publish(args.out, args.name, to_markdown(provenance, args.seeds, sweeps, args.target),
            {"seeds": args.seeds, "target": args.target, "sweeps": sweeps}, provenance)


if __name__ == "__main__":
    main()
