"""Train an agent: ``python scripts/train.py [group=option ...] [key=value ...]``.

Thin Hydra entry point; all the work is in ``pixel_dqn.training.train``.
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pixel_dqn.cli import exit_on_user_error, quiet_tensorflow_logs
from pixel_dqn.config import register_configs, validate

quiet_tensorflow_logs()
register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    with exit_on_user_error():
        validate(cfg)  # before TensorFlow loads: a bad value fails in a second, in one line
        from pixel_dqn.training import train

        return train(cfg, Path(HydraConfig.get().runtime.output_dir)).mean


if __name__ == "__main__":
    main()
