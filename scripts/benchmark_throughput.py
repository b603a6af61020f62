"""Training throughput benchmark: end-to-end env steps/s of a config, and where the time goes.

    python scripts/benchmark_throughput.py                       # the defaults (pixel DQN)
    python scripts/benchmark_throughput.py --steps 3000 --out /tmp/b -- trainer.batch_size=32

Trains ``--steps`` env steps with ``scripts/train.py`` (periodic evaluations off, so the figure
is training alone; the warm-up of ``learning_starts`` random steps included), then reads the
run's ``timing.json``: steps/s over the whole loop and microseconds per env step for acting,
env stepping, replay writes, replay sampling and the gradient step. Writes
``benchmarks/<name>.md`` and ``.json`` with the machine, the command and the date.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from pixel_dqn.benchmarking import invocation, machine_description, today, write_benchmark

ROOT = Path(__file__).resolve().parents[1]
SB3_REFERENCE_STEPS_PER_S = 117.0
"""Stable-Baselines3 DQN, small CNN on 40x90 [previous, current] patches, train_freq 4, batch 64,
on this 2-core machine class: the figure issue 4 gives (not re-measured by this script)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="env steps to train")
    parser.add_argument("--name", default="pixel_throughput")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides passed to scripts/train.py")
    args = parser.parse_args()
    run_dir = ROOT / "outputs" / "benchmarks" / args.name
    shutil.rmtree(run_dir, ignore_errors=True)  # train from scratch: a run dir would resume
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), *args.overrides,
               f"total_steps={args.steps}", f"eval.every_steps={args.steps + 1}",
               "eval.final_episodes=1", f"hydra.run.dir={run_dir}", "progress_interval_s=60"]
    subprocess.run(command, check=True, cwd=ROOT)
    timing = json.loads((run_dir / "timing.json").read_text())
    config = (run_dir / "config.yaml").read_text()
    record = {
        "command": invocation("scripts/benchmark_throughput.py"),
        "machine": machine_description(),
        "date": today(),
        "env_steps": timing["env_steps"],
        "seconds": timing["seconds"],
        "steps_per_s": timing["steps_per_s"],
        "x_sb3_reference": timing["steps_per_s"] / SB3_REFERENCE_STEPS_PER_S,
        "phases": timing["phases"],
        "replay": timing.get("replay", {}),
        "config": config,
    }
    markdown = to_markdown(record)
    write_benchmark(args.out, args.name, markdown, record)
    print(markdown)


def to_markdown(record: dict) -> str:
    lines = [
        "# Training throughput",
        "",
        f"- command: `{record['command']}`",
        f"- machine: {record['machine']}",
        f"- date: {record['date']}",
        f"- **{record['steps_per_s']:.0f} env steps/s** end to end over {record['env_steps']} env "
        f"steps ({record['seconds']:.0f} s, periodic evaluations off): "
        f"{record['x_sb3_reference']:.1f}x the SB3 reference of "
        f"{SB3_REFERENCE_STEPS_PER_S:.0f} env steps/s (issue 4's figure, same replay ratio and "
        "batch: one gradient step of 64 every 4 env steps)",
    ]
    replay = record["replay"]
    if replay:
        lines.append(f"- replay: {replay['bytes'] / 1e6:.0f} MB for {replay['capacity']} steps, "
                     f"{replay['bytes_per_step']:.0f} bytes per step "
                     f"({replay['bytes_per_step'] * 1e5 / 1e9:.3f} GB per 100k steps)")
    lines += [
        "",
        "| phase | us per env step | share |",
        "|---|---:|---:|",
    ]
    for name, phase in sorted(record["phases"].items(), key=lambda kv: -kv[1]["seconds"]):
        lines.append(f"| {name} | {phase['us_per_env_step']:.0f} | {100 * phase['share']:.1f}% |")
    lines += ["", "The config of the run:", "", "```yaml", record["config"].rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
