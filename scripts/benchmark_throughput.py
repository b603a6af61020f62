"""Training throughput benchmark: end-to-end env steps/s of a config, and where the time goes.

    python scripts/benchmark_throughput.py                       # the defaults (pixel DQN)
    python scripts/benchmark_throughput.py --steps 3000 --out /tmp/b -- trainer.batch_size=32

Trains ``--steps`` env steps with ``scripts/train.py`` (periodic evaluations off, so the figure
is training alone; the warm-up of ``learning_starts`` random steps included), then reads the
run's ``timing.json``: steps/s over the whole loop and microseconds per env step for acting,
env stepping, replay writes, replay sampling and the gradient step. In the same invocation (the
machine is shared: ratios are only fair within one run) it trains the same config with one
inter-op thread, with op determinism off and with TensorFlow's Eigen kernels instead of oneDNN,
so the gain or cost of each shows beside the main figure (``--no-variants`` skips them).
Writes ``benchmarks/<name>.md`` and ``.json`` with the machine, the command and the date.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from pixel_dqn.benchmarking import Provenance, add_provenance_options, publish, python_output
from pixel_dqn.op_profile import profile_table
from pixel_dqn.run_directory import MODEL_FILE, TIMING_FILE, read_json, train_command
from pixel_dqn.runtime import ONEDNN_VARIABLE

ROOT = Path(__file__).resolve().parents[1]
TARGET_STEPS_PER_S = 300.0
"""The target for the pixel defaults on 2 cores."""
GIVEN = "a reference measurement given to the project, 2026-11 (not re-measured)"
REFERENCES = (
    ("Stable-Baselines3 DQN, small CNN on 40x90 [previous, current] patches, train_freq 4, "
     "batch 64", 117.0, GIVEN),
    ("Stable-Baselines3 DQN, conv 8 k8 s4 + conv 16 k4 s2 + dense 128, batch 64 every 4 env "
     "steps, on a cv2-drawn patch", 237.0, GIVEN),
    ("the same on the tutorial's pygame patch (what its users run)", 106.0, GIVEN),
    ("this project before 2026-12-01 (pixel defaults of then, Eigen kernels)", 205.0, GIVEN),
    ("this project at commit 3c44434 (oneDNN; before PixelConv, FusedAdam and two inter-op "
     "threads)", 241.0, "this script at 3c44434, 2026-12-02"),
)
"""(what, env steps/s, where the figure comes from): measured on this machine class (AMD EPYC,
2 cores), not by this invocation."""
VARIANTS = (
    ("one op at a time (threads.inter_op=1)", ["threads.inter_op=1"], {}),
    ("op determinism off", ["deterministic=false"], {}),
    ("Eigen kernels (oneDNN off)", [], {ONEDNN_VARIABLE: "0"}),
)
"""(label, extra overrides, extra environment) of the runs beside the main one."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="env steps to train")
    parser.add_argument("--name", default="pixel_throughput")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--no-variants", action="store_true",
                        help="time the config only, not its determinism-off and Eigen variants")
    parser.add_argument("--stack-seeds", type=int, default=5,
                        help="also profile a seed stack of this many seeds (0: skip)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides passed to scripts/train.py")
    add_provenance_options(parser)
    args = parser.parse_args()
    run_dir = ROOT / "outputs" / "benchmarks" / args.name
    timing = timed_run(run_dir, args.steps, args.overrides, {})
    variants = []
    for label, overrides, environment in () if args.no_variants else VARIANTS:
        variant = timed_run(run_dir.with_name(f"{args.name}_variant"), args.steps,
                            [*args.overrides, *overrides], environment)
        variants.append({"variant": label, "overrides": overrides, "environment": environment,
                         "steps_per_s": variant["steps_per_s"],
                         "train_step_us": variant["phases"]["train_step"]["us_per_env_step"]})
    provenance = Provenance.of_this_run(ROOT, "scripts/benchmark_throughput.py", args.allow_dirty)
    compute = compute_limit(run_dir, timing)
    profiles = op_profiles(run_dir, args.stack_seeds) if args.stack_seeds else []
    record = {
        "env_steps": timing["env_steps"],
        "seconds": timing["seconds"],
        "steps_per_s": timing["steps_per_s"],
        "target_steps_per_s": TARGET_STEPS_PER_S,
        "phases": timing["phases"],
        "replay": timing.get("replay", {}),
        "compute": compute,
        "op_profiles": profiles,
        "variants": variants,
        "references": [{"what": what, "steps_per_s": rate, "source": source}
                       for what, rate, source in REFERENCES],
        "config": (run_dir / "config.yaml").read_text(),
    }
    publish(args.out, args.name, to_markdown(record, provenance), record, provenance)


def compute_limit(run_dir: Path, timing: dict) -> dict:
    """The run's FLOPs per env step (from its saved network and trainer terms), the rate it
    achieved, and this machine's fp32 matmul rate measured now on one thread and on all cores:
    how much of the machine the learner uses."""
    from pixel_dqn.config import DQNConfig, load_config
    from pixel_dqn.flops import dqn_work, forward_macs
    from pixel_dqn.networks import load_q_network

    cfg = load_config(yaml.safe_load((run_dir / "config.yaml").read_text()))
    if not isinstance(cfg.trainer, DQNConfig):
        return {}
    work = dqn_work(forward_macs(load_q_network(run_dir / MODEL_FILE)), cfg.trainer)
    train_us = timing["phases"]["train_step"]["us_per_env_step"]
    achieved = work.per_env_step * timing["steps_per_s"] / 1e9
    matmul = {threads: float(python_output(ROOT, "-m", "pixel_dqn.flops", "--threads",
                                           str(threads)))
              for threads in (1, os.cpu_count() or 1)}
    return {"forward_macs": work.forward_macs, "flops_per_env_step": work.per_env_step,
            "learning_flops_per_env_step": work.learning_flops,
            "achieved_gflops": achieved,
            "train_step_gflops": work.learning_flops / train_us / 1e3,
            "threads": {"intra_op": cfg.threads.intra_op, "inter_op": cfg.threads.inter_op},
            "matmul_gflops": matmul, "utilisation": achieved / max(matmul.values())}


