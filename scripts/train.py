"""Train an agent: ``python scripts/train.py [group=option ...] [key=value ...]``.

Thin Hydra entry point; all the work is in ``pixel_dqn.training.train``.
"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pixel_dqn.cli import check_writable, exit_on_user_error, quiet_tensorflow_logs
from pixel_dqn.config import register_configs, validate

quiet_tensorflow_logs()
register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with exit_on_user_error():
        validate(cfg)  # before TensorFlow loads: a bad value fails in a second, in one line
        check_writable(run_dir)
        from pixel_dqn.training import NonFiniteError, TrainingInterrupted, train

        try:
            return train(cfg, run_dir).mean
        except TrainingInterrupted as stop:
            print(f"stopped: {stop}", file=sys.stderr, flush=True)
            raise SystemExit(128 + stop.signum) from None
        except NonFiniteError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            raise SystemExit(3) from None


if __name__ == "__main__":
    main()
