"""Spectrogram columns computed once on the server, sent to every browser as uint8 dB.

One column every ``hop`` samples (``sample_rate / columns_per_second``), a Hann-windowed FFT of
``n_fft`` samples (the next power of two >= 2 hop), power scaled so that a full-scale sine reads
0 dBFS in its bin, bins up to ``max_hz`` reduced (maximum) to at most ``n_bins`` rows, mapped
linearly from ``[db_min, db_max]`` dBFS to bytes 0..255.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["ColumnMaker"]

_FLOOR: Final = 1e-24  # power floor: -240 dB


class ColumnMaker:
    """Streaming columns of one stem (mono downmix). Not thread-safe.

    Parameters
    ----------
    sample_rate : int
        Hz.
    columns_per_second, max_hz : float
        Column rate and highest frequency (capped at Nyquist).
    n_bins : int
        Rows per column (at most).
    db_min, db_max : float
        dBFS of bytes 0 and 255.
    """

    def __init__(
        self,
        sample_rate: int,
        *,
        columns_per_second: float,
        max_hz: float,
        n_bins: int,
        db_min: float,
        db_max: float,
    ) -> None:
        self.sample_rate = sample_rate
        self.hop = max(1, round(sample_rate / columns_per_second))
        self.n_fft = 1 << max(4, int(np.ceil(np.log2(2 * self.hop))))
        self._window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)
        scale = (float(self._window.sum()) / 2) ** 2  # full-scale sine -> power 1
        self._scale = 1.0 / scale
        max_hz = min(max_hz, sample_rate / 2)
        n_fft_bins = int(max_hz * self.n_fft / sample_rate) + 1
        group = int(np.ceil(n_fft_bins / n_bins))
        self.n_bins = int(np.ceil(n_fft_bins / group))
        self._edges = np.arange(0, n_fft_bins, group)
        self._n_fft_bins = n_fft_bins
        self.max_hz = (self.n_bins * group) * sample_rate / self.n_fft
        """Frequency of the top edge of the top row, Hz."""
        self.db_min, self.db_max = db_min, db_max
        self._buffer = np.zeros(0, np.float32)
        self._next = 0  # index of the first buffered sample

    @property
    def column_seconds(self) -> float:
        """Time between columns, seconds."""
        return self.hop / self.sample_rate

    def reset(self, index: int) -> None:
        """Forget buffered samples; the next sample fed has index ``index``."""
        self._buffer = np.zeros(0, np.float32)
        self._next = index

    def feed(self, samples: NDArray[np.float32]) -> tuple[int, NDArray[np.uint8]]:
        """Add mono samples; returns ``(centre index of the first new column, columns of shape
        (n_columns, n_bins))``."""
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        n_columns = max(0, (self._buffer.shape[0] - self.n_fft) // self.hop + 1)
        centre = self._next + self.n_fft // 2
        if n_columns == 0:
            return centre, np.zeros((0, self.n_bins), np.uint8)
        frames = np.lib.stride_tricks.sliding_window_view(self._buffer, self.n_fft)[:: self.hop][
            :n_columns
        ]
        spectrum = np.fft.rfft(frames * self._window, axis=1)[:, : self._n_fft_bins]
        power = (spectrum.real**2 + spectrum.imag**2) * self._scale
        rows = np.maximum.reduceat(power, self._edges, axis=1)  # a tone keeps its level
        db = 10 * np.log10(np.maximum(rows, _FLOOR))
        scaled = (db - self.db_min) * (255.0 / (self.db_max - self.db_min))
        columns = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        used = n_columns * self.hop
        self._buffer = self._buffer[used:]
        self._next += used
        return centre, columns
