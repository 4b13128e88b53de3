"""An extra term of the detector's score: what it sees of a window and what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = ["ExtraTerm", "WindowView"]


@dataclass(frozen=True)
class WindowView:
    """What the detector has of one window, for an extra score term (:class:`ExtraTerm`)."""

    index: int
    """The window's number on the stream's grid (samples ``[index W, (index + 1) W)``)."""
    freqs: NDArray[np.float64]
    """Centre frequencies of the in-band bins, Hz."""
    orca_spectrum: NDArray[np.float64]
    """The orca stem's in-band power per bin (Parseval-normalised)."""
    orca_db: float
    noise_db: float | None
    background_db: float
    flatness_db: float
    orca: NDArray[np.float64]
    """The window's orca samples, shape (W, n_channels)."""


class ExtraTerm(Protocol):
    """One more term of the score, dB (the score is the minimum of all terms): a call
    classifier under evaluation (``tools/call_classifier.py``). Called once per window, in
    order, from the detector's thread."""

    def __call__(self, view: WindowView) -> float: ...
