"""Training losses on magnitude spectrograms.

The seed's (Spleeter's) loss: for each stem the mean absolute difference between the network's
output ``mask * mix`` and the target magnitudes, summed over stems (Spleeter's
``tf.reduce_mean(tf.abs(output - target))`` per instrument, ``l1`` below). The same number per
stem is what Spleeter's evaluation reports as ``absolute_difference``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["LOSSES", "l1_level_per_stem", "l1_per_stem", "l1_per_stem_numpy", "sdr_per_stem"]

LOSSES: Final = ("l1", "l1-level", "sdr")
"""Loss names accepted by ``tools.train --loss``."""


def l1_per_stem(outputs: Sequence[Any], targets: Sequence[Any]) -> list[Any]:
    """Mean absolute difference per stem (Keras ops: runs on any Keras backend, in graphs).

    Parameters
    ----------
    outputs, targets : sequences of tensors, each shape (batch, T, F, n_channels), float32
        Network outputs (``mask * mix``) and target magnitudes, one per stem, same order.

    Returns
    -------
    list of scalar tensors
        ``mean(|output_i - target_i|)`` per stem; the training loss is their sum.
    """
    from keras import ops

    if len(outputs) != len(targets):
        raise ValueError(f"expected {len(outputs)} targets, got {len(targets)}")
    return [ops.mean(ops.abs(o - t)) for o, t in zip(outputs, targets, strict=True)]


def l1_per_stem_numpy(
    outputs: Sequence[NDArray[np.floating]], targets: Sequence[NDArray[np.floating]]
) -> list[float]:
    """:func:`l1_per_stem` in NumPy (float64), for evaluation and tests."""
    return [
        float(np.mean(np.abs(np.asarray(o, np.float64) - np.asarray(t, np.float64))))
        for o, t in zip(outputs, targets, strict=True)
    ]


def l1_level_per_stem(outputs: Sequence[Any], targets: Sequence[Any], mix: Any) -> list[Any]:
    """:func:`l1_per_stem` with each example's differences divided by its mix's mean magnitude.

    Training mixes span 35 dB of level; plain L1 lets the loudest examples dominate. Divided by
    the level, every example weighs the same (``l1-level``; validation still reports ``l1``).
    """
    from keras import ops

    if len(outputs) != len(targets):
        raise ValueError(f"expected {len(outputs)} targets, got {len(targets)}")
    level = ops.mean(mix, axis=(1, 2, 3), keepdims=True) + 1e-8
    return [ops.mean(ops.abs(o - t) / level) for o, t in zip(outputs, targets, strict=True)]


SDR_FLOOR: Final = 1e-3
"""``sdr`` loss: energy floor relative to the mix, so noise-only (silent-target) blocks count."""


def sdr_per_stem(
    outputs: Sequence[Any], targets: Sequence[Any], mix: Any, separation_exponent: float = 2.0
) -> list[Any]:
    """Negative spectral SDR (dB) per stem of what the engine outputs, mean over examples.

    The engine does not use ``outputs`` directly: it forms Spleeter's ratio masks
    ``out_i^p / sum_j out_j^p`` and multiplies the mix, keeping its phase. This loss does the
    same, and compares ``mask_i * |X|`` with phase-sensitive targets ``t_i`` (``Re(S_i X*)/|X|``,
    :func:`tools.dataset.psa_target`), whose squared error is the STFT-domain error of the
    resynthesised waveform (up to the part orthogonal to the mix phase, which no mask changes).
    Per example and stem: ``10 log10((sum (est - t)^2 + f E) / (sum t^2 + f E))`` with
    ``E = sum |X|^2`` and ``f =`` :data:`SDR_FLOOR`. Being in dB, every example and every level
    weighs the same, as in the evaluation's mean SI-SDR.
    """
    from keras import ops

    if len(outputs) != len(targets):
        raise ValueError(f"expected {len(outputs)} targets, got {len(targets)}")
    powered = [ops.power(ops.maximum(o, 0.0), separation_exponent) for o in outputs]
    total = powered[0]
    for p in powered[1:]:
        total = total + p
    total = total + 1e-10
    floor = SDR_FLOOR * ops.sum(ops.square(mix), axis=(1, 2, 3))
    losses = []
    for p, t in zip(powered, targets, strict=True):
        estimate = (p + 1e-10 / len(powered)) / total * mix
        error = ops.sum(ops.square(estimate - t), axis=(1, 2, 3))
        energy = ops.sum(ops.square(t), axis=(1, 2, 3))
        ratio = (error + floor) / (energy + floor)
        losses.append(ops.mean(10.0 * ops.log10(ratio)))
    return losses
