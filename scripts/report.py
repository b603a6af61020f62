"""Aggregate a Hydra multirun over seeds: ``python scripts/report.py <multirun dir>``.

Writes ``report.md`` (per arm: seeds, final greedy eval IQM with a 95% bootstrap CI, mean +- std,
median env steps to the first eval >= 475, steps/s), ``report.csv`` and ``curves.png`` into the
multirun directory, and lists failed or unfinished jobs by name.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pixel_dqn.benchmarking import invocation, machine_description, today
from pixel_dqn.cli import UserError, exit_on_user_error


def main(argv: list[str]) -> None:
    with exit_on_user_error():
        if len(argv) != 1:
            raise UserError("usage: python scripts/report.py <multirun dir>")
        multirun_dir = Path(argv[0])
        if not multirun_dir.is_dir():
            raise UserError(f"{multirun_dir} is not a directory: give a multirun directory, "
                            f"e.g. multirun/state_vs_pixels/<date>_<time>")
        from pixel_dqn.report import find_jobs, summarise, write_report

        jobs = find_jobs(multirun_dir)
        if not jobs:
            raise UserError(f"no Hydra jobs (.hydra/overrides.yaml) under {multirun_dir}")
    rows = summarise(jobs)
    write_report(multirun_dir, jobs, rows, invocation("scripts/report.py"), today(),
                 machine_description())
    print((multirun_dir / "report.md").read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
