"""Train an agent: ``python -m pixel_dqn.train [group=option ...] [key=value ...]`` (also
``pixel-dqn-train``, or ``python scripts/train.py`` in a checkout).

The Hydra entry point: the composed config becomes typed dataclasses here, once
(``pixel_dqn.config.load_config``, which checks it), and all the work is in
``pixel_dqn.trainers.train``. In a multirun a failed job raises instead of exiting, so Hydra
records it and the other jobs still run.
"""

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import RunMode
from omegaconf import DictConfig

from hydra_plugins.pixel_dqn_seed_stack.launcher import SeedStackLauncher
from pixel_dqn.cli import (
    ReportedExit,
    check_writable,
    exit_on_user_error,
    quiet_tensorflow_logs,
)
from pixel_dqn.config import CONF_DIR, Config, load_config, register_configs
from pixel_dqn.envs.display import VirtualDisplay

quiet_tensorflow_logs()
register_configs()
# Hydra finds launchers by scanning the hydra_plugins package, which misses this package's own
# under an editable install (pip install -e): register it by hand (Hydra's public API for it)
Plugins.instance().register(SeedStackLauncher)


class JobFailed(RuntimeError):
    """One job of a multirun failed (its one-line reason is in the message and its log)."""


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        with exit_on_user_error():
            # before TensorFlow loads: a bad value, a read-only directory or a missing Xvfb
            # fails in a second, in one line
            config = load_config(cfg)
            check_writable(run_dir)
            display = VirtualDisplay()
            if config.display.virtual:
                display.start()
            share_cores_between_parallel_jobs(config, hydra_cfg.launcher)
            return _train(config, run_dir)
    except ReportedExit as stop:  # not submitit's requeue exit, which must reach submitit
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise JobFailed(f"job {hydra_cfg.job.num} ({run_dir.name}) failed with exit "
                            f"status {stop.code}") from None
        raise


def _train(cfg: Config, run_dir: Path) -> float:
    # TensorFlow loads here, past the checks
    from pixel_dqn.trainers import NonFiniteError, RunWriteError, TrainingInterrupted, train

    try:
        return train(cfg, run_dir).mean
    except TrainingInterrupted as stop:
        print(f"stopped: {stop}", file=sys.stderr, flush=True)
        raise ReportedExit(128 + stop.signum) from None
    except NonFiniteError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise ReportedExit(3) from None
    except RunWriteError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise ReportedExit(4) from None


def share_cores_between_parallel_jobs(cfg: Config, launcher: DictConfig) -> None:
    """Under the joblib launcher, give each job its share of the cores (TensorFlow's pools are
    sized before it initialises): a thread pool set to 0 gets the share, others stay as set."""
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return
    cores = os.cpu_count() or 1
    n_jobs = int(launcher.get("n_jobs") or -1)
    parallel = cores if n_jobs < 0 else min(n_jobs, cores)  # joblib: -1 means one per core
    for pool in ("intra_op", "inter_op"):
        if getattr(cfg.threads, pool) == 0:
            setattr(cfg.threads, pool, max(cores // parallel, 1))


def run() -> None:
    """The console script ``pixel-dqn-train`` (Hydra reads the command line)."""
    main()


if __name__ == "__main__":
    main()
