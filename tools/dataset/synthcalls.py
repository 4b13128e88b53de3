"""Synthetic orca-like training targets: pulsed calls, whistles and echolocation click trains.

Each generator returns unit-peak float32 audio at ``rate`` Hz, the sound with 0.1-0.3 s of
silence either side, drawn from ``rng`` only. Rough models after the descriptions of killer
whale sounds (Ford 1989, Miller 2006, Riesch et al. 2006, Au et al. 2004), meant to widen what
the network has heard as orca, not to imitate one population:

* ``pulsed``: a pulsed call as a harmonic stack. The pulse repetition rate (the band spacing)
  starts at 400-2000 Hz and follows a smooth contour (an overall sweep of x0.6-1.6, up to two
  half-cycles of a ±20 % bend, an abrupt step of x0.7-1.4 between call segments with p 0.3),
  over 0.4-1.6 s. The bands up to 15 kHz (below 0.45 of the rate) take a spectral envelope
  peaking at 1-6 kHz (0.5-1.5 octaves wide, a -30 dB floor), ±3 dB per band; with p 0.5 an
  amplitude modulation at 30-200 Hz (depth 0.1-0.5) adds sidebands; with p 0.4 a second voice
  (a high-frequency component) of one to three bands at 4-12 kHz, 6-20 dB down. 20-80 ms
  attack, 30-150 ms release.
* ``whistle``: one tonal contour starting at 2-14 kHz over 0.5-3 s (a sweep of x0.7-1.4 plus
  two to four slow wiggles of ±2-6 % each, kept within 1.5-14 kHz and below 0.4 of the rate),
  its second harmonic 10-25 dB down where it fits, 20-80 ms attack, 30-150 ms release.
* ``clicks``: an echolocation click train of 0.3-2 s, inter-click intervals starting at
  20-200 ms and ending x0.3-1.5 of that (a buzz when they shorten), each click a
  Gaussian-windowed tone burst (centre 6-14 kHz below 0.4 of the rate, 2-6 cycles) with
  ±3 dB jitter along a smooth envelope.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

from streamsep.errors import ConfigError

__all__ = ["CALL_KINDS", "check_call_kinds", "synthetic_call"]

Generator = Callable[[np.random.Generator, int], NDArray[np.float64]]

_MAX_BAND_HZ: Final = 15000.0


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _envelope(rng: np.random.Generator, n: int, rate: int) -> NDArray[np.float64]:
    """Raised-cosine attack (20-80 ms) and release (30-150 ms) over ``n`` samples."""
    env = np.ones(n)
    for length, tail in ((rng.uniform(0.02, 0.08), False), (rng.uniform(0.03, 0.15), True)):
        k = min(int(length * rate), n // 2)
        if k > 0:
            ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
            if tail:
                env[-k:] *= ramp[::-1]
            else:
                env[:k] *= ramp
    return env


def _contour(rng: np.random.Generator, n: int, start_hz: float, step: bool) -> NDArray[np.float64]:
    """A smooth frequency contour (Hz) of ``n`` samples: sweep, bends, maybe a segment step."""
    t = np.linspace(0.0, 1.0, n)
    sweep = _log_uniform(rng, 0.6, 1.6) ** t
    half_cycles = int(rng.integers(0, 3))
    bend = 1.0 + rng.uniform(-0.2, 0.2) * np.sin(np.pi * half_cycles * t)
    contour = start_hz * sweep * bend
    if step and rng.random() < 0.3:
        at = int(rng.uniform(0.3, 0.7) * n)
        contour[at:] *= _log_uniform(rng, 0.7, 1.4)
    return contour


def _harmonic_stack(
    rng: np.random.Generator,
    f0: NDArray[np.float64],
    rate: int,
    n_bands: int,
    gains: NDArray[np.float64],
) -> NDArray[np.float64]:
    """``sum_k gains[k] sin(k phase + phi_k)`` for k = 1..n_bands, each band faded out where
    it would pass 0.45 of the rate (no aliasing)."""
    phase = 2 * np.pi * np.cumsum(f0) / rate
    limit = min(0.45 * rate, _MAX_BAND_HZ)
    out = np.zeros_like(f0)
    for k in range(1, n_bands + 1):
        fits = np.clip((limit - k * f0) / (0.05 * limit), 0.0, 1.0)
        if fits.any():
            out += gains[k - 1] * fits * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return out


def _pulsed(rng: np.random.Generator, rate: int) -> NDArray[np.float64]:
    n = int(rng.uniform(0.4, 1.6) * rate)
    f0 = _contour(rng, n, _log_uniform(rng, 400, 2000), step=True)
    n_bands = max(1, int(min(0.45 * rate, _MAX_BAND_HZ) / float(f0.min())))
    centre, width = _log_uniform(rng, 1000, 6000), rng.uniform(0.5, 1.5)
    band_hz = np.arange(1, n_bands + 1) * float(np.median(f0))
    octaves = np.log2(band_hz / centre) / width
    gains_db = np.maximum(-12.0 * octaves**2, -30.0) + rng.uniform(-3, 3, n_bands)
    x = _harmonic_stack(rng, f0, rate, n_bands, 10 ** (gains_db / 20))
    if rng.random() < 0.5:  # amplitude modulation: sidebands around each band
        t = np.arange(n) / rate
        x *= 1.0 + rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * rng.uniform(30, 200) * t)
    if rng.random() < 0.4:  # a second voice, the high-frequency component
        top = min(12000.0, 0.4 * rate)
        hf = _contour(rng, n, _log_uniform(rng, min(4000.0, top / 2), top), step=False)
        n_hf = int(rng.integers(1, 4))
        hf_gains = 10 ** (rng.uniform(-20, -6) / 20) * 10 ** (-6.0 * np.arange(n_hf) / 20)
        x += float(np.max(np.abs(x))) * _harmonic_stack(rng, hf, rate, n_hf, hf_gains)
    return x * _envelope(rng, n, rate)


def _whistle(rng: np.random.Generator, rate: int) -> NDArray[np.float64]:
    n = int(rng.uniform(0.5, 3.0) * rate)
    t = np.linspace(0.0, 1.0, n)
    top = min(14000.0, 0.4 * rate)
    start = _log_uniform(rng, 2000, top)
    wiggle = sum(
        rng.uniform(0.02, 0.06) * np.sin(2 * np.pi * rng.uniform(0.5, 3.0) * t + rng.uniform(0, 6))
        for _ in range(int(rng.integers(2, 5)))
    )
    f0 = np.clip(start * _log_uniform(rng, 0.7, 1.4) ** t * (1.0 + wiggle), 1500.0, top)
    gains = np.array([1.0, 10 ** (rng.uniform(-25, -10) / 20)])
    return _harmonic_stack(rng, f0, rate, 2, gains) * _envelope(rng, n, rate)


def _clicks(rng: np.random.Generator, rate: int) -> NDArray[np.float64]:
    n = int(rng.uniform(0.3, 2.0) * rate)
    first = rng.uniform(0.02, 0.2)
    last = first * rng.uniform(0.3, 1.5)
    times, t = [], rng.uniform(0, first)
    while t < n / rate:
        times.append(t)
        t += first + (last - first) * t / (n / rate)
    fc = rng.uniform(6000, min(14000.0, 0.4 * rate))
    cycles = rng.uniform(2, 6)
    sigma = cycles / fc / 2.5  # Gaussian window (s)
    half = int(np.ceil(3 * sigma * rate))
    tt = np.arange(-half, half + 1) / rate
    click = np.exp(-0.5 * (tt / sigma) ** 2) * np.cos(2 * np.pi * fc * tt + rng.uniform(0, 6))
    x = np.zeros(n + 2 * half + 1)
    trend = np.sin(np.pi * np.linspace(0.1, 0.9, len(times))) if times else np.ones(0)
    for i, at in enumerate(times):
        start = int(at * rate)
        x[start : start + click.shape[0]] += trend[i] * 10 ** (rng.uniform(-3, 3) / 20) * click
    return x[:n]


_GENERATORS: Final[dict[str, Generator]] = {
    "pulsed": _pulsed,
    "whistle": _whistle,
    "clicks": _clicks,
}
CALL_KINDS: Final = tuple(_GENERATORS)
"""The synthetic call kinds."""


def check_call_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """``kinds`` as a tuple, checked: non-empty, each one of :data:`CALL_KINDS`.

    Raises
    ------
    ConfigError
        Naming the unknown kind, or if ``kinds`` is empty.
    """
    if not kinds:
        raise ConfigError(f"synthetic call kinds: expected at least one of {list(CALL_KINDS)}")
    for kind in kinds:
        if kind not in _GENERATORS:
            raise ConfigError(
                f"synthetic call kinds: unknown kind {kind!r} (one of {list(CALL_KINDS)})"
            )
    return tuple(kinds)


def synthetic_call(
    rng: np.random.Generator, rate: int, kinds: Sequence[str] = CALL_KINDS
) -> tuple[NDArray[np.float32], str]:
    """One synthetic orca sound of a kind drawn uniformly from ``kinds``.

    Returns
    -------
    (audio, kind)
        ``audio`` of shape (n_samples,) float32 at ``rate`` Hz, peak 1, with 0.1-0.3 s of
        silence before and after the sound; ``kind`` the generator used.
    """
    kind = str(kinds[int(rng.integers(len(kinds)))])
    sound = _GENERATORS[kind](rng, rate)
    before, after = (int(rng.uniform(0.1, 0.3) * rate) for _ in range(2))
    x = np.concatenate([np.zeros(before), sound, np.zeros(after)])
    peak = float(np.max(np.abs(x)))
    return np.asarray(x / peak if peak > 0 else x, np.float32), kind
