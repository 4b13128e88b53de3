"""tools.dataset.synthnoise: each synthetic noise has the spectrum and texture it is named for."""

from __future__ import annotations

import numpy as np
import pytest

from tools.dataset.mixtures import NOISE_STEM, Clip, Pool, make_mixture
from tools.dataset.synthnoise import DEFAULT_KINDS, KINDS, synthetic_noise

RATE = 32000
N = 2 * RATE


def _band_fraction(x: np.ndarray, low_hz: float, high_hz: float) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    hz = np.fft.rfftfreq(x.shape[0], 1 / RATE)
    return float(power[(hz >= low_hz) & (hz < high_hz)].sum() / power.sum())


def _crest(x: np.ndarray) -> float:
    return float(np.abs(x).max() / np.sqrt(np.mean(x**2)))


@pytest.mark.parametrize("kind", KINDS)
def test_unit_rms_deterministic_and_finite(kind: str) -> None:
    x, got = synthetic_noise(np.random.default_rng(1), N, RATE, kind)
    assert got == kind and x.shape == (N,) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)
    again, _ = synthetic_noise(np.random.default_rng(1), N, RATE, kind)
    np.testing.assert_array_equal(x, again)
    other, _ = synthetic_noise(np.random.default_rng(2), N, RATE, kind)
    assert not np.array_equal(x, other)


def test_each_kind_has_its_character() -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        hum, _ = synthetic_noise(rng, N, RATE, "hum")
        power = np.abs(np.fft.rfft(hum)) ** 2
        peak_hz = np.fft.rfftfreq(N, 1 / RATE)[np.argmax(power)]
        assert min(abs(peak_hz - 50), abs(peak_hz - 60)) < 1.5  # the fundamental dominates
        assert _band_fraction(hum, 0, 2100) > 0.999
        flow, _ = synthetic_noise(rng, N, RATE, "flow")
        assert _band_fraction(flow, 0, 500) > 0.99
        shrimp, _ = synthetic_noise(rng, N, RATE, "shrimp")
        assert _band_fraction(shrimp, 2000, RATE / 2) > 0.7 and _crest(shrimp) > 10  # impulsive
        rain, _ = synthetic_noise(rng, N, RATE, "rain")
        assert _band_fraction(rain, 2000, RATE / 2) > 0.5 and _crest(rain) > 5
    assert _crest(flow) < _crest(shrimp)


def test_unknown_kind_is_named() -> None:
    with pytest.raises(ValueError, match="'snow'"):
        synthetic_noise(np.random.default_rng(0), N, RATE, "snow")


def test_mixtures_add_synthetic_noise_to_the_noise_stem() -> None:
    """``p_synthetic`` = 1: every mixture's noise holds a synthetic kind (all four default ones
    over a few seeds, never ``pings`` unless asked for), recorded in the meta with its level;
    0 (the default) adds none; ``synthetic_kinds`` restricts the draw."""
    quiet = np.zeros(3 * RATE, np.float32)
    quiet[::100] = 1e-3  # a real noise file, almost silent
    clip = Clip("noise/q.flac", "noise-ship", "noise/q.flac", quiet, np.ones(8, bool), 1024)
    pool = Pool(RATE, [], [clip])
    kinds = set()
    for seed in range(12):
        mixture = make_mixture(
            pool, np.random.default_rng(seed), N, 0.0, with_call=False, p_synthetic=1.0
        )
        (entry,) = [n for n in mixture.meta["noises"] if "synthetic" in n]
        kinds.add(entry["synthetic"])
        assert -10 <= entry["gain_db"] <= 0
        assert np.isfinite(mixture.sources[NOISE_STEM]).all()
    assert kinds == set(DEFAULT_KINDS) and "pings" not in kinds
    plain = make_mixture(pool, np.random.default_rng(0), N, 0.0, with_call=False)
    assert all("synthetic" not in n for n in plain.meta["noises"])

    def only(kind: str) -> list[str]:
        mixture = make_mixture(
            pool,
            np.random.default_rng(0),
            N,
            0.0,
            with_call=False,
            p_synthetic=1.0,
            synthetic_kinds=[kind],
        )
        return [n["synthetic"] for n in mixture.meta["noises"] if "synthetic" in n]

    assert only("pings") == ["pings"]
    with pytest.raises(ValueError, match="'snow'"):
        only("snow")


def test_pings_are_steady_pulsed_tones() -> None:
    """Pings are gated (a tenth of the frames at least 20 dB under the loudest, never all of
    them loud) tones in 1.5-16 kHz."""
    for seed in range(6):
        x, _ = synthetic_noise(np.random.default_rng(seed), N, RATE, "pings")
        frames = np.lib.stride_tricks.sliding_window_view(x, 1024)[::256] * np.hanning(1024)
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        level = 10 * np.log10(power.sum(axis=1) + 1e-20)
        loud = level > level.max() - 6
        assert 0 < loud.mean() < 0.9  # pulsed, not continuous
        assert np.percentile(level, 10) < level.max() - 20
        peak_hz = np.argmax(power[loud], axis=1) * RATE / 1024
        assert (peak_hz > 1400).all() and (peak_hz < 16100).all()
        assert _band_fraction(x, 1400, RATE / 2) > 0.9
