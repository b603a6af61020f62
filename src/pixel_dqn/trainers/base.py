"""``Trainer``: one run's training from its first step to eval.json; each algorithm subclasses it.

A trainer subclass writes its ``loop`` (and what it checkpoints); the lifecycle is here, once:
start or resume, checkpoints (periodic, at the end and on SIGTERM/SIGINT), periodic and final
evaluations, the non-finite guard, and the files a finished run leaves (model.keras, eval.json,
timing.json). The resources it uses (envs, checkpoints, metrics) belong to the ``Run``.
"""

from __future__ import annotations

import errno
import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pixel_dqn.benchmarking import machine_description, package_code_version
from pixel_dqn.checkpoint import Checkpoint
from pixel_dqn.config import Config, EnvConfig
from pixel_dqn.envs.snapshot import snapshot_envs
from pixel_dqn.evaluation import EvalResult, Policy, run_episodes
from pixel_dqn.metrics import Progress
from pixel_dqn.run import Run
from pixel_dqn.run_directory import EVAL_FILE, MODEL_FILE, TIMING_FILE
from pixel_dqn.run_state import LoopState, NonFiniteError, RunWriteError, TrainingInterrupted
from pixel_dqn.stop_signals import StopSignals
from pixel_dqn.timing import PhaseTimer

# a write to the run directory failed for want of room: say what survived, in one line
RUN_DIR_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


