"""Environment speed benchmark: what each stage of the pixel state costs, per env step.

    python scripts/benchmark.py                 # full run, writes benchmarks/pixel_env.{md,json}
    python scripts/benchmark.py --quick --out /tmp/bench   # a smoke run (tests use it)

Stages: the raw physics step (``CartPoleEnv.step``), the same through ``gym.make``'s wrappers,
gymnasium's pygame ``render()``, crop + gray + resize of that frame, the fast renderer (drawing
only, and with its memo as in a run), the whole pixel wrapper step for each renderer and
observation mode, and vector envs of N pixel envs. Every stage replays the same random-action
trajectory, resetting when an episode ends (resets are part of the cost). Each figure is the
median of ``--repeats`` repeats; every repeat of a wrapper or vector stage starts from fresh
envs, so the fast renderer's memo starts empty, as in a new training run. Ratios are to the raw
physics step measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pixel_dqn.benchmarking import Provenance, add_provenance_options, publish
from pixel_dqn.config import OBS_MODES, PixelEnvConfig
from pixel_dqn.envs import make_pixel_env, make_single_env, make_single_pixel_env
from pixel_dqn.envs.screen import CropWindow, FastPatchRenderer, crop_frame

PIXELS = PixelEnvConfig()  # the default pixel env's settings

ROOT = Path(__file__).resolve().parents[1]

Stage = Callable[[], tuple[Callable[[int], None], Callable[[], None]]]
"""Builds fresh state for one repeat: returns ``step(i)`` (the work of env step ``i``) and
``close()``."""


def _no_close() -> None:
    return None


def stateless(step: Callable[[int], None]) -> Stage:
    return lambda: (step, _no_close)


def median_us(stage: Stage, steps: int, repeats: int) -> float:
    """Median over ``repeats`` of the microseconds per step of ``steps`` calls of a fresh stage."""
    samples = []
    for _ in range(repeats):
        step, close = stage()
        start = time.perf_counter()
        for i in range(steps):
            step(i)
        samples.append(1e6 * (time.perf_counter() - start) / steps)
        close()
    return statistics.median(samples)


def plain_env():
    """The env under the pixel wrapper: CartPole with its own time limit, no rendering."""
    return make_single_env(PIXELS.id, None, None)


def trajectory(actions: np.ndarray, seed: int) -> np.ndarray:
    """The CartPole states visited by ``actions`` (resetting with ``seed + k`` on episode k)."""
    env = make_single_env(PIXELS.id, None, None).unwrapped
    episode = 0
    env.reset(seed=seed)
    states = []
    for action in actions:
        states.append(np.array(env.state, np.float64))
        _, _, terminated, _, _ = env.step(int(action))
        if terminated:
            episode += 1
            env.reset(seed=seed + episode)
    return np.array(states)


def env_stage(make: Callable[[], object], actions: np.ndarray, seed: int,
              unwrapped: bool = False) -> Stage:
    """Step a single env with ``actions``, resetting when an episode ends."""

    def build() -> tuple[Callable[[int], None], Callable[[], None]]:
        env = make()
        stepper = env.unwrapped if unwrapped else env
        env.reset(seed=seed)

        def step(i: int) -> None:
            _, _, terminated, truncated, _ = stepper.step(int(actions[i]))
            if terminated or truncated:
                stepper.reset()

        return step, env.close

    return build


def vector_stage(num_envs: int, mode: str, actions: np.ndarray, seed: int, **pixel_kwargs) -> Stage:
    """Step a pixel vector env; ``step(i)`` moves all ``num_envs`` envs once (autoreset inside)."""

    def build() -> tuple[Callable[[int], None], Callable[[], None]]:
        envs = make_pixel_env(PixelEnvConfig(num_envs=num_envs, vector_mode=mode, **pixel_kwargs))
        envs.reset(seed=seed)
        batch = np.resize(actions, (len(actions), num_envs))

        def step(i: int) -> None:
            envs.step(batch[i])

        return step, envs.close

    return build


def run(steps: int, slow_steps: int, repeats: int, num_envs: list[int], seed: int,
        follow: float) -> list[dict]:
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 2, size=max(steps, slow_steps))
    states = trajectory(actions, seed)
    frames_env = make_single_env(PIXELS.id, None, "rgb_array").unwrapped
    frames_env.reset(seed=seed)
    crop = CropWindow.around_cart(PixelEnvConfig(follow=follow))
    rows: list[dict] = []

    def add(name: str, what: str, us: float, per: int = 1) -> None:
        rows.append({"stage": name, "what": what, "us_per_env_step": us / per})
        print(f"{name:<34} {us / per:10.1f} us/env step", flush=True)

    def render_frame(i: int) -> None:
        frames_env.state = states[i]
        frames_env.render()

    frame = frames_env.render()

    add("physics step", "CartPoleEnv.step, unwrapped",
        median_us(env_stage(plain_env, actions, seed, unwrapped=True), steps, repeats))
    add("physics step via gym.make", "with TimeLimit, OrderEnforcing, PassiveEnvChecker",
        median_us(env_stage(plain_env, actions, seed), steps, repeats))
    add("pygame render", "gymnasium's render() of the 600x400 frame",
        median_us(stateless(render_frame), slow_steps, repeats))
    add("crop + gray + resize", "crop_frame on a rendered frame",
        median_us(stateless(lambda i: crop_frame(frame, states[i][0], crop, gray=True)), steps,
                  repeats))
    drawing = FastPatchRenderer(crop, gray=True)
    add("fast render, drawing only", "FastPatchRenderer.draw (no memo)",
        median_us(stateless(lambda i: drawing.draw(180.0 + states[i][0] % 1.0, states[i][2])),
                  steps, repeats))

    def memoised() -> tuple[Callable[[int], None], Callable[[], None]]:
        renderer = FastPatchRenderer(crop, gray=True)
        return (lambda i: renderer.render(states[i])), _no_close

    add("fast render, memoised", "FastPatchRenderer.render, memo empty at the start",
        median_us(memoised, steps, repeats))
    for renderer, n in (("pygame", slow_steps), ("fast", steps)):
        for mode in OBS_MODES:
            add(f"wrapper step: {renderer}, {mode}", "PixelObservation.step, gray 40x90",
                median_us(env_stage(lambda r=renderer, m=mode: make_single_pixel_env(
                    PixelEnvConfig(renderer=r, obs_mode=m, follow=follow)), actions,
                    seed), n, repeats))
    for count in num_envs:
        for mode in ("sync", "async"):
            if mode == "async" and count == 1:
                continue
            add(f"vector env: {count} x fast diff, {mode}", "per env step (one call steps all)",
                median_us(vector_stage(count, mode, actions, seed, obs_mode="diff",
                                       follow=follow), max(steps // count, 50),
                          repeats), per=count)
    physics = rows[0]["us_per_env_step"]
    for row in rows:
        row["steps_per_s"] = 1e6 / row["us_per_env_step"]
        row["x_physics"] = row["us_per_env_step"] / physics
    return rows


def checks(rows: list[dict]) -> list[str]:
    """The targets for the fast wrapper step (diff mode), from this run's figures."""
    us = {row["stage"]: row["us_per_env_step"] for row in rows}
    fast, pygame = us["wrapper step: fast, diff"], us["wrapper step: pygame, diff"]
    physics = us["physics step"]
    return [
        f"fast wrapper step is {pygame / fast:.1f}x faster than the pygame wrapper step "
        f"(target >= 30x): {'yes' if pygame / fast >= 30 else 'NO'}",
        f"fast wrapper step is {fast / physics:.2f}x the raw physics step (target <= 5x): "
        f"{'yes' if fast / physics <= 5 else 'NO'}",
    ]


