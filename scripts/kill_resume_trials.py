"""Kill a training run with SIGKILL at random moments, rerun the same command, and check the
resumed run ends identical to an uninterrupted one.

    python scripts/kill_resume_trials.py --trials 10
    python scripts/kill_resume_trials.py --trials 10 --seed-stack 3   # a stack of seeds 0-2

Trains a short pixel run once without interruption (the reference), then for each trial starts
the same run in a fresh directory, kills it with ``kill -9`` at a random moment between the
run's first checkpoint and its end (mid-training, mid-checkpoint, mid-evaluation), and
reruns the same command (killing the rerun too, with ``--kills`` > 1) until it finishes. Each
finished run is compared with the reference: every metrics row (wall-clock columns aside), the
final evaluation and every weight. Writes ``benchmarks/kill_resume.md`` and ``.json``. Hydra
overrides given as extra arguments are appended to the run's command.

With ``--seed-stack N`` the run is a seed stack of seeds 0..N-1 in one process (a multirun with
``hydra/launcher=seed_stack hydra.launcher.stacks=1``); the kill takes its whole process group,
and every seed's run directory is compared with the reference's
(``benchmarks/kill_resume_seed_stack.md``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np

from pixel_dqn.benchmarking import Provenance, add_provenance_options, publish
from pixel_dqn.reproducibility import run_differences
from pixel_dqn.run_directory import train_command

ROOT = Path(__file__).resolve().parents[1]
SHORT_PIXEL_RUN = (
    "total_steps=3000", "trainer.learning_starts=500", "trainer.buffer_size=5000",
    "trainer.exploration_steps=2000", "trainer.target_update_interval=500",
    "checkpoint.every_steps=500", "eval.every_steps=1000", "eval.episodes=3",
    "eval.final_episodes=5", "progress_interval_s=1000",
)
RESUMED = re.compile(r"resuming from .* \(env step (\d+)\)")
STACK = 0  # seeds in a seed stack (0: a single run), set by --seed-stack


def command(run_dir: Path, overrides: list[str]) -> list[str]:
    if not STACK:
        return train_command(*overrides, run_dir=run_dir)
    return train_command(f"seed={','.join(map(str, range(STACK)))}",
                         "hydra/launcher=seed_stack", "hydra.launcher.stacks=1", *overrides,
                         f"hydra.sweep.dir={run_dir}", multirun=True)


def checkpointed(run_dir: Path) -> bool:
    """Whether the run (every seed of a stack) has a complete checkpoint."""
    dirs = [run_dir] if not STACK else list(run_dir.glob("*-seed*"))
    return bool(dirs) and all(any((d / "checkpoints").glob("step-*/MANIFEST.json"))
                              for d in dirs)


def differences_from(reference: Path, run_dir: Path) -> list[str]:
    """What differs from the reference (per seed's run directory for a stack)."""
    if not STACK:
        return run_differences(reference, run_dir)
    return [f"{job.name}: {difference}" for job in sorted(reference.glob("*-seed*"))
            for difference in run_differences(job, run_dir / job.name)]


def run_to_completion(run_dir: Path, overrides: list[str]) -> tuple[float, float | None, str]:
    """Run to the end; return its seconds, when its first checkpoint appeared, its stdout."""
    start = time.perf_counter()
    process = subprocess.Popen(command(run_dir, overrides), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    first_checkpoint = None
    while process.poll() is None and first_checkpoint is None:
        if checkpointed(run_dir):
            first_checkpoint = time.perf_counter() - start
        time.sleep(0.05)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"run in {run_dir} failed ({process.returncode}): {stderr[-2000:]}")
    return time.perf_counter() - start, first_checkpoint, stdout


def kill_after_first_checkpoint(run_dir: Path, overrides: list[str], seconds: float) -> bool:
    """Start the run, SIGKILL it ``seconds`` after its first checkpoint; False if it ended."""
    # its own process group: a kill takes a stack's training process with its launcher
    process = subprocess.Popen(command(run_dir, overrides), cwd=ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not checkpointed(run_dir):
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    try:
        process.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--kills", type=int, default=1, help="kills per trial before the rerun")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "outputs" / "kill_resume")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--seed-stack", type=int, default=0, metavar="N",
                        help="train seeds 0..N-1 as one seed stack (default: a single run)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for the run")
    add_provenance_options(parser)
    args = parser.parse_args()
    global STACK
    STACK = args.seed_stack
    name = "kill_resume_seed_stack" if STACK else "kill_resume"
    overrides = [*SHORT_PIXEL_RUN, *args.overrides]
    shutil.rmtree(args.work_dir, ignore_errors=True)
    reference = args.work_dir / "reference"
    reference_seconds, first_checkpoint, _ = run_to_completion(reference, overrides)
    if first_checkpoint is None:
        raise SystemExit("the reference run wrote no checkpoint before its end: lengthen it")
    print(f"reference run: {reference_seconds:.1f} s, first checkpoint after "
          f"{first_checkpoint:.1f} s", flush=True)
    rng = np.random.default_rng(args.seed)
    trials = []
    for trial in range(args.trials):
        run_dir = args.work_dir / f"trial{trial}"
        kills: list[float] = []
        while len(kills) < args.kills:
            # anywhere from the first checkpoint to the final evaluation: a resume each time
            moment = float(rng.uniform(0.0, reference_seconds - first_checkpoint))
            if kill_after_first_checkpoint(run_dir, overrides, moment):
                kills.append(round(moment, 2))
            else:  # it finished first (runs vary in speed): start the trial again
                shutil.rmtree(run_dir)
        _, _, stdout = run_to_completion(run_dir, overrides)
        resumed = [int(step) for step in RESUMED.findall(stdout)]
        differences = differences_from(reference, run_dir)
        trials.append({"trial": trial, "killed_s_after_first_checkpoint": kills,
                       "resumed_from_step": ", ".join(map(str, resumed)) or None,
                       "identical": not differences, "differences": differences})
        print(f"trial {trial}: killed {kills} s after its first checkpoint, resumed from step "
              f"{trials[-1]['resumed_from_step']}: "
              f"{differences or 'identical'}", flush=True)
    provenance = Provenance.of_this_run(ROOT, "scripts/kill_resume_trials.py", args.allow_dirty)
    markdown = to_markdown(trials, overrides, reference_seconds, first_checkpoint, provenance)
    publish(args.out, name, markdown, {"seed_stack": STACK,
        "overrides": overrides, "reference_seconds": reference_seconds,
        "first_checkpoint_seconds": first_checkpoint, "trials": trials,
    }, provenance)
    identical = sum(t["identical"] for t in trials)
    print(f"{identical} of {len(trials)} killed-and-resumed runs identical to the reference")
    if identical != len(trials):
        raise SystemExit(1)


def to_markdown(trials: list[dict], overrides: list[str], reference_seconds: float,
                first_checkpoint: float, provenance: Provenance) -> str:
    identical = sum(t["identical"] for t in trials)
    run = " ".join(command(Path("<dir>"), overrides)[3:])
    lines = [
        "# Kill -9 and resume" + (f": a seed stack of {STACK} seeds" if STACK else ""),
        "",
        *provenance.markdown(),
        f"- run: `python scripts/train.py {run}` "
        f"(uninterrupted: {reference_seconds:.1f} s including start-up; first checkpoint after "
        f"{first_checkpoint:.1f} s; each kill comes a uniform random time after the killed "
        f"run's own first checkpoint, up to the difference of the two)",
        f"- **{identical} of {len(trials)}** runs killed with SIGKILL and rerun with the same "
        "command ended identical to the uninterrupted run (every metrics row except its "
        "wall-clock columns, the final evaluation's returns, every model weight)",
        "",
        "| trial | killed (s after its first checkpoint) | resumed from env step"
        + (" (per seed)" if STACK else "") + " | identical |",
        "|---:|---|---:|---|",
    ]
    for t in trials:
        resumed = t["resumed_from_step"] if t["resumed_from_step"] is not None else "start"
        kills = ", ".join(map(str, t["killed_s_after_first_checkpoint"])) or "-"
        lines.append(f"| {t['trial']} | {kills} | "
                     f"{resumed} | {'yes' if t['identical'] else '; '.join(t['differences'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
