"""Level-independent features of one detector window, for the call classifier experiment
(``tools/call_classifier.py``).

Every feature is computed from what the detector has of a window
(:class:`streamsep.events.detector.WindowView`: the orca stem's in-band power spectrum and
samples, its dB terms) and from the previous window's orca spectrum, so it adds no latency and
gives the same values however the audio is chunked. None depends on the absolute level.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import NDArray

from streamsep.events.terms import WindowView

__all__ = ["FEATURE_NAMES", "SUB_BANDS_HZ", "WindowFeatures"]

SUB_BANDS_HZ: Final = (500.0, 1000.0, 2000.0, 3000.0, 4500.0, 6500.0, 9000.0, 12000.0, 15000.0)
"""Edges of the sub-bands whose share of the band energy is a feature, Hz."""

FEATURE_NAMES: Final = (
    "orca_minus_noise_db",  # in-band orca over noise stem power, dB (0 without a noise stem)
    "orca_minus_background_db",  # the detector's background term, dB
    "flatness_db",  # spectral flatness of the orca stem's band, dB
    # share of the band's energy in each sub-band, dB
    *(
        f"share_{int(a)}_{int(b)}_db"
        for a, b in zip(SUB_BANDS_HZ[:-1], SUB_BANDS_HZ[1:], strict=True)
    ),
    "continuity",  # correlation of the magnitude spectrum with the previous window's
    "harmonicity",  # highest spectral autocorrelation at 250-3000 Hz spacings
    "peak_shift_octaves",  # move of the strongest bin since the previous window (<= 1)
    "crest_db",  # loudest 10 ms over the window's mean power, dB
)
"""Names (and order) of the features, as stored with a classifier's weights."""

_HARMONIC_LAGS_HZ: Final = (250.0, 3000.0)  # harmonic spacings of pulsed calls
_CREST_FRAMES: Final = 10  # sub-frames per window for the crest factor
_TINY: Final = 1e-30


class WindowFeatures:
    """Computes :data:`FEATURE_NAMES` per window; keeps the previous window's spectrum.

    Parameters
    ----------
    freqs : ndarray, shape (n_bins,)
        Centre frequencies of the in-band bins, Hz (ascending, evenly spaced).
    """

    def __init__(self, freqs: NDArray[np.float64]) -> None:
        self.freqs = freqs
        step = float(freqs[1] - freqs[0]) if freqs.size > 1 else 1.0
        self._sub = [
            (freqs >= a) & (freqs < b)
            for a, b in zip(SUB_BANDS_HZ[:-1], SUB_BANDS_HZ[1:], strict=True)
        ]
        self._lags = (
            max(1, int(_HARMONIC_LAGS_HZ[0] / step)),
            max(2, int(_HARMONIC_LAGS_HZ[1] / step)),
        )
        self.reset()

    def reset(self) -> None:
        """Forget the previous window (a new stream)."""
        self._previous_magnitude: NDArray[np.float64] | None = None
        self._previous_peak_hz: float | None = None

    def __call__(self, view: WindowView) -> NDArray[np.float64]:
        """The feature vector of one window, shape (len(FEATURE_NAMES),)."""
        orca_db, noise_db = view.orca_db, view.noise_db
        p = np.maximum(view.orca_spectrum, _TINY)
        total = float(p.sum())
        shares = [
            10.0 * math.log10(max(float(p[m].sum()) / total, 1e-6)) if m.any() else -60.0
            for m in self._sub
        ]
        magnitude = np.sqrt(p)
        if self._previous_magnitude is None:
            continuity = 0.0
        else:
            a = magnitude - magnitude.mean()
            b = self._previous_magnitude - self._previous_magnitude.mean()
            denominator = math.sqrt(float((a * a).sum() * (b * b).sum()))
            continuity = float((a * b).sum()) / denominator if denominator > 0 else 0.0
        self._previous_magnitude = magnitude
        peak_hz = float(self.freqs[int(np.argmax(p))]) if self.freqs.size else 0.0
        if self._previous_peak_hz is None or peak_hz <= 0 or self._previous_peak_hz <= 0:
            shift = 0.0
        else:
            shift = min(1.0, abs(math.log2(peak_hz / self._previous_peak_hz)))
        self._previous_peak_hz = peak_hz
        features = np.array(
            [
                float(np.clip(orca_db - (noise_db if noise_db is not None else orca_db), -40, 40)),
                float(np.clip(orca_db - view.background_db, -20, 60)),
                float(max(view.flatness_db, -120.0)),
                *shares,
                continuity,
                _harmonicity(magnitude, self._lags),
                shift,
                _crest_db(view.orca),
            ]
        )
        return features


def _harmonicity(magnitude: NDArray[np.float64], lags: tuple[int, int]) -> float:
    """Highest normalised autocorrelation of the (mean-removed) magnitude spectrum over the
    harmonic spacings ``lags`` (bins): near 1 for an evenly spaced harmonic stack."""
    m = magnitude - magnitude.mean()
    energy = float((m * m).sum())
    low, high = lags
    if energy <= 0 or m.size <= low + 1:
        return 0.0
    high = min(high, m.size - 1)
    spectrum = np.fft.rfft(m, n=2 * m.size)
    ac = np.fft.irfft(np.abs(spectrum) ** 2)[: m.size]
    return float(np.max(ac[low : high + 1]) / energy)


def _crest_db(window: NDArray[np.float64]) -> float:
    """Loudest sub-frame's power over the window's mean power, dB (clicks and knocks high)."""
    x = window.mean(axis=1) if window.ndim == 2 else window
    n = x.shape[0] // _CREST_FRAMES
    if n == 0:
        return 0.0
    frames = (x[: n * _CREST_FRAMES].reshape(_CREST_FRAMES, n) ** 2).mean(axis=1)
    mean = float(frames.mean())
    return 10.0 * math.log10(float(frames.max()) / mean) if mean > 0 else 0.0
