"""Aggregate Hydra multiruns over seeds: ``python scripts/report.py <multirun dir> [...]``.

Writes ``report.md`` (per arm: seeds, how many ended >= 475, final greedy eval IQM with a 95%
bootstrap CI, mean +- std, median env steps to the first eval >= 475, steps/s), ``report.csv``
and ``curves.png`` into the multirun directory, and lists failed or unfinished jobs by name.
Several multirun directories (the sweeps of one study) make one report, written to ``--out``:

    python scripts/report.py multirun/pixel_study/A multirun/pixel_study/B --out benchmarks/x
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pixel_dqn.benchmarking import invocation, machine_description, today
from pixel_dqn.cli import UserError, exit_on_user_error


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("multirun_dirs", nargs="+", type=Path, metavar="multirun_dir")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the report goes (default: the one multirun directory)")
    args = parser.parse_args(argv)
    with exit_on_user_error():
        for multirun_dir in args.multirun_dirs:
            if not multirun_dir.is_dir():
                raise UserError(f"{multirun_dir} is not a directory: give a multirun directory, "
                                f"e.g. multirun/state_vs_pixels/<date>_<time>")
        if args.out is None and len(args.multirun_dirs) > 1:
            raise UserError("several multirun directories make one report: say where it goes "
                            "with --out DIR")
        from pixel_dqn.report import find_jobs, summarise, write_report

        jobs = find_jobs(*args.multirun_dirs)
        if not jobs:
            raise UserError("no Hydra jobs (.hydra/overrides.yaml) under "
                            + ", ".join(str(d) for d in args.multirun_dirs))
    out = args.out or args.multirun_dirs[0]
    rows = summarise(jobs)
    write_report(out, jobs, rows, invocation("scripts/report.py"), today(),
                 machine_description(), multirun_dirs=args.multirun_dirs)
    print((out / "report.md").read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
