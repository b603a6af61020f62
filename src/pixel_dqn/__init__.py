"""pixel_dqn: DQN that learns CartPole-v1 from pixels or from the state."""

from pixel_dqn.runtime import prefer_onednn

prefer_onednn()  # before anything imports TensorFlow

__version__ = "0.1.0"
