"""Regenerate the headline benchmarks, then the tables rendered from them, in one command.

    python scripts/benchmark_headline.py [--allow-dirty]

Runs, one after another, each with two seeds side by side on the machine's cores: the pixel
defaults on seeds 0-9 and 10-19, the state agent on seeds 0-19 at 100k and at 50k env steps
(``scripts/benchmark_learning.py``), the state-vs-pixels report of them
(``scripts/report.py``), and ``scripts/render_docs.py``. About an hour on 2 cores (see
``docs/development.md``). Writes ``benchmarks/headline.md`` and ``.json``: each step's command
and wall time, and the total. Run it on an otherwise idle machine, from a clean checkout.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from pixel_dqn.benchmarking import Provenance, add_provenance_options, publish

ROOT = Path(__file__).resolve().parents[1]
SEEDS_0_9 = [str(seed) for seed in range(10)]
SEEDS_10_19 = [str(seed) for seed in range(10, 20)]
STATE = ["env=cartpole_state", "model=mlp"]
LEARNING = [("pixel_dqn", SEEDS_0_9, []), ("pixel_dqn_seeds10-19", SEEDS_10_19, []),
            ("state_dqn", SEEDS_0_9 + SEEDS_10_19, STATE),
            ("state_dqn_50k", SEEDS_0_9 + SEEDS_10_19, [*STATE, "total_steps=50000"])]


def steps(allow_dirty: bool) -> list[list[str]]:
    """Every command this benchmark runs, in order."""
    dirty = ["--allow-dirty"] if allow_dirty else []
    commands = [["scripts/benchmark_learning.py", *dirty, "--name", name, "--seeds", *seeds,
                 "--parallel", "2", *(["--", *overrides] if overrides else [])]
                for name, seeds, overrides in LEARNING]
    runs = [f"outputs/benchmarks/{name}" for name in ("state_dqn", "pixel_dqn",
                                                      "pixel_dqn_seeds10-19")]
    commands.append(["scripts/report.py", *runs, "--out", "benchmarks/state_vs_pixels"])
    commands.append(["scripts/render_docs.py"])
    return commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_provenance_options(parser)
    args = parser.parse_args()
    provenance = Provenance.of_this_run(ROOT, "scripts/benchmark_headline.py", args.allow_dirty)
    timed = []
    for command in steps(args.allow_dirty):
        print(f"+ python {' '.join(command)}", flush=True)
        start = time.monotonic()
        subprocess.run([sys.executable, *command], cwd=ROOT, check=True)
        timed.append({"command": f"python {' '.join(command)}",
                      "minutes": round((time.monotonic() - start) / 60, 1)})
    total = sum(step["minutes"] for step in timed)
    lines = ["# The headline benchmarks, regenerated", "", *provenance.markdown(), "",
             "| step | wall time |", "|---|---:|",
             *(f"| `{s['command']}` | {s['minutes']} min |" for s in timed),
             f"| total | {total:.1f} min |", ""]
    publish(ROOT / "benchmarks", "headline", "\n".join(lines),
            {"steps": timed, "total_minutes": total}, provenance)


if __name__ == "__main__":
    main()
