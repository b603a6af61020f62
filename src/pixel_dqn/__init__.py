"""pixel_dqn: DQN that learns CartPole-v1 from pixels or from the state."""

__version__ = "0.1.0"
