"""A Hydra launcher that trains a seed multirun's jobs as seed stacks.

    python scripts/train.py -m seed=0,1,2,3,4,5,6,7,8,9 hydra/launcher=seed_stack

Jobs whose configs differ only in ``seed`` train together, as one program per stack
(``pixel_dqn.trainers.seed_stack``): ``stacks`` processes side by side, each with its share of
the cores and of the seeds. Every job still gets its own directory of the sweep (its
``.hydra/`` files, and the run's files as a single run leaves them), so the report and the tuning
tools read the sweep as any other; a job's return value is its final evaluation's mean.
Jobs of other configs (a sweep over arms and seeds) make a stack per arm.
"""


import ctypes
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from pixel_dqn.cli import exit_on_user_error
from pixel_dqn.config import load_config
from pixel_dqn.seed_groups import check_stackable

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # prctl(2)


@dataclass
class StackJob:
    """A job of the sweep: its composed config (YAML, without ``hydra``) and directory."""

    config_yaml: str
    run_dir: str
    job_return: JobReturn


class SeedStackLauncher(Launcher):
    """Groups a multirun's jobs by config without ``seed`` and trains each group as seed
    stacks: ``stacks`` processes at a time (0: one per core), at most ``max_seeds`` seeds in a
    stack (0: no limit; a group larger than that, or than its share of ``stacks``, is split)."""

    def __init__(self, stacks: int = 0, max_seeds: int = 0) -> None:
        super().__init__()
        self.stacks = stacks if stacks > 0 else (os.cpu_count() or 1)
        self.max_seeds = max_seeds
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
               ) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        jobs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = idx
                sweep_config.hydra.job.num = idx
            recorded: dict = {}
            # run_job makes the job's directory and .hydra/ files (and runs the callbacks); the
            # task it runs only records the job, which trains below with its stack
            job_return = run_job(
                hydra_context=self.hydra_context,
                task_function=lambda cfg, out=recorded, job=sweep_config: out.update(
                    yaml=OmegaConf.to_yaml(cfg, resolve=True),
                    dir=str(OmegaConf.select(job, "hydra.runtime.output_dir"))),
                config=sweep_config, job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir")
            if job_return.status == JobStatus.FAILED:
                return [job_return]  # a callback refused the job: its error says why
            jobs.append(StackJob(recorded["yaml"], recorded["dir"], job_return))
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        stacks = self.plan(jobs)
        with exit_on_user_error():  # a bad value or a job that cannot stack: one line, now
            for stack in stacks:
                check_stackable([load_config(OmegaConf.create(job.config_yaml))
                                 for job in stack])
        log.info(f"Training {len(jobs)} jobs as {len(stacks)} seed stacks "
                 f"({', '.join(str(len(s)) for s in stacks)} seeds), "
                 f"{min(self.stacks, len(stacks))} at a time")
        parallel = min(self.stacks, len(stacks))
        threads = max((os.cpu_count() or 1) // parallel, 1)
        with ProcessPoolExecutor(parallel, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(train_stack, [job.config_yaml for job in stack],
                                   [job.run_dir for job in stack], threads)
                       for stack in stacks]
            for stack, future in zip(stacks, futures, strict=True):
                means, error = future.result()
                for i, job in enumerate(stack):
                    if error is None:
                        job.job_return.status = JobStatus.COMPLETED
                        job.job_return.return_value = means[i]
                    else:
                        job.job_return.status = JobStatus.FAILED
                        job.job_return.return_value = RuntimeError(
                            f"the seed stack of {Path(job.run_dir).name} failed: {error}")
        return [job.job_return for job in jobs]

    def plan(self, jobs: list[StackJob]) -> list[list[StackJob]]:
        """The stacks: jobs grouped by config without ``seed``, each group split into parts
        of at most ``max_seeds``, and into at least ``stacks`` parts when it is the only one."""
        groups: dict[str, list[StackJob]] = {}
        for job in jobs:
            config = OmegaConf.create(job.config_yaml)
            config.pop("seed", None)
            groups.setdefault(OmegaConf.to_yaml(config), []).append(job)
        stacks = []
        for group in groups.values():
            parts = max(1, self.stacks // len(groups))
            if self.max_seeds:
                parts = max(parts, -(-len(group) // self.max_seeds))
            parts = min(parts, len(group))
            size = -(-len(group) // parts)
            stacks += [group[i:i + size] for i in range(0, len(group), size)]
        return stacks


def train_stack(config_yamls: list[str], run_dirs: list[str], threads: int
                ) -> tuple[list[float] | None, str | None]:
    """One seed stack, in a process of its own: the final means, or the error in one line
    (with its traceback first unless it is a user's mistake or a stop the run reported)."""
    _stop_with_parent()
    from pixel_dqn.cli import quiet_tensorflow_logs
    from pixel_dqn.envs.display import DisplayError, VirtualDisplay

    quiet_tensorflow_logs()
    from pixel_dqn.run_state import NonFiniteError, RunWriteError, TrainingInterrupted

    try:
        cfgs = [load_config(OmegaConf.create(text)) for text in config_yamls]
        for cfg in cfgs:  # a thread pool set to 0 gets this stack's share of the cores
            for pool in ("intra_op", "inter_op"):
                if getattr(cfg.threads, pool) == 0:
                    setattr(cfg.threads, pool, threads)
        display = VirtualDisplay()
        if cfgs[0].display.virtual:
            display.start()
        from pixel_dqn.trainers.seed_stack import train_seed_stack

        results = train_seed_stack(cfgs, [Path(d) for d in run_dirs])
        return [result.mean for result in results], None
    except (ValueError, DisplayError, NonFiniteError, RunWriteError,
            TrainingInterrupted) as error:  # config errors are ValueErrors
        message = f"{type(error).__name__}: {error}"
    except Exception as error:
        traceback.print_exc()
        message = f"{type(error).__name__}: {error}"
    print(f"error: {message}", file=sys.stderr, flush=True)
    return None, message


def _stop_with_parent() -> None:
    """Linux: SIGTERM this process when the launcher's process dies (killed, or its terminal
    closed), so that a stack checkpoints and stops instead of training on orphaned."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
