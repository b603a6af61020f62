"""What every benchmark records next to its figures: the machine, the code, the command, the
date."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

UNCOMMITTED = " with uncommitted changes"


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
    return f"commit {commit}" + (UNCOMMITTED if dirty else " (clean tree)")


class DirtyCheckout(SystemExit):
    """A benchmark asked to measure uncommitted code without ``--allow-dirty``."""

    def __init__(self, message: str) -> None:
        super().__init__(f"error: {message}")


def add_provenance_options(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark script shares (``--allow-dirty``)."""
    parser.add_argument("--allow-dirty", action="store_true",
                        help="measure a checkout with uncommitted changes (refused by default; "
                             "the record then says so)")


def package_code_version() -> str:
    """``code_version`` of the checkout this package was imported from ("unknown (not a git
    checkout)" for an installed wheel): what a run records of the code that made it."""
    return code_version(Path(__file__).resolve().parents[2])


def invocation(script: str | None = None) -> str:
    """The command line that ran ``script`` (relative to the repository), shell-quoted; without
    ``script``, this process's own: ``python -m <module> ...`` for a module run with ``-m``."""
    if script is None:
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        script = f"-m {spec.name.removesuffix('.__main__')}" if spec else sys.argv[0]
    return shlex.join(["python", *script.split(" ", 1), *sys.argv[1:]])


@dataclass(frozen=True)
class Provenance:
    """Where a benchmark's figures come from: the command, the machine, the code, the date."""

    command: str
    machine: str
    code: str
    date: str

    @classmethod
    def of_this_run(cls, root: Path, script: str | None = None,
                    allow_dirty: bool = False) -> Provenance:
        """This process's command (see ``invocation``), machine, checkout at ``root`` and date.

        A checkout with uncommitted changes is refused (``DirtyCheckout``) unless
        ``allow_dirty``; then the record's ``code`` says "with uncommitted changes".
        """
        code = code_version(root)
        if code.endswith(UNCOMMITTED) and not allow_dirty:
            raise DirtyCheckout(
                f"{root} has uncommitted changes ({code}): a benchmark records the commit it "
                "measured, so commit first (or benchmark a clean worktree: git worktree add "
                "<dir> HEAD), or pass --allow-dirty and the record says so")
        return cls(invocation(script), machine_description(), code, today())

    def markdown(self) -> list[str]:
        """The lines a benchmark's markdown starts its list with."""
        return [f"- command: `{self.command}`", f"- machine: {self.machine}",
                f"- code: {self.code}", f"- date: {self.date}"]


def write_benchmark(out_dir: Path, name: str, markdown: str, record: dict,
                    provenance: Provenance | None = None) -> None:
    """Write ``<name>.md`` and ``<name>.json`` (the record, with its provenance first) under
    ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {**(asdict(provenance) if provenance else {}), **record}
    (out_dir / f"{name}.md").write_text(markdown)
    (out_dir / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")


def publish(out_dir: Path, name: str, markdown: str, record: dict,
            provenance: Provenance) -> None:
    """Write the benchmark's files (``write_benchmark``) and print its markdown: the end of
    every benchmark script."""
    write_benchmark(out_dir, name, markdown, record, provenance)
    print(markdown)


def python_output(root: Path, *args: str) -> str:
    """The standard output of ``python *args`` run in ``root`` by this interpreter (a measurement
    in a process of its own: thread pools and dtype policies start fresh)."""
    return subprocess.run([sys.executable, *args], check=True, cwd=root, capture_output=True,
                          text=True).stdout


def today() -> str:
    return dt.date.today().isoformat()
