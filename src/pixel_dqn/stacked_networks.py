"""Many seeds' Q-networks as one: stacked weights and one forward pass for all of them.

A seed stack holds ``S`` networks of one architecture (built by ``pixel_dqn.networks``) as
variables with a leading seed axis, and runs them on ``S`` batches in one graph: the dense
layers as batched matrix products, the convolutions as one convolution per seed (independent
ops, which TensorFlow's inter-op threads run side by side). What it saves is per-call and
per-op overhead, not arithmetic: on a CPU the convolutions of this small network are bound by
their kernels (1-16 channels do not fill the vector units), and those stay as they are
(benchmarks/pixel_throughput.md profiles them).

Seed ``s`` computes what its Keras network computes, up to float rounding (the same layers,
formulas and weights; tests/test_seed_stack.py compares them), and never depends on the other
seeds' weights or inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from pixel_dqn.networks import DuelingCombine, PixelConv

# the dueling head's two streams read the same features (pixel_dqn.networks.q_head)
DUELING_STREAMS = ("value", "advantages")


class StackedNetwork:
    """The layers of a Keras Q-network, applied with weights that have a leading seed axis.

    ``weights`` passed to ``__call__`` are one tensor per Keras weight (``model.weights``
    order), each ``(S, *keras_shape)``; ``obs`` is ``(S, batch, *obs_shape)``; the result is
    ``(S, batch, outputs)``.
    """

    def __init__(self, model: keras.Model) -> None:
        self.layers = [layer for layer in model.layers
                       if not isinstance(layer, keras.layers.InputLayer)]
        # the position of each layer's weights in model.weights
        self.slices, start = [], 0
        for layer in self.layers:
            self.slices.append(slice(start, start + len(layer.weights)))
            start += len(layer.weights)
        if start != len(model.weights):
            raise ValueError(f"{model.name}: {start} layer weights for {len(model.weights)}")
        for layer in self.layers:
            if type(layer) not in _LAYER_KINDS:
                raise ValueError(f"a seed stack cannot run layer {layer.name} "
                                 f"({type(layer).__name__}); it runs "
                                 f"{', '.join(k.__name__ for k in _LAYER_KINDS)}")

    def __call__(self, weights: Sequence[tf.Tensor], obs: tf.Tensor) -> tf.Tensor:
        return self._run(weights, obs, first=0)

    def pair(self, weights_a: Sequence[tf.Tensor], weights_b: Sequence[tf.Tensor],
             obs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Two stacks of weights (the online and the target networks) on the same ``obs``, as
        one stack of ``2 S`` networks: a first ``PixelConv`` reads the frames once for both."""
        seeds = weights_a[0].shape[0]
        both = [tf.reshape(tf.stack([a, b], axis=1), (2 * seeds, *a.shape[1:]))
                for a, b in zip(weights_a, weights_b, strict=True)]
        first = self.layers[0]
        if isinstance(first, PixelConv):
            (kernel_a, bias_a), (kernel_b, bias_b) = (w[self.slices[0]]
                                                      for w in (weights_a, weights_b))
            x = _pixel_conv(first, [kernel_a, kernel_b], [bias_a, bias_b], obs)
            outputs = self._run(both, x, first=1)
        else:
            x = tf.reshape(tf.stack([obs, obs], axis=1),
                           tf.concat([[2 * seeds], tf.shape(obs)[1:]], axis=0))
            outputs = self._run(both, x, first=0)
        outputs = tf.reshape(outputs, (seeds, 2, -1, outputs.shape[-1]))
        return outputs[:, 0], outputs[:, 1]

    def _run(self, weights: Sequence[tf.Tensor], x: tf.Tensor, first: int) -> tf.Tensor:
        streams = {}
        for layer, where in zip(self.layers[first:], self.slices[first:], strict=True):
            w = weights[where]
            if isinstance(layer, PixelConv):
                x = _pixel_conv(layer, [w[0]], [w[1]], x)
            elif isinstance(layer, keras.layers.Conv2D):
                x = _seed_convs(x, w[0], w[1], layer.strides[0], layer.activation)
            elif isinstance(layer, keras.layers.Flatten):
                # Keras's order per sample (rows, columns, channels): (S, B, features)
                x = tf.reshape(x, (x.shape[0], -1, int(np.prod(x.shape[2:]))))
            elif isinstance(layer, keras.layers.Dense):
                y = layer.activation(tf.matmul(x, w[0]) + w[1][:, None, :])
                if layer.name in DUELING_STREAMS:
                    streams[layer.name] = y  # both streams read x
                else:
                    x = y
            elif isinstance(layer, keras.layers.LayerNormalization):
                mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
                x = ((x - mean) * tf.math.rsqrt(variance + layer.epsilon) * w[0][:, None, :]
                     + w[1][:, None, :])
            elif isinstance(layer, keras.layers.Activation):
                x = layer.activation(x)
            elif isinstance(layer, DuelingCombine):
                advantages = streams["advantages"]
                x = streams["value"] + advantages - tf.reduce_mean(
                    advantages, axis=-1, keepdims=True)
        return x


