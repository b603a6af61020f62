"""Environment construction: the factory is the only place ``gym.make`` is called."""

from pixel_dqn.envs.factory import (
    make_env,
    make_envs,
    make_pixel_env,
    make_single_env,
    make_single_pixel_env,
)

__all__ = ["make_env", "make_envs", "make_pixel_env", "make_single_env", "make_single_pixel_env"]