class Trainer:
    """One training run: envs, an agent and the loop over them; subclasses write ``loop``."""

    def __init__(self, cfg: Config, run: Run) -> None:
        self.cfg, self.run = cfg, run
        self.hparams = cfg.trainer  # the trainer's own config (a DQNConfig, ...)
        self.run_dir, self.envs, self.seeds = run.dir, run.envs, run.seeds
        self.store, self.writer = run.store, run.writer
        self.rng = np.random.default_rng(run.seeds.exploration)  # the agent's own draws
        self.timer = PhaseTimer()
        self._state: LoopState | None = None  # set by start or restore
        # a seed of a stack shows no progress of its own (the stack shows all its seeds')
        self.progress = Progress(self.progress_total(), cfg.progress_interval_s,
                                 unit=self.progress_units, stream=self.progress_stream())
        self.saved_step: int | None = None  # env step of the newest checkpoint written/loaded
        self._clock_start = 0.0

    @property
    def state(self) -> LoopState:
        """The loop's state: set by ``start`` (a fresh run) or ``restore`` (a resumed one)."""
        if self._state is None:
            raise RuntimeError("the run has no loop state yet: call start() or restore()")
        return self._state

    @state.setter
    def state(self, state: LoopState) -> None:
        self._state = state

    # -- what a trainer provides -------------------------------------------------------------
    progress_units: str = "step"

    def progress_total(self) -> int:
        """The progress bar's length, in ``progress_units``."""
        raise NotImplementedError

    @staticmethod
    def env_config(cfg: Config) -> EnvConfig:
        """The env config this trainer plays, training and evaluation (``cfg.env`` as is)."""
        return cfg.env

    def start(self) -> None:
        """Reset the envs and set ``self.state`` for a fresh run."""
        raise NotImplementedError

    def loop(self, stop: StopSignals) -> None:
        """Train until the budget is spent; call ``after_iteration`` at the end of each pass."""
        raise NotImplementedError

    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def network(self):
        """The Keras model saved as ``model.keras`` at the end."""
        raise NotImplementedError

    def checkpoint_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """The trainer's own state to checkpoint: large arrays (weights, optimizer, replay) and
        small picklable values (replay counters...), beyond the loop state and the envs."""
        raise NotImplementedError

    def load_checkpoint_state(self, arrays: dict[str, np.ndarray], extra: dict) -> None:
        raise NotImplementedError

    def timing_extras(self) -> dict:
        return {}

    def progress_stream(self):
        """Where progress is shown (None: standard output)."""
        return None

    def also_graded(self) -> dict[str, Policy]:
        """Other greedy policies the final evaluation grades on the same episodes, by the
        eval.json key they are written under (e.g. the online network beside its average)."""
        return {}

    # -- shared ------------------------------------------------------------------------------
    def train(self) -> EvalResult:
        """Train from the start (or from the run's checkpoint) to the final evaluation, then
        write model.keras, eval.json and timing.json.

        A full disk stops it with a ``RunWriteError`` naming the last complete checkpoint.
        """
        checkpoint = self.run.checkpoint
        try:
            if checkpoint is None:
                self.start()
            else:
                self.restore(checkpoint)
                print(f"resuming from {checkpoint.path} (env step {checkpoint.step})", flush=True)
            self.begin_session()
            with StopSignals() as stop:
                self.loop(stop)
            return self.finish()
        except OSError as error:
            if error.errno not in RUN_DIR_FULL:
                raise
            step = 0 if self._state is None else self._state.step
            raise RunWriteError(self.run_dir, step, error, self.store.paths()) from error
        finally:
            self.progress.close()

    def finish(self) -> EvalResult:
        """The last checkpoint, the final evaluation (of the kept network with
        ``eval.keep_best``), then model.keras, eval.json and timing.json."""
        cfg, s = self.cfg, self.state
        timing = self.timing()
        if cfg.checkpoint.enabled and self.saved_step != s.step:
            self.save_checkpoint()  # the end of training (unless resumed from it)
        final = self.evaluate(cfg.eval.final_episodes, index=-1)
        final_env_steps = final.env_steps
        record = {}
        for key, policy in self.also_graded().items():
            other = self.evaluate(cfg.eval.final_episodes, index=-1, policy=policy)
            final_env_steps += other.env_steps
            record[key] = other.summary()
            print(f"{key.replace('_', ' ')}'s final eval: {format_eval(other.summary())}",
                  flush=True)
        if cfg.eval.keep_best and s.best is not None:
            best_eval, best_step, best_weights = s.best
            record["last_network"] = final.summary()
            print(f"the last network's final eval: {format_eval(final.summary())}; below: the "
                  f"network kept at env step {best_step} (periodic eval {best_eval:.1f})",
                  flush=True)
            self.network().set_weights(best_weights)
            final = self.evaluate(cfg.eval.final_episodes, index=-1)
            final_env_steps += final.env_steps
            record["kept_from"] = {"env_step": best_step, "periodic_eval": best_eval}
        self.network().save(self.run_dir / MODEL_FILE)
        # the interaction evaluation cost beside training's: selection (keep_best) is not free
        record["evaluation_env_steps"] = {"training": s.step, "periodic": s.eval_env_steps,
                                          "final": final_env_steps}
        record = {**final.to_dict(), **record}
        (self.run_dir / EVAL_FILE).write_text(json.dumps(record, indent=2) + "\n")
        (self.run_dir / TIMING_FILE).write_text(json.dumps(timing, indent=2) + "\n")
        print(f"final greedy eval over {cfg.eval.final_episodes} episodes: "
              f"{format_eval(final.summary())} -> {self.run_dir}", flush=True)
        return final

    def elapsed(self) -> float:
        """Wall-clock seconds of training so far, earlier sessions included."""
        return time.perf_counter() - self._clock_start

    def begin_session(self) -> None:
        self._clock_start = time.perf_counter() - self.state.seconds

    def evaluate(self, episodes: int, index: int, policy: Policy | None = None) -> EvalResult:
        """Greedy episodes on fresh envs seeded from the run's eval seed and ``index``."""
        return run_episodes(policy or self.greedy_actions, self.run.make_envs, episodes,
                            seed=self.seeds.eval + index)

    def evaluate_if_due(self) -> None:
        """The periodic greedy evaluation, written as an ``eval`` row."""
        s = self.state
        if s.step < s.next_eval:
            return
        while s.next_eval <= s.step:
            s.next_eval += self.cfg.eval.every_steps
        with self.timer.phase("evaluation"):
            result = self.evaluate(self.cfg.eval.episodes, s.evals)
        s.evals += 1
        s.eval_env_steps += result.env_steps
        summary = result.summary()
        elapsed = self.elapsed()
        self.writer.write({
            "kind": "eval", "env_step": s.step, "episode": s.episodes,
            "return": summary["mean"], "length": summary["mean_length"], **s.last,
            "steps_per_s": s.step / elapsed, "wall_time_s": elapsed,
            "return_std": summary["std"], "return_min": summary["min"],
            "return_max": summary["max"],
        })
        s.last_eval = summary["mean"]
        if self.cfg.eval.keep_best and (s.best is None or summary["mean"] >= s.best[0]):
            s.best = (summary["mean"], s.step, self.network().get_weights())

    def write_episode(self, episode_return: float, length: int, **columns: Any) -> None:
        """A ``train`` row for an episode that just ended."""
        s = self.state
        s.episodes += 1
        s.recent_returns.append(episode_return)
        elapsed = self.elapsed()
        self.writer.write({
            "kind": "train", "env_step": s.step, "episode": s.episodes,
            "return": episode_return, "length": length, **columns, **s.last,
            "steps_per_s": s.step / elapsed, "wall_time_s": elapsed,
        })

    def show_progress(self, position: int, session_rate: float, final: bool, **fields: str):
        if self.progress.due() or final:
            s = self.state
            self.progress.show(position, {
                "steps/s": f"{session_rate:.0f}", **fields,
                "return": f"{np.mean(s.recent_returns):.1f}" if s.recent_returns else "-",
                "eval": "-" if s.last_eval is None else f"{s.last_eval:.1f}",
            })

    def check_finite(self, values: dict[str, float], *arrays: np.ndarray) -> None:
        """Stop with one line naming the env step if a loss or output is NaN or infinite."""
        if all(math.isfinite(v) for v in values.values() if v is not None) and all(
                np.isfinite(a).all() for a in arrays):
            return
        kept = self.store.paths()
        where = f"the last good checkpoint is {kept[-1]}" if kept else "no checkpoint was written"
        shown = ", ".join(f"{k} {v}" for k, v in values.items())
        raise NonFiniteError(
            f"non-finite values at env step {self.state.step} ({shown}); training stopped, "
            f"{where}; try a lower trainer.learning_rate"
        )

    def after_iteration(self, stop: StopSignals) -> None:
        """Checkpoint when one is due or a stop signal came; then stop if it did."""
        s = self.state
        path = self.checkpoint_if_due(stop)
        if stop.signum is not None:
            stop.hand_on(s.step)  # a launcher's own handler (submitit's requeue) exits here
            raise TrainingInterrupted(stop.signum, s.step, path)

    def checkpoint_if_due(self, stop: StopSignals) -> Path | None:
        """Checkpoint if one is due or a stop signal came; the path written, if any."""
        s, cfg = self.state, self.cfg
        due = s.next_checkpoint is not None and s.step >= s.next_checkpoint
        if not cfg.checkpoint.enabled or not (due or stop.signum is not None):
            return None
        while s.next_checkpoint is not None and s.next_checkpoint <= s.step:
            s.next_checkpoint += cfg.checkpoint.every_steps
        with self.timer.phase("checkpoint"):
            return self.save_checkpoint()

    def timing(self) -> dict:
        s = self.state
        seconds = self.elapsed()
        return {"env_steps": s.step, "seconds": seconds, "steps_per_s": s.step / seconds,
                "phases": self.timer.summary(s.step, seconds), **self.timing_extras(),
                # provenance for reports: the code and machine that finished the run
                "code": package_code_version(), "machine": machine_description()}

    def save_checkpoint(self) -> Path:
        """Checkpoint everything the loop needs to continue exactly from this point."""
        s = self.state
        s.seconds = self.elapsed()
        s.phase_seconds = dict(self.timer.seconds)
        state = {
            "config": asdict(self.cfg),
            "loop": s,
            "agent_rng": self.rng.bit_generator.state,
            "envs": snapshot_envs(self.envs),
            "metrics": self.writer.position(s.step),
        }
        arrays, state["extra"] = self.checkpoint_state()
        path = self.store.save(s.step, arrays, state)
        self.saved_step = s.step
        return path

    def restore(self, checkpoint: Checkpoint) -> None:
        """Load a checkpoint into the freshly built objects (the run opened the writer at its
        metrics position and restored the envs)."""
        state = checkpoint.state
        self.load_checkpoint_state(checkpoint.arrays, state["extra"])
        self.rng.bit_generator.state = state["agent_rng"]
        self.state = state["loop"]
        self.timer.seconds.update(self.state.phase_seconds)
        self.saved_step = checkpoint.step


def format_eval(summary: dict) -> str:
    """An evaluation summary in one line: mean +- std (min, max); how its episodes ended."""
    endings = ", ".join(f"{count} {ending.replace('_', ' ')}"
                        for ending, count in summary["ended_by"].items() if count)
    return (f"mean {summary['mean']:.1f} +- {summary['std']:.1f} "
            f"(min {summary['min']:.0f}, max {summary['max']:.0f})"
            + (f"; ended by: {endings}" if endings else ""))
