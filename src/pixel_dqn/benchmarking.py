"""What every benchmark records next to its figures: the machine, the code, the command, the
date."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def machine_description() -> str:
    """CPU model and count, OS, Python and TensorFlow versions (without importing TF)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        tensorflow = f"TensorFlow {metadata.version('tensorflow')}"
    except metadata.PackageNotFoundError:
        tensorflow = "no TensorFlow"
    return (f"{os.cpu_count()} CPU cores ({cpu}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, {tensorflow}, no GPU")


def code_version(root: Path) -> str:
    """The commit the checkout at ``root`` is on, and whether its tracked files differ from it
    (a benchmark of uncommitted code measures something no commit holds). Changes under
    ``benchmarks/`` do not count: they are the figures benchmarks write, not code."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short=10", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                    ":(exclude)benchmarks")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"commit {commit}" + (" with uncommitted changes" if dirty else " (clean tree)")


def invocation(script: str) -> str:
    """The command line that ran ``script`` (relative to the repository), shell-quoted."""
    return shlex.join(["python", script, *sys.argv[1:]])


def write_benchmark(out_dir: Path, name: str, markdown: str, record: dict) -> None:
    """Write ``<name>.md`` and ``<name>.json`` (record plus machine, date) under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text(markdown)
    (out_dir / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")


def today() -> str:
    return dt.date.today().isoformat()
