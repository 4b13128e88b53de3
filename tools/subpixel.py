"""Spleeter's transposed convolutions as sub-pixel convolutions, for fast TFLite inference.

A ``Conv2DTranspose`` with a 5x5 kernel, stride 2 and ``same`` padding computes each of the four
output phases ``(row % 2, column % 2)`` from a neighbourhood of its input: 2x2, 2x3, 3x2 and
3x3 taps. So it equals four stride-1 ``VALID`` convolutions of the input padded by one (one per
phase, exactly its taps), concatenated phase-major and put in place by ``depth_to_space(2)``:
the same products, summed in another order. For layers with few filters (the last decoder
layer has 1) one 3x3 convolution with ``4 * filters`` outputs and zero taps is faster
(:data:`PHASE_MIN_FILTERS`).

Why: LiteRT's XNNPACK runs ``CONV_2D`` near this CPU's peak (about 90 GFLOP/s per core, AVX2)
but the converter's ``TRANSPOSE_CONV`` at about 25 GFLOP/s, and the last decoder layer
(1 output channel) at about 2 GFLOP/s; measured per layer on the full-size (16..512) U-Net with
``python -m tools.subpixel --profile`` (see ``docs/spleeter.md``, Performance).

:func:`subpixel_model` clones a :func:`tools.unet.build_unet` model with every such layer
replaced by :class:`SubpixelConv2DTranspose` (same weights, same variable names), so weights
load and map exactly as before; only the exported graph changes.

Usage (profiling)::

    python -m tools.subpixel --profile [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

import keras
import numpy as np

__all__ = ["SubpixelConv2DTranspose", "subpixel_model", "supports"]

_KERNEL: Final = (5, 5)
_STRIDES: Final = (2, 2)
_PHASE_TAPS: Final = ((3, 1), (4, 2, 0))
"""Kernel indices of output phase 0 and 1 for input offsets -1, 0 (, +1): ``_tap``."""
PHASE_MIN_FILTERS: Final = 16
"""From this many filters the four per-phase convolutions (no zero taps) beat one 3x3
convolution with ``4 * filters`` outputs; below it (the last decoder layer, 1 filter) the
narrow per-phase outputs make XNNPACK's GEMMs inefficient."""


