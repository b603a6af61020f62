"""Where a training phase's time goes, per TensorFlow op kind.

    python -m pixel_dqn.op_profile RUN_DIR [--seeds N] [--phases 20]

Builds the agent of a run's ``config.yaml`` (a ``DQNAgent``, or with ``--seeds N`` a
``SeedStackAgent`` of N seeds) on the run's thread settings, times ``--phases`` fused updates
of one training phase each on random batches of the run's shapes (an op's time does not depend
on the values), traces them with TensorFlow's profiler and prints, as JSON, the wall time per
phase and the kernel time of each op kind (convolutions, matrix products, transposes, ...).
"""

from __future__ import annotations

import argparse
import glob
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from pixel_dqn.config import load_config
from pixel_dqn.replay import Batch
from pixel_dqn.run_directory import RUN_CONFIG_FILE
from pixel_dqn.runtime import configure_threads

COMPUTE_THREADS = "tf_Compute"  # the executor's threads in the trace: where kernels run
EXECUTOR_SPAN = "Process"  # the executor's span around each op's kernel (not itself an op)


def random_batch(rng: np.random.Generator, lead: tuple[int, ...], obs_shape: tuple[int, ...],
                 obs_dtype) -> Batch:
    """A batch of the given leading shape with random observations, actions and returns."""
    def observations():
        if np.dtype(obs_dtype) == np.uint8:
            return rng.integers(0, 256, (*lead, *obs_shape), dtype=np.uint8)
        return rng.normal(size=(*lead, *obs_shape)).astype(np.float32)

    return Batch(observations(), rng.integers(0, 2, lead).astype(np.int32),
                 rng.normal(size=lead).astype(np.float32), observations(),
                 (rng.random(lead) < 0.05).astype(np.float32), np.full(lead, 0.9, np.float32),
                 np.ones(lead, np.float32), None)


def profile_run_config(run_dir: Path, seeds: int = 0, phases: int = 20) -> dict:
    """The op-kind profile of the update of ``run_dir``'s config (see the module doc)."""
    cfg = load_config(yaml.safe_load((run_dir / RUN_CONFIG_FILE).read_text()))
    configure_threads(cfg.threads.intra_op, cfg.threads.inter_op)
    import keras
    import tensorflow as tf

    from pixel_dqn.agents.dqn import DQNAgent
    from pixel_dqn.agents.seed_stack import SeedStackAgent
    from pixel_dqn.envs.factory import make_envs
    from pixel_dqn.networks import build_network

    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    envs = make_envs(cfg.env, 1)
    obs_space, actions = envs.single_observation_space, int(envs.single_action_space.n)
    envs.close()
    hparams, rng = cfg.trainer, np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    build = lambda: build_network(cfg.model, obs_space.shape, actions)  # noqa: E731
    lead = (hparams.gradient_steps, hparams.batch_size)
    if seeds:
        stack = SeedStackAgent([build() for _ in range(seeds)], hparams, 10_000)
        batch = random_batch(rng, (seeds, *lead), obs_space.shape, obs_space.dtype)
        active, sync = np.ones((seeds, lead[0]), bool), np.ones(seeds, bool)
        update = lambda: stack.update(batch, active, sync)  # noqa: E731
    else:
        agent = DQNAgent(build, actions, hparams, 10_000)
        batch = random_batch(rng, lead, obs_space.shape, obs_space.dtype)
        update = lambda: agent.update(batch, sync_target=True)  # noqa: E731
    for _ in range(3):
        update()  # trace and warm up
    start = time.perf_counter()
    for _ in range(phases):
        update()
    wall = (time.perf_counter() - start) / phases
    with tempfile.TemporaryDirectory() as trace_dir:
        tf.profiler.experimental.start(trace_dir)
        for _ in range(phases):
            update()
        tf.profiler.experimental.stop()
        kernel_ms, counts = _op_kinds(trace_dir)
    ops = [{"op": kind, "ms_per_phase": ms / phases, "ops_per_phase": counts[kind] / phases}
           for kind, ms in kernel_ms.most_common()]
    return {"seeds": seeds or 1, "stacked": bool(seeds), "phases": phases,
            "gradient_steps_per_phase": hparams.gradient_steps, "batch_size": hparams.batch_size,
            "threads": {"intra_op": cfg.threads.intra_op, "inter_op": cfg.threads.inter_op},
            "wall_ms_per_phase": wall * 1e3,
            "kernel_ms_per_phase": sum(o["ms_per_phase"] for o in ops), "ops": ops}


def _op_kinds(trace_dir: str) -> tuple[Counter, Counter]:
    """Kernel milliseconds and counts per op kind on the executor's threads of a trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    (path,) = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(path).read_bytes())
    milliseconds, counts = Counter(), Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith(COMPUTE_THREADS):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                kind = name.rsplit(":", 1)[-1]
                if ":" not in name or kind == EXECUTOR_SPAN:
                    continue  # the executor's own spans, not a kernel ("name:OpKind")
                kind = kind.removeprefix("_Mkl").removeprefix("Native")
                milliseconds[kind] += event.duration_ps / 1e9
                counts[kind] += 1
    return milliseconds, counts


def profile_table(profiles: list[dict], heads: list[str], top: int = 12) -> list[str]:
    """Markdown lines of ``profile_run_config`` results side by side, one column per profile
    headed by ``heads``: kernel ms per training phase and seed for the ``top`` op kinds of the
    first profile, the rest, and all kernels."""
    if not profiles:
        return []
    kinds = [o["op"] for o in profiles[0]["ops"][:top]]
    per_kind = [{o["op"]: o for o in p["ops"]} for p in profiles]
    first = profiles[0]
    lines = ["", f"Where a training phase ({first['gradient_steps_per_phase']} gradient steps of "
             f"{first['batch_size']}) goes, by op kind: kernel milliseconds per phase and seed "
             f"from TensorFlow's profiler, on random batches of the run's shapes "
             f"(`python -m pixel_dqn.op_profile RUN_DIR [--seeds N]`; kernels on two inter-op "
             f"threads overlap, so they can add up to more than the wall time):", "",
             "| op kind | " + " | ".join(heads) + " | ops per phase (first column) |",
             "|---|" + "---:|" * (len(profiles) + 1)]
    for kind in kinds:
        cells = [f"{ops[kind]['ms_per_phase'] / p['seeds']:.2f}" if kind in ops else "-"
                 for ops, p in zip(per_kind, profiles, strict=True)]
        lines.append(f"| {kind} | " + " | ".join(cells)
                     + f" | {per_kind[0][kind]['ops_per_phase']:.0f} |")
    rest = [sum(o["ms_per_phase"] for o in p["ops"] if o["op"] not in kinds) / p["seeds"]
            for p in profiles]
    total = [p["kernel_ms_per_phase"] / p["seeds"] for p in profiles]
    lines += ["| all other kinds | " + " | ".join(f"{r:.2f}" for r in rest) + " | |",
              "| **all kernels** | " + " | ".join(f"**{t:.2f}**" for t in total) + " | |"]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run directory (its config.yaml is used)")
    parser.add_argument("--seeds", type=int, default=0,
                        help="profile a seed stack of this many seeds (default: one agent)")
    parser.add_argument("--phases", type=int, default=20)
    args = parser.parse_args(argv)
    print(json.dumps(profile_run_config(args.run_dir, args.seeds, args.phases), indent=2))


if __name__ == "__main__":
    main()
