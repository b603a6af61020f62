"""Result tables rendered from the committed benchmark JSON (``benchmarks/*.json``), so a figure
in README.md or docs/ is always the one a benchmark file holds, with its commit and machine.

A page marks each table's place::

    <!-- results:headline -->
    (the table: scripts/render_docs.py writes it)
    <!-- /results -->
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from pixel_dqn.report import iqm, iqm_ci

SOLVED = 475.0
"""CartPole-v1 counts as solved at a mean return of 475 over 100 episodes."""

TABLES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "headline": [
        ("pixels: the CNN on screen patches, 100k env steps",
         ("pixel_dqn.json", "pixel_dqn_seeds10-19.json")),
        ("state: the MLP on the 4 floats, 100k env steps", ("state_dqn.json",)),
        ("state: the MLP on the 4 floats, 50k env steps", ("state_dqn_50k.json",)),
    ],
}
"""Each table's rows: a label and the benchmark files whose seeds the row pools."""

MARKED = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n).*?(<!-- /results -->)", re.S)


def _cpu(machine: str) -> str:
    match = re.search(r"\(([^)]*)\)", machine)
    return match.group(1) if match else machine


def _commit(code: str) -> str:
    match = re.search(r"commit ([0-9a-f]{7})", code)
    return f"`{match.group(1)}`" if match else code


def row(label: str, files: list[dict], names: tuple[str, ...]) -> str:
    """One table row pooling the seeds of ``files`` (benchmark_learning.py's JSON)."""
    results = [r for f in files for r in f["results"]]
    finals = np.array([r["final_eval_mean"] for r in results], float)
    low, high = iqm_ci(finals)
    firsts = [r["first_eval_at_475"] for r in results]
    median = float(np.median([s if s is not None else math.inf for s in firsts]))
    seeds = ", ".join(_seed_range([r["seed"] for r in results]))
    # a link that works from README.md and from docs/ alike (docs/benchmarks is a symlink)
    sources = ", ".join(f"[{name.removesuffix('.json')}.md](benchmarks/"
                        f"{name.removesuffix('.json')}.md)" for name in names)
    provenance = "; ".join(sorted({f"{_commit(f['code'])}, {_cpu(f['machine'])}, {f['date']}"
                                   for f in files}))
    return (f"| {label} | {seeds} | {int((finals >= SOLVED).sum())} of {len(finals)} | "
            f"{finals.mean():.1f} | {iqm(finals):.1f} [{low:.1f}, {high:.1f}] | "
            f"{finals.min():.1f} | {'never' if math.isinf(median) else f'{median:,.0f}'} | "
            f"{sources} ({provenance}) |")


def _seed_range(seeds: list[int]) -> list[str]:
    seeds, spans = sorted(seeds), []
    for seed in seeds:
        if spans and seed == spans[-1][1] + 1:
            spans[-1][1] = seed
        else:
            spans.append([seed, seed])
    return [f"{a}-{b}" if a != b else f"{a}" for a, b in spans]


PIXEL_ENV_STAGES = ("physics step", "pygame render", "crop + gray + resize",
                    "fast render, drawing only", "fast render, memoised",
                    "wrapper step: pygame, diff", "wrapper step: fast, diff",
                    "wrapper step: pygame, diff_current", "wrapper step: fast, diff_current",
                    "vector env: 8 x fast diff, sync", "vector env: 8 x fast diff, async")
"""The stages of ``benchmarks/pixel_env.json`` the docs quote (the checks use the diff rows)."""


def pixel_env_table(benchmarks: Path) -> str:
    """An excerpt of the env benchmark (scripts/benchmark.py), with its provenance."""
    record = json.loads((benchmarks / "pixel_env.json").read_text())
    rows = {row["stage"]: row for row in record["rows"]}
    lines = [f"Excerpt of [pixel_env.md](benchmarks/pixel_env.md) ({_commit(record['code'])}, "
             f"{_cpu(record['machine'])}, {record['date']}; window `env.follow="
             f"{record['follow']:g}`):", "",
             "| stage | what | us / env step | env steps/s | x raw physics |",
             "|---|---|---:|---:|---:|"]
    lines += [f"| {stage} | {rows[stage]['what']} | {rows[stage]['us_per_env_step']:.1f} | "
              f"{rows[stage]['steps_per_s']:,.0f} | {rows[stage]['x_physics']:.1f} |"
              for stage in PIXEL_ENV_STAGES]
    return "\n".join([*lines, "", *(f"- {check}" for check in record["checks"])]) + "\n"


def seeds_table(name: str, benchmarks: Path) -> str:
    """One row per seed of a REINFORCE learning benchmark (``benchmarks/<name>.json``)."""
    record = json.loads((benchmarks / f"{name}.json").read_text())
    lines = [f"[{name}.md](benchmarks/{name}.md) ({_commit(record['code'])}, "
             f"{_cpu(record['machine'])}, {record['date']}):", "",
             "| seed | mean training return, last 100 episodes | final greedy eval (100 "
             "episodes, 200-step cap) | env steps | training s | process s |",
             "|---:|---:|---|---:|---:|---:|"]
    lines += [f"| {r['seed']} | {r['train_tail_return_mean']:.1f} | {r['final_eval_mean']:.1f} "
              f"+- {r['final_eval_std']:.1f} | {r['env_steps']} | {r['train_wall_time_s']:.1f} | "
              f"{r['process_wall_time_s']:.1f} |" for r in record["results"]]
    return "\n".join(lines) + "\n"


RENDERERS = {"pixel_env": pixel_env_table,
             "reinforce": lambda b: seeds_table("reinforce", b),
             "reinforce_seeds5-9": lambda b: seeds_table("reinforce_seeds5-9", b)}
"""Tables that are not pooled learning rows: an excerpt or one row per seed."""


def table(name: str, benchmarks: Path) -> str:
    """The markdown of table ``name`` from the JSON files in ``benchmarks``."""
    if name in RENDERERS:
        return RENDERERS[name](benchmarks)
    lines = ["| agent | seeds | final eval >= 475 | mean | IQM [95% CI] | lowest | "
             "median env steps to the first eval >= 475 | source (commit, CPU, date) |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for label, names in TABLES[name]:
        files = [json.loads((benchmarks / n).read_text()) for n in names]
        lines.append(row(label, files, names))
    return "\n".join(lines) + "\n"


def fill_tables(text: str, benchmarks: Path) -> str:
    """``text`` with every marked table rendered anew."""
    def fill(match: re.Match) -> str:
        if match["name"] not in (*TABLES, *RENDERERS):
            raise ValueError(f"no result table named {match['name']!r}; known: "
                             f"{', '.join([*TABLES, *RENDERERS])}")
        return match.group(1) + table(match["name"], benchmarks) + match.group(3)
    return MARKED.sub(fill, text)