def to_markdown(rows: list[dict], record: dict, provenance: Provenance) -> str:
    lines = [
        "# Pixel environment speed",
        "",
        *provenance.markdown(),
        f"- {record['steps']} steps per repeat ({record['slow_steps']} for pygame stages), "
        f"median of {record['repeats']} repeats; random actions, resets included",
        f"- window: env.follow={record['follow']:g} (the default env's: {PIXELS.follow:g}; "
        "1 centres it on the cart, as the seed notebook did)",
        "",
        "| stage | what | us / env step | env steps/s | x raw physics |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['stage']} | {row['what']} | {row['us_per_env_step']:.1f} | "
                     f"{row['steps_per_s']:,.0f} | {row['x_physics']:.1f} |")
    lines += [
        "",
        *[f"- {line}" for line in record["checks"]],
        "",
        "The fast renderer memoises each patch under its cart position inside the window "
        "(quantised to 1/4 screen pixel) and pole angle (to 1 mrad), so a patch is a pure "
        "function of the state; \"drawing only\" is the cost of a memo miss. Every repeat "
        "starts with an empty memo. A vector env adds gymnasium's own batching on top of the "
        "wrapper step; async pays inter-process pipes, which only pays off for slower envs.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="env steps per repeat")
    parser.add_argument("--slow-steps", type=int, default=300,
                        help="env steps per repeat for the pygame stages")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few steps: a smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--name", default="pixel_env")
    parser.add_argument("--follow", type=float, default=PIXELS.follow,
                        help="env.follow of the timed window (default: the default env's; "
                             "1 centres it on the cart, the seed notebook's view)")
    add_provenance_options(parser)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.slow_steps, args.repeats, args.num_envs = 200, 20, 1, [2]
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    provenance = Provenance.of_this_run(ROOT, "scripts/benchmark.py", args.allow_dirty)
    rows = run(args.steps, args.slow_steps, args.repeats, args.num_envs, args.seed, args.follow)
    record = {"steps": args.steps, "slow_steps": args.slow_steps, "repeats": args.repeats,
              "follow": args.follow, "checks": checks(rows), "rows": rows}
    publish(args.out, args.name, to_markdown(rows, record, provenance), record, provenance)


if __name__ == "__main__":
    main()
