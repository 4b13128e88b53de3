"""tools.dataset.codec: the AAC round trip is sample-aligned and really codes; mixtures use it."""

from __future__ import annotations

import numpy as np
import pytest

from tools.dataset.codec import aac_round_trip
from tools.dataset.mixtures import NOISE_STEM, ORCA_STEM, Clip, Pool, make_mixture

RATE = 32000


def _signal(seconds: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    chirp = 0.1 * np.sin(2 * np.pi * 2000 * t * (1 + 0.2 * t))
    return (chirp + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def _snr_db(x: np.ndarray, y: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((y - x) ** 2.0)))


def test_round_trip_keeps_shape_and_alignment_and_loses_more_at_lower_rates() -> None:
    x = _signal()
    high, low = aac_round_trip(x, RATE, 160), aac_round_trip(x, RATE, 32)
    assert high.shape == x.shape and high.dtype == np.float32
    lags = np.arange(-64, 65)
    middle = slice(RATE // 2, 2 * RATE)
    corr = [float(np.dot(np.roll(high, -lag)[middle], x[middle])) for lag in lags]
    assert lags[int(np.argmax(corr))] == 0  # no delay: the priming frame is cut
    assert _snr_db(x, high) > 20  # close to the input ...
    assert _snr_db(x, low) < _snr_db(x, high) - 3  # ... and coded: 32 kbit/s loses more
    assert not np.array_equal(high, x)


def test_round_trip_names_bad_input() -> None:
    with pytest.raises(ValueError, match="mono"):
        aac_round_trip(np.zeros((10, 2), np.float32), RATE, 64)
    with pytest.raises(ValueError, match="bit rate"):
        aac_round_trip(np.zeros(1000, np.float32), RATE, 0)


def test_mixture_with_aac_codes_only_the_mix_and_keeps_the_sum() -> None:
    """``p_aac`` = 1 codes the mix; the orca stem is the uncoded call, the coding error joins
    the noise stem, and the draws come last, so the calls are those of the uncoded mixture."""
    noise = _signal(4.0)[::-1].copy()
    call = _signal(1.0)
    pool = Pool(
        RATE,
        [Clip("calls/c.flac", "orca-call", "calls/c.flac", call, np.ones(32, bool), 1024)],
        [Clip("noise/n.flac", "noise-ship", "noise/n.flac", noise, np.ones(64, bool), 1024)],
    )
    plain = make_mixture(pool, np.random.default_rng(3), 2 * RATE, 0.0)
    coded = make_mixture(pool, np.random.default_rng(3), 2 * RATE, 0.0, p_aac=1.0)
    np.testing.assert_array_equal(coded.sources[ORCA_STEM], plain.sources[ORCA_STEM])
    np.testing.assert_allclose(
        coded.mix, coded.sources[ORCA_STEM] + coded.sources[NOISE_STEM], atol=1e-6
    )
    assert not np.allclose(coded.mix, plain.mix, atol=1e-6)
    assert _snr_db(plain.mix, coded.mix) > 10
    (entry,) = [n for n in coded.meta["noises"] if "aac_kbps" in n]
    assert 64 <= entry["aac_kbps"] <= 160
    assert all("aac_kbps" not in n for n in plain.meta["noises"])