def op_profiles(run_dir: Path, stack_seeds: int) -> list[dict]:
    """Where a training phase's time goes per op kind: the run's agent, and a seed stack of
    ``stack_seeds`` seeds of its config (pixel_dqn.op_profile, each in a process of its own)."""
    return [json.loads(python_output(ROOT, "-m", "pixel_dqn.op_profile", str(run_dir), *extra))
            for extra in ([], ["--seeds", str(stack_seeds)])]



def timed_run(run_dir: Path, steps: int, overrides: list[str], environment: dict) -> dict:
    """Train ``steps`` env steps from scratch in ``run_dir``; return its ``timing.json``."""
    shutil.rmtree(run_dir, ignore_errors=True)  # train from scratch: a run dir would resume
    command = train_command(*overrides, f"total_steps={steps}", f"eval.every_steps={steps + 1}",
                            "eval.final_episodes=1", "progress_interval_s=60", run_dir=run_dir)
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, **environment})
    return read_json(run_dir, TIMING_FILE)


def to_markdown(record: dict, provenance: Provenance) -> str:
    rate = record["steps_per_s"]
    met = "yes" if rate >= record["target_steps_per_s"] else "no"
    lines = [
        "# Training throughput",
        "",
        *provenance.markdown(),
        f"- **{rate:.0f} env steps/s** end to end over {record['env_steps']} env "
        f"steps ({record['seconds']:.0f} s, periodic evaluations off); target >= "
        f"{record['target_steps_per_s']:.0f}: {met}",
    ]
    replay = record["replay"]
    if replay:
        lines.append(f"- replay: {replay['bytes'] / 1e6:.0f} MB for {replay['capacity']} steps, "
                     f"{replay['bytes_per_step']:.0f} bytes per step "
                     f"({replay['bytes_per_step'] * 1e5 / 1e9:.3f} GB per 100k steps)")
    compute = record.get("compute") or {}
    if compute:
        matmul = {int(k): v for k, v in compute["matmul_gflops"].items()}
        cores = max(matmul)
        threads = compute["threads"]
        lines += [
            f"- compute: **{compute['flops_per_env_step'] / 1e6:.1f} MFLOP per env step** (a "
            f"forward pass is {compute['forward_macs'] / 1e3:.0f}k multiply-adds per sample; "
            f"learning is {compute['learning_flops_per_env_step'] / 1e6:.1f} of it, acting the "
            f"rest), so **{compute['achieved_gflops']:.1f} GFLOP/s achieved** end to end "
            f"({compute['train_step_gflops']:.1f} inside the gradient step), on TensorFlow "
            f"threads intra_op={threads['intra_op']} inter_op={threads['inter_op']} (0: one "
            f"per core)",
            f"- this machine's fp32 2048x2048 matmul, measured in this invocation: "
            f"**{matmul[cores]:.0f} GFLOP/s** on {cores} threads ({matmul[1]:.0f} on one): "
            f"**utilisation {100 * compute['utilisation']:.1f}%** of the {cores}-thread rate"]
    lines += ["", "| phase | us per env step | share |", "|---|---:|---:|"]
    for name, phase in sorted(record["phases"].items(), key=lambda kv: -kv[1]["seconds"]):
        lines.append(f"| {name} | {phase['us_per_env_step']:.0f} | {100 * phase['share']:.1f}% |")
    if record["variants"]:
        lines += ["", "The same config, trained right after in the same invocation:", "",
                  "| variant | env steps/s | train_step us per env step | x this config |",
                  "|---|---:|---:|---:|",
                  f"| this config | {rate:.0f} | "
                  f"{record['phases']['train_step']['us_per_env_step']:.0f} | 1.00 |"]
        for variant in record["variants"]:
            lines.append(f"| {variant['variant']} | {variant['steps_per_s']:.0f} | "
                         f"{variant['train_step_us']:.0f} | {variant['steps_per_s'] / rate:.2f} |")
    lines += profile_lines(record.get("op_profiles") or [])
    # no ratio to this run: the references ran on other hosts on other days (hosts of one CPU
    # model differ by tens of percent), so only figures of one invocation are compared
    lines += ["", "Reference figures, measured on other hosts of this machine class on other days "
              "(not comparable to this run's figures: the source says where from):", "",
              "| what | env steps/s | source |", "|---|---:|---|"]
    for reference in record["references"]:
        lines.append(f"| {reference['what']} | {reference['steps_per_s']:.0f} | "
                     f"{reference['source']} |")
    lines += ["", "The config of the run:", "", "```yaml", record["config"].rstrip(), "```", ""]
    return "\n".join(lines)


def profile_lines(profiles: list[dict]) -> list[str]:
    """The op-kind profiles of one agent and of a seed stack as a table."""
    heads = []
    for p in profiles:
        who = f"a seed stack of {p['seeds']}, per seed" if p["stacked"] else "one agent"
        heads.append(f"{who} (wall {p['wall_ms_per_phase'] / p['seeds']:.1f} ms)")
    return profile_table(profiles, heads)


if __name__ == "__main__":
    main()
