"""Process-wide TensorFlow settings that must be made before TensorFlow runs its first op."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn() -> None:
    """Ask TensorFlow for its oneDNN CPU kernels unless the environment already decides.

    TensorFlow turns them on by default only on CPUs with AVX-512 VNNI/BF16 or AMX; on others
    (the 2-core AMD EPYC machines this project runs on) it falls back to Eigen kernels, whose
    backward pass of the CNN's first convolution (8x8, stride 4, on a 40x90 patch) is ~5x slower.
    The variable is read once, when TensorFlow loads: this runs on ``import pixel_dqn``.
    ``TF_ENABLE_ONEDNN_OPTS=0`` in the environment keeps the Eigen kernels. Runs stay
    deterministic per seed and thread count either way, but the two kernel sets round
    differently, so a run reproduces only under the same setting.
    """
    os.environ.setdefault(ONEDNN_VARIABLE, "1")


def configure_threads(intra_op: int, inter_op: int) -> None:
    """Size TensorFlow's thread pools (0 keeps TensorFlow's default of one thread per core).

    Small networks run faster on one thread (no hand-off between cores for microsecond ops),
    and parallel jobs on one machine must split the cores rather than each take them all.
    Once TensorFlow has initialised (an earlier run in the same process), the pools cannot
    change: the existing ones are kept and a message says so.
    """
    import tensorflow as tf

    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(intra_op)
        threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        current = (threading.get_intra_op_parallelism_threads(),
                   threading.get_inter_op_parallelism_threads())
        if current != (intra_op, inter_op):
            log.info("TensorFlow is already initialised with intra/inter-op threads %s; "
                     "keeping them (asked for %s)", current, (intra_op, inter_op))