def _pixel_conv(layer: PixelConv, kernels: Sequence[tf.Tensor], biases: Sequence[tf.Tensor],
                frames: tf.Tensor) -> tf.Tensor:
    """``PixelConv`` for every seed, with one or more kernels per seed on the same frames:
    uint8 ``(S, B, frames, H, W[, C])`` -> ``(S*n, B, h, w, F)`` (seed-major, then kernel).

    With a kernel a whole number of strides wide (the default 8 and 4), the frames are cut into
    stride-sized blocks stacked as channels (space to depth): the convolution becomes a 2x2
    one of stride 1 over 16x more channels, which oneDNN runs faster than the strided one over
    its 1-2 channels (same products, summed in another order).
    """
    seeds, size, stride = kernels[0].shape[0], layer.kernel_size, layer.strides
    slots, channels, used = len(layer.frame_weights), layer.channels, layer.used_frames
    if len(used) < frames.shape[2]:
        frames = tf.gather(frames, used, axis=2)
    height, width = frames.shape[3:5]
    out_h, out_w = (height - size) // stride + 1, (width - size) // stride + 1
    space_to_depth = stride > 1 and size % stride == 0
    if space_to_depth:  # the rows and columns the kernel reaches, in whole blocks
        blocks = size // stride
        rows, cols = (out_h - 1 + blocks), (out_w - 1 + blocks)
        frames = frames[:, :, :, :rows * stride, :cols * stride]
    x = tf.cast(frames, tf.float32) * (1.0 / 255.0)
    if channels == 1:
        x = x[..., None]  # (S, B, frames, H, W, C)
    folded = []
    for kernel in kernels:
        kernel = tf.reshape(kernel, (seeds, size, size, slots, channels, -1))
        folded.append(tf.einsum("sf,nhwsco->nhwfco", layer.frame_weights[:, used], kernel))
    kernel = tf.concat(folded, axis=-1)  # (S, k, k, frames, C, n*F)
    if space_to_depth:
        x = tf.reshape(x, (seeds, -1, len(used), rows, stride, cols, stride, channels))
        x = tf.transpose(x, (0, 1, 3, 5, 4, 6, 2, 7))  # (S, B, rows, cols, r, c, frames, C)
        x = tf.reshape(x, (seeds, -1, rows, cols, stride * stride * len(used) * channels))
        kernel = tf.reshape(kernel, (seeds, blocks, stride, blocks, stride, len(used), channels,
                                     -1))
        kernel = tf.transpose(kernel, (0, 1, 3, 2, 4, 5, 6, 7))
        kernel = tf.reshape(kernel, (seeds, blocks, blocks, stride * stride * len(used)
                                     * channels, -1))
        stride = 1
    else:
        x = tf.transpose(x, (0, 1, 3, 4, 2, 5))  # (S, B, H, W, frames, C)
        x = tf.reshape(x, (seeds, -1, height, width, len(used) * channels))
        kernel = tf.reshape(kernel, (seeds, size, size, len(used) * channels, -1))
    x = _seed_convs(x, kernel, tf.concat(list(biases), axis=-1), stride,
                    keras.activations.relu)  # (S, B, h, w, n*F)
    if len(kernels) == 1:
        return x
    # the kernels' outputs as seeds of their own: (S*n, B, h, w, F)
    *_, out_h, out_w, filters = x.shape
    x = tf.reshape(x, (seeds, -1, out_h, out_w, len(kernels), filters // len(kernels)))
    x = tf.transpose(x, (0, 4, 1, 2, 3, 5))
    return tf.reshape(x, (seeds * len(kernels), -1, out_h, out_w, filters // len(kernels)))


def _seed_convs(x, kernel, bias, strides: int, activation) -> tf.Tensor:
    """Each seed's convolution of its own images: ``x`` ``(S, B, H, W, c_in)``, ``kernel``
    ``(S, k, k, c_in, c_out)``, ``bias`` ``(S, c_out)`` -> ``(S, B, h, w, c_out)``.

    One convolution per seed, not one grouped convolution over all: oneDNN's grouped kernel is
    slower per seed than its plain one at these sizes, and the seeds' convolutions are
    independent ops that TensorFlow's inter-op threads run side by side.
    """
    # unstacked, not sliced: the gradient of a slice is a zero tensor of the whole stack
    return tf.stack([activation(tf.nn.conv2d(image, k, strides=strides, padding="VALID") + b)
                     for image, k, b in zip(tf.unstack(x), tf.unstack(kernel), tf.unstack(bias),
                                            strict=True)])


_LAYER_KINDS = (PixelConv, keras.layers.Conv2D, keras.layers.Flatten, keras.layers.Dense,
                keras.layers.LayerNormalization, keras.layers.Activation, DuelingCombine)
