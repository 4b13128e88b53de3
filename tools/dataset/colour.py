"""Noise colouring for training: the same noise as another hydrophone, mounting or sea state
would record it.

:func:`random_colour` draws a spectral tilt, up to two peaking/notch bands, sometimes a low-pass
(an anti-alias filter or a band-limited recorder) and a slow gain change (a ship approaching,
swell), and :func:`apply_colour` applies them: zero-phase, in the frequency domain, over the
whole excerpt (the gain change in time).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["Colour", "apply_colour", "random_colour"]

_PIVOT_HZ: Final = 1000.0  # the tilt leaves this frequency's level unchanged
_MIN_HZ: Final = 20.0  # below this the tilt stops (no boost of what the high-pass removed)


@dataclass(frozen=True)
class Colour:
    """One colouring; levels in dB."""

    tilt_db_per_octave: float = 0.0
    """Level change per octave above ``_PIVOT_HZ`` (and the opposite below it)."""
    peaks: tuple[tuple[float, float, float], ...] = field(default_factory=tuple)
    """``(centre_hz, gain_db, width_octaves)``: Gaussian bumps (or notches) in log frequency."""
    lowpass_hz: float | None = None
    """Steep low-pass corner, Hz (None: none)."""
    gain_swing_db: float = 0.0
    """Peak level change of the slow gain modulation, dB."""
    gain_hz: float = 0.1
    """Rate of the slow gain modulation, Hz."""
    gain_phase: float = 0.0
    """Phase of the slow gain modulation, radians."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (mixture metadata)."""
        return asdict(self)


def response_db(colour: Colour, freqs: NDArray[np.floating]) -> NDArray[np.float64]:
    """The colouring's level change at ``freqs`` (Hz), dB."""
    f = np.maximum(np.asarray(freqs, np.float64), _MIN_HZ)
    octaves = np.log2(f / _PIVOT_HZ)
    level = colour.tilt_db_per_octave * octaves
    for centre, gain, width in colour.peaks:
        level = level + gain * np.exp(-0.5 * ((octaves - np.log2(centre / _PIVOT_HZ)) / width) ** 2)
    if colour.lowpass_hz is not None:
        above = np.log2(np.maximum(f / colour.lowpass_hz, 1.0))
        level = level - 48.0 * above  # 48 dB per octave above the corner
    return np.asarray(level, np.float64)


def apply_colour(x: NDArray[np.float32], rate: int, colour: Colour) -> NDArray[np.float32]:
    """``x`` (n_samples,) filtered by ``colour``'s response (zero phase) and gain-modulated;
    the overall level is left to the caller (the SNR is set afterwards)."""
    n = x.shape[0]
    spectrum = np.fft.rfft(x.astype(np.float64))
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    spectrum *= 10 ** (response_db(colour, freqs) / 20)
    y = np.fft.irfft(spectrum, n)
    if colour.gain_swing_db:
        t = np.arange(n) / rate
        swing = colour.gain_swing_db * np.sin(2 * np.pi * colour.gain_hz * t + colour.gain_phase)
        y *= 10 ** (swing / 20)
    return np.asarray(y, np.float32)


def random_colour(rng: np.random.Generator, rate: int) -> Colour:
    """Tilt U(-4, 4) dB/octave; 0-2 bands, centre log-uniform 100 Hz..0.8 Nyquist, gain
    U(-12, 12) dB, width U(0.2, 1) octave; a low-pass at U(0.3, 0.9) Nyquist with p = 0.3; a
    gain swing of U(0, 6) dB at U(0.05, 0.5) Hz."""
    nyquist = rate / 2
    peaks = tuple(
        (
            float(np.exp(rng.uniform(np.log(100.0), np.log(0.8 * nyquist)))),
            float(rng.uniform(-12, 12)),
            float(rng.uniform(0.2, 1.0)),
        )
        for _ in range(int(rng.integers(0, 3)))
    )
    lowpass = float(rng.uniform(0.3, 0.9) * nyquist) if rng.random() < 0.3 else None
    return Colour(
        tilt_db_per_octave=float(rng.uniform(-4, 4)),
        peaks=peaks,
        lowpass_hz=lowpass,
        gain_swing_db=float(rng.uniform(0, 6)),
        gain_hz=float(np.exp(rng.uniform(np.log(0.05), np.log(0.5)))),
        gain_phase=float(rng.uniform(0, 2 * np.pi)),
    )
