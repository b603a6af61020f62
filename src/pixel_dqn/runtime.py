"""Process-wide TensorFlow settings that must be made before TensorFlow runs its first op."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


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
