"""What the learner asks of the CPU: floating-point work per env step, against what the machine's
matrix units deliver (a throughput table's compute limit).

Counts multiply-adds (MACs) of the layers that carry weights (convolutions and dense layers:
everything else, activations, LayerNorm, the dueling combine, is a rounding error at these sizes)
and turns them into FLOPs at two per MAC.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from pixel_dqn.config import DQNConfig

FLOPS_PER_MAC = 2


def forward_macs(model) -> int:
    """Multiply-adds of one forward pass of ``model`` for one sample.

    A layer with a 4-d ``kernel`` (height, width, in, out) is a convolution: it costs its
    kernel's size at every output position. A 2-d kernel (in, out) is a dense layer, applied at
    every position its input has besides the features.
    """
    total = 0
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        shape = tuple(int(d) for d in kernel.shape)
        positions = math.prod(int(d) for d in layer.output.shape[1:-1])
        if len(shape) == 4:
            total += positions * math.prod(shape)
        elif len(shape) == 2:
            total += positions * shape[0] * shape[1]
    return total


@dataclass(frozen=True)
class DQNWork:
    """The FLOPs of one env step of DQN training, from the network and the trainer's terms."""

    forward_macs: int
    acting_flops: float
    learning_flops: float

    @property
    def per_env_step(self) -> float:
        return self.acting_flops + self.learning_flops


def dqn_work(macs: int, trainer: DQNConfig) -> DQNWork:
    """Per env step: acting is one forward pass of the online network for that env's
    observation; learning is ``gradient_steps / train_freq`` gradient steps of ``batch_size``
    samples, each sample costing a forward pass of the online network, one of the target network
    on the next observation (and one of the online network on it with Double DQN) and a
    backward pass (about twice a forward pass)."""
    forwards = 2 + (1 if trainer.double_dqn else 0)
    per_sample = FLOPS_PER_MAC * macs * (forwards + 2)
    steps_per_env_step = trainer.gradient_steps / trainer.train_freq
    return DQNWork(macs, FLOPS_PER_MAC * macs,
                   steps_per_env_step * trainer.batch_size * per_sample)


def matmul_gflops(size: int = 2048, repeats: int = 10, dtype: str = "float32") -> float:
    """The machine's matrix-product rate in ``dtype``: the best of ``repeats`` ``size`` x
    ``size`` products in TensorFlow, on its thread pools as configured (GFLOP/s)."""
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_uniform((size, size), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_uniform((size, size), seed=(3, 4)), dtype)
    product = tf.function(lambda x, y: tf.linalg.matmul(x, y))
    product(a, b).numpy()  # trace and warm up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def main(argv: list[str] | None = None) -> None:
    """``python -m pixel_dqn.flops --threads N [--dtype bfloat16]``: print ``matmul_gflops``
    on N threads."""
    import argparse

    from pixel_dqn.runtime import configure_threads

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--threads", type=int, default=0, help="0: one per core")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = parser.parse_args(argv)
    configure_threads(args.threads, args.threads)
    print(f"{matmul_gflops(dtype=args.dtype):.3f}")


if __name__ == "__main__":
    main()
