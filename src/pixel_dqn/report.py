"""Seed-aggregated statistics of a multirun: per arm, IQM with a bootstrap CI, curves, failures.

An arm is a job's overrides without its seed; the jobs of an arm are its seeds. A job that has
no ``eval.json`` (it failed, or is still running) is reported by name, never dropped silently.

    python -m pixel_dqn.report <multirun dir> [...] [--out DIR]

(also ``pixel-dqn-report``, or ``python scripts/report.py`` in a checkout) writes ``report.md``
(per arm: seeds, how many ended >= 475, final greedy eval IQM with a 95% bootstrap CI, mean +-
std, median env steps to the first eval >= 475, steps/s), ``report.csv`` and ``curves.png`` into
the multirun directory. Several multirun directories (the sweeps of one study) make one report,
written to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from scipy import stats

from pixel_dqn.benchmarking import invocation, machine_description, today
from pixel_dqn.cli import UserError, exit_on_user_error
from pixel_dqn.flat_config import flatten_config
from pixel_dqn.run_directory import (
    EVAL_FILE,
    RUN_CONFIG_FILE,
    SOLVED,
    TIMING_FILE,
    eval_curve,
    first_solved_step,
    read_json,
    read_metrics,
)

CONFIDENCE = 0.95
# config keys that do not change what a run computes: left out when jobs are pooled into arms
NOT_IN_ARM = ("seed", "progress_interval_s", "tensorboard", "checkpoint.", "display.")


@dataclass
class Job:
    name: str
    overrides: list[str]
    seed: int | None
    arm: str = ""  # the overrides that tell this job's arm from the others (set by find_jobs)
    final_eval: float | None = None  # the final evaluation of the network the run ended with
    kept_eval: float | None = None  # eval.keep_best: the kept network's final evaluation
    steps_per_s: float | None = None
    first_solved_step: float = math.inf  # env steps to the first eval >= SOLVED
    ended_at: float | None = None  # eval.json's modification time (seconds since the epoch)
    ended_by: dict[str, int] = field(default_factory=dict)  # the final eval's episode endings
    config: tuple | None = None  # the resolved config that decides the results (seed aside)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (env step, eval return)
    code: str | None = None  # the commit that finished the run (timing.json; runs since 12-06)
    machine: str | None = None  # the machine that finished it (likewise)

    @property
    def finished(self) -> bool:
        return self.final_eval is not None


def read_job(job_dir: Path) -> Job:
    """A job directory of a Hydra multirun (it holds ``.hydra/overrides.yaml``)."""
    overrides = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or []
    seed = next((int(o.split("=", 1)[1]) for o in overrides if o.startswith("seed=")), None)
    job = Job(job_dir.name, [o for o in overrides if not o.startswith("seed=")], seed)
    if (job_dir / RUN_CONFIG_FILE).is_file():
        flat = flatten_config(yaml.safe_load((job_dir / RUN_CONFIG_FILE).read_text()) or {})
        job.config = tuple(sorted((k, repr(v)) for k, v in flat.items()
                                  if not k.startswith(NOT_IN_ARM)))
    job.curve = eval_curve(read_metrics(job_dir))
    final = read_json(job_dir, EVAL_FILE)
    if final is not None:
        # the report grades the network the run ended with: with eval.keep_best that is the
        # last network (``last_network``), and the kept one is shown beside it (selection)
        trained = final.get("last_network", final)
        job.final_eval = float(trained["mean"])
        job.kept_eval = float(final["mean"]) if "kept_from" in final else None
        job.ended_by = trained.get("ended_by", {})
        job.ended_at = (job_dir / EVAL_FILE).stat().st_mtime
        timing = read_json(job_dir, TIMING_FILE)
        if timing is not None:
            job.steps_per_s = float(timing["steps_per_s"])
            job.code, job.machine = timing.get("code"), timing.get("machine")
            job.curve.append((int(timing["env_steps"]), job.final_eval))
        solved = first_solved_step(job.curve)
        job.first_solved_step = math.inf if solved is None else float(solved)
    return job



def _natural_order(path: Path) -> list[tuple[int, int | str]]:
    """Sort key comparing the runs of digits in a path as numbers."""
    return [(0, int(part)) if part.isdigit() else (1, part)
            for part in re.split(r"(\d+)", str(path)) if part]


def find_jobs(*multirun_dirs: Path) -> list[Job]:
    """Every job directory under the multirun directories, each sweep's in Hydra's job order
    (``2_...`` before ``10_...``), with its arm: the overrides (seed aside) that differ between
    the jobs. Jobs whose resolved configs are the same but for the seed (and settings that do
    not change results) are one arm, named after the first of them, even when different
    overrides made them (a screen and the defaults it became, say). Jobs of several sweeps are
    named ``<sweep dir>/<job dir>``."""
    jobs = []
    for multirun_dir in multirun_dirs:
        dirs = sorted((p.parent.parent for p in multirun_dir.rglob(".hydra/overrides.yaml")
                       if p.parent.parent != multirun_dir), key=_natural_order)
        for job_dir in dirs:
            job = read_job(job_dir)
            if len(multirun_dirs) > 1:
                job.name = f"{multirun_dir.name}/{job.name}"
            jobs.append(job)
    # what a job asked for that changes results (a run of the defaults asked for nothing)
    asked = {id(j): [o for o in j.overrides if not o.lstrip("+").startswith(NOT_IN_ARM)]
             for j in jobs}
    shared = set.intersection(*(set(a) for a in asked.values())) if jobs else set()
    first_label: dict[tuple, str] = {}
    for job in jobs:
        job.arm = (" ".join(o.lstrip("+") for o in asked[id(job)] if o not in shared)
                   or ("all" if asked[id(job)] else "defaults"))
        if job.config is not None:
            job.arm = first_label.setdefault(job.config, job.arm)
    return jobs


def describe_sweep(multirun_dir: Path, jobs: list[Job], prefix: str = "") -> list[str]:
    """The sweep's command (from Hydra's ``multirun.yaml``) and its wall time from file times:
    multirun.yaml is written when the sweep starts, each job's eval.json when it ends."""
    sweep_file = multirun_dir / "multirun.yaml"
    if not sweep_file.is_file():
        return []
    overrides = (yaml.safe_load(sweep_file.read_text()) or {}).get("hydra", {}).get("overrides", {})
    words = [*overrides.get("task", []),
             *(o for o in overrides.get("hydra", []) if not o.startswith("hydra.mode="))]
    lines = [f"- {prefix}sweep: `python scripts/train.py -m {' '.join(words)}`"]
    ends = [j.ended_at for j in jobs if j.ended_at is not None]
    if ends:
        hours = (max(ends) - sweep_file.stat().st_mtime) / 3600
        lines.append(f"- {prefix}sweep wall time: {hours:.2f} h (multirun.yaml to the last "
                     "eval.json)")
    return lines


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end)."""
    return stats.trim_mean(values, 0.25, axis=axis)


def iqm_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap confidence interval of the IQM (NaN with fewer than 2 values)."""
    values = np.asarray(values, float)
    if len(values) < 2 or np.all(values == values[0]):
        value = float(iqm(values)) if len(values) else math.nan
        return (value, value) if len(values) >= 2 else (math.nan, math.nan)
    result = stats.bootstrap((values,), iqm, confidence_level=CONFIDENCE, n_resamples=10_000,
                             method="percentile", random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarise(jobs: list[Job]) -> list[dict]:
    """One row per arm: seeds, IQM and its CI, mean and std, median steps to 475, steps/s."""
    arms: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        arms[job.arm].append(job)
    rows = []
    for arm, arm_jobs in arms.items():
        done = [j for j in arm_jobs if j.finished]
        finals = np.array([j.final_eval for j in done], float)
        low, high = iqm_ci(finals)
        median_solved = float(np.median([j.first_solved_step for j in done])) if done else math.nan
        rows.append({
            "arm": arm,
            "seeds": len(done),
            "solved": int((finals >= SOLVED).sum()),
            "failed_or_unfinished": len(arm_jobs) - len(done),
            "final_eval_iqm": float(iqm(finals)) if len(done) else math.nan,
            "iqm_ci_low": low,
            "iqm_ci_high": high,
            "final_eval_mean": float(finals.mean()) if len(done) else math.nan,
            "final_eval_std": float(finals.std()) if len(done) else math.nan,
            "median_steps_to_475": median_solved,
            "steps_per_s": float(np.mean([j.steps_per_s for j in done if j.steps_per_s]))
            if done else math.nan,
        })
    return rows


def write_report(out_dir: Path, jobs: list[Job], rows: list[dict], command: str,
                 date: str, machine: str, multirun_dirs: list[Path] | None = None) -> None:
    """``report.md``, ``report.csv`` and ``curves.png`` in ``out_dir``, for the jobs of
    ``multirun_dirs`` (by default ``out_dir`` itself)."""
    multirun_dirs = multirun_dirs or [out_dir]
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["arm"])
        writer.writeheader()
        writer.writerows(rows)
    plot_curves(jobs, out_dir / "curves.png")
    failed = [j.name for j in jobs if not j.finished]
    several = len(multirun_dirs) > 1
    sweeps = [line for d in multirun_dirs for line in describe_sweep(
        d, [j for j in jobs if not several or j.name.startswith(f"{d.name}/")],
        prefix=f"{d.name}: " if several else "")]
    lines = [
        f"# Report: {', '.join(d.name for d in multirun_dirs)}",
        "",
        *sweeps,
        f"- report: `{command}`",
        f"- runs' code: {_recorded(j.code for j in jobs)}",
        f"- runs' machine: {_recorded(j.machine for j in jobs)}",
        f"- report's machine: {machine}",
        f"- date: {date}",
        f"- jobs: {len(jobs)}, finished: {len(jobs) - len(failed)}",
        "",
        "| arm | seeds | final eval >= 475 | final greedy eval IQM [95% CI] | mean +- std | "
        "median env steps to first eval >= 475 | env steps/s |",
        "|---|---:|---:|---|---|---:|---:|",
    ]
    for r in rows:
        steps = ("never (median)" if math.isinf(r["median_steps_to_475"])
                 else f"{r['median_steps_to_475']:.0f}")
        lines.append(
            f"| {r['arm']} | {r['seeds']} | {r['solved']} of {r['seeds']} | "
            f"{r['final_eval_iqm']:.1f} "
            f"[{r['iqm_ci_low']:.1f}, {r['iqm_ci_high']:.1f}] | {r['final_eval_mean']:.1f} +- "
            f"{r['final_eval_std']:.1f} | {steps} | {r['steps_per_s']:.0f} |")
    lines += [
        "",
        "Final greedy eval: the final evaluation (eval.final_episodes episodes) of the network "
        "each run ended with; a run with eval.keep_best shows its kept network's beside it "
        "below, never in the statistics or the curves. "
        "IQM: interquartile mean of the seeds' final greedy evaluations (scipy.stats.trim_mean, "
        "25% cut from each end); CI: 95% percentile bootstrap of the IQM over seeds "
        "(scipy.stats.bootstrap, 10,000 resamples). A seed that never reached 475 counts as "
        "infinitely many steps in the median.",
        "",
        "![eval return vs env steps](curves.png)",
        "",
        "Failed or unfinished jobs (no eval.json): " + (", ".join(failed) if failed else "none"),
        "",
        "Every job:",
        "",
        "| job | arm | seed | final greedy eval | its episodes ended by | first eval >= 475 at "
        "| env steps/s |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for job in jobs:
        final = f"{job.final_eval:.1f}" if job.finished else "unfinished"
        if job.kept_eval is not None:
            final += f" (kept network: {job.kept_eval:.1f})"
        solved = "never" if math.isinf(job.first_solved_step) else f"{job.first_solved_step:.0f}"
        rate = f"{job.steps_per_s:.0f}" if job.steps_per_s else "-"
        seed = "-" if job.seed is None else job.seed
        endings = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in job.ended_by.items() if v)
        lines.append(f"| {job.name} | {job.arm} | {seed} | {final} | {endings or '-'} | "
                     f"{solved} | {rate} |")
    lines.append("")
    (out_dir / "report.md").write_text("\n".join(lines))


