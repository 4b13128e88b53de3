"""Synthetic ocean noises the shared recordings lack: rain, snapping shrimp, mains hum, flow, pings.

Each generator returns ``n_samples`` of unit-RMS float32 audio at ``rate`` Hz drawn from
``rng`` only. They are rough models, meant to widen what the network has heard, not to imitate
one site:

* ``rain``: drops as a Poisson process (50-2000 per second) with log-normal amplitudes; each
  drop a broadband click (a decaying noise burst, 0.1-1 ms time constant), half of them followed
  by a bubble's ring (a damped sine at 13-16 kHz, or just below Nyquist), over a faint pink
  background (-26 dB).
* ``shrimp``: snapping shrimp, 200-3000 snaps per second, each a ~0.1 ms broadband pulse with a
  heavy-tailed (Pareto) amplitude and random sign, high-passed at 2 kHz.
* ``hum``: 50 or 60 Hz (±1 %) and its harmonics up to 2 kHz, amplitudes falling as
  ``1 / k^a`` (``a`` in 0.5-1.5), random phases, a slow ±20 % amplitude wobble.
* ``flow``: flow noise on the hydrophone: white noise low-passed at 50-300 Hz, in gusts (a
  slowly varying log-normal envelope).
* ``pings``: man-made pulsed tones (echosounders, acoustic pingers and deterrents, modems):
  one to three carriers at 1.5-16 kHz (log-uniform, below 0.45 of the rate), each a steady
  frequency (no modulation) with up to two harmonics at 2x and 3x (a square-ish wave, p 0.5),
  pulses of 30-500 ms (at most half the mean interval) with 2 ms ramps, repeated every
  0.1-2 s (±3 % jitter) or at random (Poisson, 0.5-10 per second), each pulse within ±1 dB
  of its carrier's level, over a faint pink background (-30 dB). Not in
  :data:`DEFAULT_KINDS`: opt in with ``kinds``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy import signal

__all__ = ["DEFAULT_KINDS", "KINDS", "check_kinds", "synthetic_noise"]

Generator = Callable[[np.random.Generator, int, int], NDArray[np.float64]]


def _unit_rms(x: NDArray[np.float64]) -> NDArray[np.float32]:
    rms = float(np.sqrt(np.mean(x**2)))
    return np.asarray(x / rms if rms > 0 else x, np.float32)


def _pink(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[1:] /= np.sqrt(np.arange(1, spectrum.shape[0]))
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n)


def _events(rng: np.random.Generator, n: int, rate: int, per_second: float) -> NDArray[np.int64]:
    """Sample indices of a Poisson process of ``per_second`` events."""
    count = int(rng.poisson(per_second * n / rate))
    return np.sort(rng.integers(0, n, size=count))


def _rain(rng: np.random.Generator, n: int, rate: int) -> NDArray[np.float64]:
    events = _events(rng, n, rate, float(np.exp(rng.uniform(np.log(50), np.log(2000)))))
    amplitudes = np.asarray(rng.lognormal(0.0, 1.0, events.shape[0]))
    drops = np.zeros(n)
    np.add.at(drops, events, amplitudes)
    tau = rng.uniform(0.1e-3, 1e-3) * rate
    length = int(5 * tau) + 1
    click = rng.standard_normal(length) * np.exp(-np.arange(length) / tau)
    out = np.convolve(drops, click)[:n]
    ringing: NDArray[np.bool_] = np.asarray(rng.random(events.shape[0]) < 0.5)
    delays = rng.integers(0, 32, int(np.count_nonzero(ringing)))
    rings = np.zeros(n)
    np.add.at(rings, np.minimum(events[ringing] + delays, n - 1), 0.5 * amplitudes[ringing])
    hz = min(float(rng.uniform(13_000, 16_000)), 0.45 * rate)
    tau_ring = rng.uniform(2e-3, 5e-3) * rate
    t = np.arange(int(4 * tau_ring) + 1)
    out += np.convolve(rings, np.sin(2 * np.pi * hz * t / rate) * np.exp(-t / tau_ring))[:n]
    rms = float(np.sqrt(np.mean(out**2)))
    return out + 0.05 * max(rms, 1e-3) * _unit_rms(_pink(rng, n))


def _shrimp(rng: np.random.Generator, n: int, rate: int) -> NDArray[np.float64]:
    impulses = np.zeros(n)
    events = _events(rng, n, rate, float(np.exp(rng.uniform(np.log(200), np.log(3000)))))
    impulses[events] = (rng.pareto(1.5, events.shape[0]) + 1.0) * rng.choice(
        [-1.0, 1.0], events.shape[0]
    )
    pulse = np.exp(-np.arange(int(0.3e-3 * rate) + 1) / (0.1e-3 * rate))
    snaps = np.convolve(impulses, pulse)[:n]
    sos = signal.butter(2, 2000, "highpass", fs=rate, output="sos")
    return signal.sosfilt(sos, snaps)


def _hum(rng: np.random.Generator, n: int, rate: int) -> NDArray[np.float64]:
    f0 = float(rng.choice([50.0, 60.0]) * rng.uniform(0.99, 1.01))
    slope = float(rng.uniform(0.5, 1.5))
    t = np.arange(n) / rate
    out = np.zeros(n)
    for k in range(1, int(min(2000.0, 0.45 * rate) // f0) + 1):
        out += np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k**slope
    wobble = 1.0 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t + rng.uniform(0, 2 * np.pi))
    return out * wobble


def _flow(rng: np.random.Generator, n: int, rate: int) -> NDArray[np.float64]:
    cutoff = float(rng.uniform(50, 300))
    sos = signal.butter(4, cutoff, "lowpass", fs=rate, output="sos")
    rumble = signal.sosfilt(sos, rng.standard_normal(n))
    n_knots = max(2, int(n / rate * 4) + 2)  # a new gust level every 0.25 s
    levels = rng.normal(0.0, 0.7, n_knots)
    envelope = np.exp(np.interp(np.arange(n), np.linspace(0, n - 1, n_knots), levels))
    return rumble * envelope


def _pings(rng: np.random.Generator, n: int, rate: int) -> NDArray[np.float64]:
    out = np.zeros(n)
    ramp = max(1, int(2e-3 * rate))
    top = min(16_000.0, 0.45 * rate)
    for _ in range(int(rng.integers(1, 4))):
        hz = float(np.exp(rng.uniform(np.log(1_500.0), np.log(top))))
        harmonics = [1.0]
        if rng.random() < 0.5:
            harmonics += [1.0 / k for k in (2, 3) if k * hz < 0.45 * rate]
        regular = bool(rng.random() < 0.5)
        interval = rng.uniform(0.1, 2.0) if regular else 1.0 / rng.uniform(0.5, 10.0)  # s
        seconds = min(float(np.exp(rng.uniform(np.log(0.03), np.log(0.5)))), 0.5 * interval)
        length = max(2 * ramp + 1, int(seconds * rate))
        t = np.arange(length) / rate
        pulse = sum(a * np.sin(2 * np.pi * (k + 1) * hz * t) for k, a in enumerate(harmonics))
        envelope = np.ones(length)
        envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
        envelope[-ramp:] = np.linspace(1.0, 0.0, ramp)
        pulse = pulse * envelope
        if regular:
            period = interval * rate
            starts = np.arange(rng.uniform(0, period), n, period)
            starts = starts + rng.uniform(-0.03, 0.03, starts.shape[0]) * period
        else:
            starts = _events(rng, n, rate, 1.0 / interval).astype(np.float64)
        level = 10 ** (rng.uniform(-10.0, 0.0) / 20)
        for start in (int(i) for i in starts):
            if 0 <= start < n:
                stop = min(n, start + length)
                out[start:stop] += level * 10 ** (rng.uniform(-1, 1) / 20) * pulse[: stop - start]
    rms = float(np.sqrt(np.mean(out**2)))
    return out + 0.03 * max(rms, 1e-3) * _unit_rms(_pink(rng, n))


_GENERATORS: Final[dict[str, Generator]] = {
    "rain": _rain,
    "shrimp": _shrimp,
    "hum": _hum,
    "flow": _flow,
    "pings": _pings,
}
KINDS: Final = tuple(_GENERATORS)
"""The kinds :func:`synthetic_noise` makes."""
DEFAULT_KINDS: Final = ("rain", "shrimp", "hum", "flow")
"""The kinds drawn from when none are given (those of the recipes before ``pings`` existed)."""


def synthetic_noise(
    rng: np.random.Generator,
    n_samples: int,
    rate: int,
    kind: str | None = None,
    kinds: Sequence[str] = DEFAULT_KINDS,
) -> tuple[NDArray[np.float32], str]:
    """``n_samples`` of unit-RMS synthetic noise at ``rate`` Hz and its kind.

    Parameters
    ----------
    rng : numpy Generator
        The only source of randomness.
    n_samples : int
    rate : int
        Sample rate, Hz.
    kind : str, optional
        One of :data:`KINDS`; default: drawn uniformly from ``kinds`` with ``rng``.
    kinds : sequence of str
        What ``kind=None`` draws from (:data:`DEFAULT_KINDS`).

    Raises
    ------
    ValueError
        For an unknown ``kind``.
    """
    if kind is None:
        check_kinds(kinds)
        kind = kinds[int(rng.integers(len(kinds)))]
    if kind not in _GENERATORS:
        raise ValueError(f"synthetic noise kind must be one of {list(KINDS)}, got {kind!r}")
    return _unit_rms(_GENERATORS[kind](rng, n_samples, rate)), kind


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """``kinds`` as a tuple; ValueError if it is empty or names an unknown kind."""
    unknown = [k for k in kinds if k not in _GENERATORS]
    if not kinds or unknown:
        raise ValueError(
            f"synthetic noise kinds must be a non-empty subset of {list(KINDS)}, got {list(kinds)}"
        )
    return tuple(kinds)
