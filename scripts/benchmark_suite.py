"""Test-suite benchmark: what CI runs, timed on a clean clone of the committed HEAD.

    python scripts/benchmark_suite.py [--runs 2]

Each run clones HEAD into a temporary directory (with ``../shared`` linked beside it when the
checkout has one, as in CI), runs ``CI=true bash .ci/run`` there (a fresh venv, the extras, then
the README's test command: the full suite), then ``pytest -m "not slow"`` with that clone's venv.
Reports pytest's own count and time for both ("N passed in S s"), the CI script's wall time
(set-up included) and the slowest tests, against the targets: the full suite under 8 minutes,
the quick set under 2. Writes ``benchmarks/test_suite.md`` and ``benchmarks/test_suite.json``.
The suite keeps both cores busy: run this on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pixel_dqn.benchmarking import Provenance, add_provenance_options, publish

ROOT = Path(__file__).resolve().parents[1]
FULL_TARGET_S = 8 * 60
QUICK_TARGET_S = 2 * 60
# pytest's last line, e.g. "==== 234 passed, 91 warnings in 359.74s (0:05:59) ===="
SUMMARY = re.compile(r"(\d+) passed\b.* in ([\d.]+)s\b")
# one line of --durations, e.g. "51.75s call     tests/test_tuning.py::test_a_killed_driver"
DURATION = re.compile(r"^([\d.]+)s (setup|call|teardown) +(\S+)$")


def pytest_summary(output: str) -> dict:
    """The passed count and pytest's seconds from a pytest run's output (its last summary).

    A run with failures or errors is refused: its time says nothing about the suite's.
    """
    summaries = [line for line in output.splitlines() if SUMMARY.search(line)]
    if not summaries:
        raise ValueError("no 'N passed in S s' line in the pytest output")
    last = summaries[-1]
    if re.search(r"\d+ (failed|errors?)\b", last):
        raise ValueError(f"the suite did not pass: {last.strip(' =')}")
    match = SUMMARY.search(last)
    return {"passed": int(match.group(1)), "seconds": float(match.group(2))}


def slowest(output: str, count: int = 10) -> list[dict]:
    """The ``count`` longest test phases listed by ``--durations``, longest first."""
    phases = [{"seconds": float(m.group(1)), "phase": m.group(2), "test": m.group(3)}
              for m in map(DURATION.match, output.splitlines()) if m]
    return sorted(phases, key=lambda p: -p["seconds"])[:count]


def run_once(work: Path) -> dict:
    """Clone HEAD into ``work``, run CI there, then the quick set; return the figures."""
    clone = work / "main"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    shared = ROOT.parent / "shared"
    if shared.is_dir():
        (work / "shared").symlink_to(shared)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, check=True,
                            capture_output=True, text=True).stdout.strip()
    env = {**os.environ, "CI": "true"}
    env.pop("VIRTUAL_ENV", None)
    start = time.perf_counter()
    ci = subprocess.run(["bash", ".ci/run"], cwd=clone, env=env, capture_output=True, text=True)
    ci_wall = time.perf_counter() - start
    if ci.returncode != 0:
        sys.exit(f"error: bash .ci/run failed (exit status {ci.returncode}) in {clone} (kept "
                 f"for a look):\n{(ci.stdout + ci.stderr)[-3000:]}")
    venv_bin = clone / ".venv" / "bin"  # as after .ci/run's `source .venv/bin/activate`
    env = {**env, "VIRTUAL_ENV": str(venv_bin.parent),
           "PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"}
    quick = subprocess.run([str(venv_bin / "python"), "-m", "pytest", "-m", "not slow", "-q"],
                           cwd=clone, env=env, capture_output=True, text=True)
    if quick.returncode != 0:
        sys.exit(f"error: pytest -m 'not slow' failed in {clone} (kept for a look):\n"
                 f"{(quick.stdout + quick.stderr)[-3000:]}")
    return {"commit": commit, "ci_wall_s": ci_wall, "full": pytest_summary(ci.stdout),
            "quick": pytest_summary(quick.stdout), "slowest": slowest(ci.stdout)}


def _minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60} s"


def to_markdown(provenance: Provenance, runs: list[dict]) -> str:
    lines = [
        "# Test-suite benchmark: the full suite and the quick set on a clean clone",
        "",
        *provenance.markdown(),
        "",
        "| run | commit | full suite: tests | full suite: pytest time | < 8 min | "
        "`not slow`: tests | `not slow`: pytest time | < 2 min | `bash .ci/run` wall time |",
        "|---:|---|---:|---:|---|---:|---:|---|---:|",
    ]
    for number, run in enumerate(runs, 1):
        full, quick = run["full"], run["quick"]
        lines.append(
            f"| {number} | {run['commit']} | {full['passed']} | {full['seconds']:.2f} s "
            f"({_minutes(full['seconds'])}) | {'yes' if full['seconds'] < FULL_TARGET_S else 'NO'}"
            f" | {quick['passed']} | {quick['seconds']:.2f} s ({_minutes(quick['seconds'])}) | "
            f"{'yes' if quick['seconds'] < QUICK_TARGET_S else 'NO'} | {run['ci_wall_s']:.0f} s |")
    lines += ["", f"Slowest tests of run {len(runs)} (pytest `--durations`, two workers sharing "
              "the cores):", "", "| seconds | phase | test |", "|---:|---|---|"]
    lines += [f"| {p['seconds']:.2f} | {p['phase']} | `{p['test']}` |" for p in runs[-1]["slowest"]]
    lines += [
        "",
        "Full suite: `bash .ci/run` (a fresh venv, "
        "`pip install -e \".[dev,launchers,tune,docs]\" && pytest`, on two pytest-xdist "
        "workers); its wall time includes the venv and the install. "
        "Quick set: `pytest -m \"not slow\"` with the same venv. Times are pytest's own.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="clean-clone runs, one after another")
    add_provenance_options(parser)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs={args.runs}: give 1 or more")
    provenance = Provenance.of_this_run(ROOT, "scripts/benchmark_suite.py", args.allow_dirty)
    runs = []
    for number in range(1, args.runs + 1):
        work = Path(tempfile.mkdtemp(prefix="suite-"))  # removed only after a run that passed
        print(f"run {number}/{args.runs}: clean clone in {work}", flush=True)
        runs.append(run_once(work))
        shutil.rmtree(work)
        print(f"  full suite {runs[-1]['full']}, not slow {runs[-1]['quick']}", flush=True)
    publish(ROOT / "benchmarks", "test_suite", to_markdown(provenance, runs), {"runs": runs},
            provenance)


if __name__ == "__main__":
    main()
