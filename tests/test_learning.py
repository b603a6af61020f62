"""A short real training run: state DQN must clearly beat a random policy (~22 steps)."""

from conftest import STATE

from pixel_dqn.training import train

LEARNING_OVERRIDES = (
    *STATE,
    "total_steps=40000",
    "eval.every_steps=5000",
    "eval.episodes=5",
    "eval.final_episodes=20",
    "seed=0",
)


def test_state_dqn_learns_within_a_small_budget(compose_config, tmp_path):
    result = train(compose_config(*LEARNING_OVERRIDES), tmp_path)
    assert result.mean >= 150, f"final greedy eval mean {result.mean:.1f} < 150"
