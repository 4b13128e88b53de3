"""Level meters for the ``levels`` topic: RMS and peak per signal over fixed windows.

The formulas (dBFS, dB re 1 µPa) are in :mod:`streamsep.net.protocol` and ``docs/protocol.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamsep.net import protocol as proto

__all__ = ["Calibration", "LevelMeter"]


@dataclass(frozen=True)
class Calibration:
    """The receive chain from water pressure to sample values."""

    sensitivity_db_re_1v_per_upa: float
    """Hydrophone sensitivity, dB re 1 V/µPa (e.g. -165)."""
    gain_db: float = 0.0
    """Gain between hydrophone and converter, dB."""
    full_scale_volts: float = 1.0
    """Converter input voltage (peak) giving sample value 1.0, volts."""

    def db_re_1upa(self, dbfs: float) -> float:
        """Sound pressure level in dB re 1 µPa of a level in dBFS."""
        return proto.dbfs_to_db_re_1upa(
            dbfs, self.sensitivity_db_re_1v_per_upa, self.gain_db, self.full_scale_volts
        )


class LevelMeter:
    """Accumulates the RMS and peak of several aligned signals over windows.

    Parameters
    ----------
    names : sequence of str
        One name per signal (the keys of the ``levels`` object).
    window_samples : int
        Samples per channel in a window (>= 1).
    calibration : Calibration, optional
        Adds ``rms_db_re_1upa`` and ``peak_db_re_1upa``.

    Not thread-safe.
    """

    def __init__(
        self, names: Sequence[str], window_samples: int, calibration: Calibration | None = None
    ) -> None:
        self.names = tuple(names)
        self.window_samples = max(1, window_samples)
        self.calibration = calibration
        self._sum_squares = np.zeros(len(self.names))
        self._peak = np.zeros(len(self.names))
        self._values = 0  # samples times channels per signal
        self._count = 0
        self._first = 0

    def add(
        self, first_sample: int, signals: Sequence[NDArray[np.float32]], end: bool = False
    ) -> tuple[int, int, dict[str, dict[str, float]]] | None:
        """Add aligned ``signals`` (each (n_samples, n_channels)) starting at ``first_sample``.

        Returns
        -------
        tuple or None
            ``(first_sample, n_samples, levels)`` when a window is complete (or ``end`` is
            set and something was measured): ``levels[name]`` has ``rms_dbfs``, ``peak_dbfs``
            and, if calibrated, ``rms_db_re_1upa`` and ``peak_db_re_1upa``, rounded to 0.001 dB.
        """
        if self._count == 0:
            self._first = first_sample
        for i, x in enumerate(signals):
            if x.size:
                flat = x.ravel()
                self._sum_squares[i] += float(np.dot(flat, flat))
                self._peak[i] = max(self._peak[i], float(np.max(np.abs(flat))))
        if signals:
            self._count += signals[0].shape[0]
            self._values += signals[0].size
        if self._count == 0 or (self._count < self.window_samples and not end):
            return None
        levels = {name: self._level(i) for i, name in enumerate(self.names)}
        result = (self._first, self._count, levels)
        self._sum_squares[:] = 0.0
        self._peak[:] = 0.0
        self._count = self._values = 0
        return result

    def _level(self, i: int) -> dict[str, Any]:
        rms = proto.level_dbfs(float(np.sqrt(self._sum_squares[i] / max(self._values, 1))))
        peak = proto.level_dbfs(float(self._peak[i]))
        entry = {"rms_dbfs": round(rms, 3), "peak_dbfs": round(peak, 3)}
        if self.calibration is not None:
            entry["rms_db_re_1upa"] = round(self.calibration.db_re_1upa(rms), 3)
            entry["peak_db_re_1upa"] = round(self.calibration.db_re_1upa(peak), 3)
        return entry