def supports(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` is a transposed convolution this rewrite handles exactly."""
    return (
        type(layer) is keras.layers.Conv2DTranspose
        and tuple(layer.kernel_size) == _KERNEL
        and tuple(layer.strides) == _STRIDES
        and layer.padding == "same"
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.data_format == "channels_last"
        and layer.output_padding is None
    )


def _tap(phase: int, offset: int) -> int | None:
    """Kernel index feeding output phase ``phase`` from input offset ``offset`` (-1, 0, 1).

    TF's transposed convolution (stride 2, kernel 5, ``same``: 1 padding row before) adds
    ``x[i] * w[k]`` to output ``2 i + k - 1``; for output ``2 m + phase`` and input
    ``m + offset`` that is ``k = phase + 1 - 2 offset``.
    """
    k = phase + 1 - 2 * offset
    return k if 0 <= k < _KERNEL[0] else None


@keras.saving.register_keras_serializable(package="streamsep")
class SubpixelConv2DTranspose(keras.layers.Conv2DTranspose):
    """``Conv2DTranspose(filters, 5, strides=2, padding="same")`` computed as per-phase
    ``Conv2D`` s and ``depth_to_space(2)``. Same weights and shapes.

    Needs the TensorFlow backend (it is used for export only).
    """

    def call(self, inputs: Any) -> Any:
        import tensorflow as tf

        if self.filters >= PHASE_MIN_FILTERS:
            y = self._phase_convolutions(tf, inputs)
        else:
            y = self._one_convolution(tf, inputs)
        y = tf.nn.depth_to_space(y, 2)
        if self.activation is not None:
            y = self.activation(y)
        return y

    def _one_convolution(self, tf: Any, inputs: Any) -> Any:
        """One 3x3 convolution, ``4 * filters`` outputs (zero taps where a phase has fewer)."""
        kernel = self.kernel  # (5, 5, filters, in_channels)
        zeros = tf.zeros((int(kernel.shape[3]), int(kernel.shape[2])), kernel.dtype)
        rows = []
        for a in range(3):
            cols = []
            for b in range(3):
                blocks = []
                for p in range(2):
                    for q in range(2):
                        kr, kc = _tap(p, a - 1), _tap(q, b - 1)
                        if kr is None or kc is None:
                            blocks.append(zeros)
                        else:
                            blocks.append(tf.transpose(kernel[kr, kc]))  # (in, filters)
                cols.append(tf.concat(blocks, axis=1))  # (in, 4 filters), phase-major
            rows.append(tf.stack(cols))
        kernel3 = tf.stack(rows)  # (3, 3, in, 4 filters)
        y = tf.nn.conv2d(inputs, kernel3, strides=1, padding="SAME")
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.tile(self.bias, [4]))
        return y

    def _phase_convolutions(self, tf: Any, inputs: Any) -> Any:
        """Four convolutions, one per phase, with exactly its taps (2x2, 2x3, 3x2, 3x3)."""
        height, width = int(inputs.shape[1]), int(inputs.shape[2])
        padded = tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]])
        outputs = []
        for p in range(2):
            for q in range(2):
                rows, cols = _PHASE_TAPS[p], _PHASE_TAPS[q]
                kernel = tf.gather(tf.gather(self.kernel, rows, axis=0), cols, axis=1)
                kernel = tf.transpose(kernel, [0, 1, 3, 2])  # (rows, cols, in, filters)
                window = padded[:, : height + len(rows) - 1, : width + len(cols) - 1]
                outputs.append(tf.nn.conv2d(window, kernel, strides=1, padding="VALID"))
        y = tf.concat(outputs, axis=-1)
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.tile(self.bias, [4]))
        return y


def subpixel_model(model: keras.Model) -> keras.Model:
    """A clone of ``model`` with supported ``Conv2DTranspose`` layers as sub-pixel convolutions.

    Layer names and weights are kept; other layers are cloned unchanged. The result computes
    the same function (float rounding apart).
    """

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if supports(layer):
            return SubpixelConv2DTranspose.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    fast = keras.models.clone_model(model, clone_function=clone)
    fast.set_weights(model.get_weights())
    return fast


def _profile(threads: int) -> None:  # pragma: no cover - a measurement, not a test
    """Per-layer LiteRT times of one full-size stem: encoder convs and decoder deconvs, as
    ``TRANSPOSE_CONV`` and as sub-pixel convolutions."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    def seconds(layer: keras.layers.Layer, shape: tuple[int, ...]) -> float:
        inp = keras.Input(shape, batch_size=1)
        model = keras.Model(inp, layer(inp))
        flat = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        interpreter = Interpreter(model_content=flat, num_threads=threads)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        x = np.random.default_rng(0).random(detail["shape"], dtype=np.float32)
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        started = time.process_time()
        for _ in range(3):
            interpreter.invoke()
        return (time.process_time() - started) / 3

    encoder = [(512, 1024, 2, 16), (256, 512, 16, 32), (128, 256, 32, 64), (64, 128, 64, 128)]
    encoder += [(32, 64, 128, 256), (16, 32, 256, 512)]
    decoder = [(8, 16, 512, 256), (16, 32, 512, 128), (32, 64, 256, 64), (64, 128, 128, 32)]
    decoder += [(128, 256, 64, 16), (256, 512, 32, 1)]
    totals = {"conv": 0.0, "transpose": 0.0, "subpixel": 0.0}
    print(f"CPU seconds per call, LiteRT, {threads} thread(s), one stem of the 16..512 U-Net")
    for h, w, cin, cout in encoder:
        t = seconds(keras.layers.Conv2D(cout, 5, strides=2, padding="same"), (h, w, cin))
        totals["conv"] += t
        print(f"conv {h}x{w}x{cin} -> {cout}: {t:.4f}")
    for h, w, cin, cout in decoder:
        layer = keras.layers.Conv2DTranspose(cout, 5, strides=2, padding="same")
        t = seconds(layer, (h, w, cin))
        s = seconds(SubpixelConv2DTranspose(cout, 5, strides=2, padding="same"), (h, w, cin))
        totals["transpose"] += t
        totals["subpixel"] += s
        print(f"deconv {h}x{w}x{cin} -> {cout}: TRANSPOSE_CONV {t:.4f}, sub-pixel {s:.4f}")
    print(" ".join(f"{k} {v:.4f}" for k, v in totals.items()))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``--profile``)."""
    parser = argparse.ArgumentParser(prog="python -m tools.subpixel", description=__doc__)
    parser.add_argument("--profile", action="store_true", help="time each layer with LiteRT")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.profile:
        _profile(args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