def _recorded(values) -> str:
    """The distinct values the runs recorded, or why there are none."""
    found = sorted({v for v in values if v})
    return "; ".join(found) if found else "not recorded (runs finished before 2026-12-06)"


def plot_curves(jobs: list[Job], path: Path) -> None:
    """Greedy eval return vs env steps per arm: the IQM over seeds and its 95% CI band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        if job.curve:
            arms[job.arm].append(job)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for arm, arm_jobs in arms.items():
        # the k-th evaluation of each seed (their env steps differ by < num_envs)
        points = min(len(j.curve) for j in arm_jobs)
        steps = np.array([[j.curve[k][0] for j in arm_jobs] for k in range(points)]).mean(1)
        values = np.array([[j.curve[k][1] for j in arm_jobs] for k in range(points)])
        centre = iqm(values, axis=1)
        bands = np.array([iqm_ci(v) for v in values])
        line, = ax.plot(steps, centre, label=f"{arm} ({len(arm_jobs)} seeds)")
        if len(arm_jobs) > 1:
            ax.fill_between(steps, bands[:, 0], bands[:, 1], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel("greedy eval return (IQM over seeds)")
    ax.set_ylim(0, 520)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> None:
    """The report command (``python -m pixel_dqn.report`` / ``pixel-dqn-report`` /
    ``python scripts/report.py``): multirun directories -> report.md, report.csv, curves.png."""
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
        jobs = find_jobs(*args.multirun_dirs)
        if not jobs:
            raise UserError("no Hydra jobs (.hydra/overrides.yaml) under "
                            + ", ".join(str(d) for d in args.multirun_dirs))
    out = args.out or args.multirun_dirs[0]
    rows = summarise(jobs)
    write_report(out, jobs, rows, invocation(), today(),
                 machine_description(), multirun_dirs=args.multirun_dirs)
    print((out / "report.md").read_text())


def run() -> None:
    """The console script ``pixel-dqn-report``."""
    main(sys.argv[1:])


if __name__ == "__main__":
    run()
