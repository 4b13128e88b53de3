"""tools.dataset.colour: the noise colouring does what it draws (tilt, bands, low-pass, gain
swing), and mixtures use it only when asked."""

from __future__ import annotations

import numpy as np
import pytest

from tools.dataset.colour import Colour, apply_colour, random_colour
from tools.dataset.mixtures import NOISE_STEM, Clip, Pool, make_mixture

RATE = 32000
N = 8 * RATE


def _octave_db(x: np.ndarray, centre_hz: float) -> float:
    """Mean power (dB) in the octave around ``centre_hz``."""
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    hz = np.fft.rfftfreq(x.shape[0], 1 / RATE)
    band = (hz >= centre_hz / np.sqrt(2)) & (hz < centre_hz * np.sqrt(2))
    return float(10 * np.log10(power[band].mean()))


def _white(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(N).astype(np.float32)


def test_tilt_band_and_lowpass_shape_the_spectrum() -> None:
    white = _white()
    tilted = apply_colour(white, RATE, Colour(tilt_db_per_octave=3.0))
    change = [_octave_db(tilted, f) - _octave_db(white, f) for f in (250, 1000, 4000)]
    assert change == pytest.approx([-6.0, 0.0, 6.0], abs=0.3)
    notched = apply_colour(white, RATE, Colour(peaks=((2000.0, -12.0, 1.0),)))
    assert _octave_db(notched, 2000) - _octave_db(white, 2000) < -10
    assert _octave_db(notched, 125) - _octave_db(white, 125) == pytest.approx(0, abs=0.3)
    low = apply_colour(white, RATE, Colour(lowpass_hz=4000.0))
    assert _octave_db(low, 11000) - _octave_db(white, 11000) < -40
    assert _octave_db(low, 1000) - _octave_db(white, 1000) == pytest.approx(0, abs=0.2)


def test_slow_gain_swing() -> None:
    white = _white(1)
    swung = apply_colour(white, RATE, Colour(gain_swing_db=6.0, gain_hz=0.25))
    rms = [
        10 * np.log10(np.mean(swung[i : i + RATE // 10].astype(np.float64) ** 2))
        - 10 * np.log10(np.mean(white[i : i + RATE // 10].astype(np.float64) ** 2))
        for i in (RATE * 1 - RATE // 20, RATE * 3 - RATE // 20)  # the swing's peak and trough
    ]
    assert rms == pytest.approx([6.0, -6.0], abs=0.3)


def test_random_colour_is_deterministic_and_in_range() -> None:
    for seed in range(20):
        c = random_colour(np.random.default_rng(seed), RATE)
        assert c == random_colour(np.random.default_rng(seed), RATE)
        assert -4 <= c.tilt_db_per_octave <= 4 and len(c.peaks) <= 2
        assert c.lowpass_hz is None or 0.3 * RATE / 2 <= c.lowpass_hz <= 0.9 * RATE / 2
        assert 0 <= c.gain_swing_db <= 6 and 0.05 <= c.gain_hz <= 0.5


def test_mixtures_colour_the_noise_only_when_asked() -> None:
    noise = _white(2) * np.float32(1e-2)
    clip = Clip("noise/w.flac", "noise-ship", "noise/w.flac", noise, np.ones(8, bool), 1024)
    pool = Pool(RATE, [], [clip])
    coloured = make_mixture(pool, np.random.default_rng(3), 2 * RATE, 0.0, with_call=False,
                            p_colour=1.0)  # fmt: skip
    (entry,) = [n for n in coloured.meta["noises"] if "colour" in n]
    assert set(entry["colour"]) >= {"tilt_db_per_octave", "peaks", "lowpass_hz"}
    assert np.isfinite(coloured.sources[NOISE_STEM]).all()
    plain = make_mixture(pool, np.random.default_rng(3), 2 * RATE, 0.0, with_call=False)
    again = make_mixture(pool, np.random.default_rng(3), 2 * RATE, 0.0, with_call=False,
                         p_colour=0.0)  # fmt: skip
    assert all("colour" not in n for n in plain.meta["noises"])
    np.testing.assert_array_equal(plain.mix, again.mix)  # p = 0 draws nothing extra
