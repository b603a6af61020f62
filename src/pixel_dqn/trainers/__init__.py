"""Training loops, one per trainer config: DQN and REINFORCE."""
