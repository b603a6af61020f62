"""float32 against mixed bfloat16 networks, in one invocation: the speed and the learning.

    python scripts/benchmark_precision.py                  # 10 pixel seeds, the defaults
    python scripts/benchmark_precision.py --precisions mixed_bfloat16_convs --name precision_convs
    python scripts/benchmark_precision.py --name precision_state -- env=cartpole_state model=mlp

Runs the seed sweep ``python scripts/train.py -m seed=...`` with ``hydra/launcher=joblib`` (two
jobs side by side, one TensorFlow thread each) on the same machine with
``model.precision=float32`` and with each of ``--precisions`` (``mixed_bfloat16``: layers
compute in bfloat16 on float32 weights; ``mixed_bfloat16_convs``: the convolutions only;
pixel_dqn.networks). Reports each sweep's wall time and its ratio to float32's, per seed the
final greedy evaluations with the sweeps' IQMs and 95% bootstrap CIs (bfloat16 rounds
differently, so the sweeps are compared as samples), the op-kind profile of each
precision's update (pixel_dqn.op_profile on a run of each sweep) and this machine's 2048x2048
matmul rate in float32 and bfloat16 on one thread. Writes ``benchmarks/<name>.md`` and
``.json``; the sweeps go to ``outputs/benchmarks/<name>/<precision>``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pixel_dqn.benchmarking import Provenance, add_provenance_options, publish, python_output
from pixel_dqn.config import PRECISIONS
from pixel_dqn.op_profile import profile_table
from pixel_dqn.run_directory import SOLVED
from pixel_dqn.sweep_comparison import iqms_agree, run_seed_sweep

ROOT = Path(__file__).resolve().parents[1]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
REFERENCE = "float32"
MATMUL_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16",
                 "mixed_bfloat16_convs": "bfloat16"}



def measure(name: str, precisions: list[str], seeds: list[int], overrides: list[str]) -> dict:
    """Each precision's sweep, the op profile of its first seed's update, and the matmul rate
    of its arithmetic on one thread."""
    record = {}
    for precision in precisions:
        sweep = run_seed_sweep(ROOT, ROOT / "outputs" / "benchmarks" / name / precision, seeds,
                               [*JOBLIB, f"model.precision={precision}", *overrides])
        first_run = sweep["seeds"][seeds[0]]["run_dir"]
        record[precision] = {
            "sweep": sweep,
            "op_profile": json.loads(python_output(ROOT, "-m", "pixel_dqn.op_profile", first_run)),
            "matmul_gflops_1_thread": float(python_output(ROOT,
                "-m", "pixel_dqn.flops", "--threads", "1", "--dtype", MATMUL_DTYPES[precision])),
        }
    return record


def to_markdown(provenance: Provenance, seeds: list[int], record: dict) -> str:
    reference = record[REFERENCE]["sweep"]
    others = [p for p in record if p != REFERENCE]
    lines = ["# Network precision: float32 vs " + ", ".join(others), "", *provenance.markdown(),
             f"- seeds: {' '.join(map(str, seeds))}, the same config but for `model.precision`; "
             f"each sweep under joblib, two jobs of one TensorFlow thread"]
    for precision in others:
        sweep = record[precision]["sweep"]
        lines.append(f"- **{precision} {reference['wall_time_s'] / sweep['wall_time_s']:.2f}x "
                     f"the speed of float32** (sweep wall time {reference['wall_time_s']:.0f} s "
                     f"vs {sweep['wall_time_s']:.0f} s); its IQM within float32's CI and "
                     f"float32's within its: {'yes' if iqms_agree(reference, sweep) else 'no'}")
    lines += [
        "- IQM of the final evaluations [95% CI]: " + ", ".join(
            f"{p} {r['sweep']['iqm']:.1f} [{r['sweep']['iqm_ci'][0]:.1f}, "
            f"{r['sweep']['iqm_ci'][1]:.1f}]" for p, r in record.items()),
        f"- seeds with final eval >= {SOLVED:.0f}: " + ", ".join(
            f"{p} {r['sweep']['solved']} of {len(seeds)}" for p, r in record.items()),
        "- one training phase of the update (op profile, one thread as in the sweeps): "
        + ", ".join(f"{r['op_profile']['wall_ms_per_phase']:.1f} ms {p}"
                    for p, r in record.items()),
        "- this machine's 2048x2048 matmul on one thread: " + ", ".join(
            f"{r['matmul_gflops_1_thread']:.0f} GFLOP/s {MATMUL_DTYPES[p]}"
            for p, r in record.items()),
        "",
        "| precision | command | wall time (s) |",
        "|---|---|---:|",
        *[f"| {p} | `{r['sweep']['command']}` | {r['sweep']['wall_time_s']:.0f} |"
          for p, r in record.items()],
        "",
        "| seed | " + " | ".join(f"{p} final eval" for p in record) + " | "
        + " | ".join(f"{p} train_step us per env step" for p in record) + " |",
        "|---:|" + "---:|" * (2 * len(record)),
    ]
    for s in seeds:
        runs = [r["sweep"]["seeds"][s] for r in record.values()]
        lines.append(f"| {s} | " + " | ".join(f"{x['final_eval_mean']:.1f}" for x in runs)
                     + " | " + " | ".join(f"{x['time_per_env_step_us']['train_step']:.0f}"
                                          for x in runs) + " |")
    phases = sorted({p for r in record.values() for s in r["sweep"]["seeds"].values()
                     for p in s["time_per_env_step_us"]})
    lines += ["", "Where a seed's training time goes, mean over the seeds (us per env step):", "",
              "| precision | " + " | ".join(phases) + " |", "|---|" + "---:|" * len(phases)]
    for precision, r in record.items():
        cells = [np.mean([s["time_per_env_step_us"].get(p, 0.0)
                          for s in r["sweep"]["seeds"].values()]) for p in phases]
        lines.append(f"| {precision} | " + " | ".join(f"{c:.0f}" for c in cells) + " |")
    profiles = [r["op_profile"] for r in record.values()]
    heads = [f"{p} (wall {prof['wall_ms_per_phase']:.1f} ms)"
             for p, prof in zip(record, profiles, strict=True)]
    lines += profile_table(profiles, heads)
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="precision", help="file stem under benchmarks/")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS[1:],
                        default=list(PRECISIONS[1:]),
                        help="the precisions compared with float32 (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both sweeps")
    add_provenance_options(parser)
    args = parser.parse_args()
    provenance = Provenance.of_this_run(ROOT, "scripts/benchmark_precision.py", args.allow_dirty)
    record = measure(args.name, [REFERENCE, *args.precisions], args.seeds, args.overrides)
    publish(args.out, args.name, to_markdown(provenance, args.seeds, record),
            {"seeds": args.seeds, "precisions": record}, provenance)


if __name__ == "__main__":
    main()
