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

__all__ = ["LOSSES", "l1_per_stem", "l1_per_stem_numpy"]

LOSSES: Final = ("l1",)
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
