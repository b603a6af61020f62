"""How much faster one batched REINFORCE gradient is than the notebook's tape per step.

    python scripts/benchmark_reinforce.py [--episodes 10] [--repeats 5]

Plays ``--episodes`` episodes of CartPole with an untrained policy network (the notebook's
Dense(5, elu) -> Dense(1, sigmoid)), then computes the update's gradient both ways on the same
steps: (a) the notebook's, a ``GradientTape`` per step as the episode is played and the
advantage-weighted mean of the per-step gradients; (b) ours, one compiled forward and backward
pass over all steps. Checks the two agree, and writes ``benchmarks/reinforce_gradient.md``/.json.
Both timings come from the same process, interleaved.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pixel_dqn.agents.reinforce import ReinforceAgent, discount_and_normalize_rewards
from pixel_dqn.benchmarking import Provenance, add_provenance_options, publish
from pixel_dqn.config import MLPConfig, StateEnvConfig
from pixel_dqn.envs import make_env
from pixel_dqn.networks import build_mlp

ROOT = Path(__file__).resolve().parents[1]


def per_step_tape(model: keras.Model, obs: np.ndarray, actions: np.ndarray,
                  advantages: np.ndarray) -> list[tf.Tensor]:
    """The notebook's gradient: one eager tape per step, then the weighted mean."""
    grads_per_step = []
    for o, a in zip(obs, actions, strict=True):
        with tf.GradientTape() as tape:
            left = model(o[np.newaxis])
            loss = tf.reduce_mean(keras.losses.binary_crossentropy(
                tf.constant([[1.0]]) - float(a), left))
        grads_per_step.append(tape.gradient(loss, model.trainable_variables))
    return [tf.reduce_mean([adv * g[i] for adv, g in zip(advantages, grads_per_step,
                                                          strict=True)], axis=0)
            for i in range(len(model.trainable_variables))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    add_provenance_options(parser)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    # the seed notebook's policy network (model=policy_mlp) and its 200-step episodes
    policy = MLPConfig(hidden_sizes=[5], activation="elu", layer_norm=False)
    agent = ReinforceAgent(partial(build_mlp, policy, (4,), 2, head="policy"), 0.01)
    envs = make_env(StateEnvConfig(num_envs=args.episodes, max_episode_steps=200))
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=list(range(args.episodes)))
    steps, running = [], np.ones(args.episodes, bool)
    while running.any():
        actions = agent.act(obs, rng)
        next_obs, rewards, terminated, truncated, _ = envs.step(actions)
        steps += [(e, obs[e], actions[e], rewards[e]) for e in np.flatnonzero(running)]
        running &= ~(terminated | truncated)
        obs = next_obs
    steps.sort(key=lambda s: s[0])  # stable: episode after episode
    env_ids = np.array([s[0] for s in steps])
    batch_obs = np.stack([s[1] for s in steps]).astype(np.float32)
    batch_actions = np.array([s[2] for s in steps], np.float32)
    rewards = np.array([s[3] for s in steps])
    episodes = [rewards[env_ids == e] for e in range(args.episodes)]
    advantages = np.concatenate(discount_and_normalize_rewards(episodes, 0.95)).astype(np.float32)
    tensors = [tf.constant(batch_obs), tf.constant(batch_actions), tf.constant(advantages)]
    batched_fn = tf.function(agent.gradients)
    batched, _ = batched_fn(*tensors)  # trace once
    reference = per_step_tape(agent.policy, batch_obs, batch_actions, advantages)
    max_error = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(batched, reference,
                                                                          strict=True))
    tape_s, batched_s = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        per_step_tape(agent.policy, batch_obs, batch_actions, advantages)
        tape_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(10):
            [g.numpy() for g in batched_fn(*tensors)[0]]
        batched_s.append((time.perf_counter() - start) / 10)
    tape_ms, batched_ms = 1e3 * np.median(tape_s), 1e3 * np.median(batched_s)
    provenance = Provenance.of_this_run(ROOT, "scripts/benchmark_reinforce.py", args.allow_dirty)
    record = {"episodes": args.episodes,
              "steps": len(steps), "per_step_tape_ms": tape_ms, "batched_ms": batched_ms,
              "speedup": tape_ms / batched_ms, "max_abs_gradient_difference": max_error}
    markdown = "\n".join([
        "# REINFORCE: batched gradient vs a tape per step",
        "",
        *provenance.markdown(),
        f"- one update's gradient over {args.episodes} episodes = {len(steps)} steps of an "
        f"untrained policy (median of {args.repeats} repeats, interleaved in one process)",
        "",
        "| method | ms per update | speed-up |",
        "|---|---:|---:|",
        f"| the notebook's tape per step (eager) | {tape_ms:.1f} | 1.0 |",
        f"| one batched pass (compiled) | {batched_ms:.2f} | {tape_ms / batched_ms:.0f}x |",
        "",
        f"The two gradients agree to {max_error:.1e} (largest absolute difference).",
        "",
    ])
    publish(args.out, "reinforce_gradient", markdown, record, provenance)


if __name__ == "__main__":
    main()
