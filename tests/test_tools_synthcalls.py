"""tools.dataset.synthcalls: synthetic orca sounds have the structure they are named for."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import maximum_filter1d
from scipy.signal import find_peaks

from streamsep.errors import ConfigError
from tools.dataset.mixtures import NOISE_STEM, ORCA_STEM, Clip, Pool, make_mixture
from tools.dataset.synthcalls import CALL_KINDS, check_call_kinds, synthetic_call

RATE = 32000


def _spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.fft.rfftfreq(x.shape[0], 1 / RATE), np.abs(np.fft.rfft(x)) ** 2


@pytest.mark.parametrize("kind", CALL_KINDS)
def test_peak_one_silent_edges_in_band_and_deterministic(kind: str) -> None:
    for seed in range(6):
        x, got = synthetic_call(np.random.default_rng(seed), RATE, (kind,))
        assert got == kind and x.dtype == np.float32 and np.isfinite(x).all()
        assert np.abs(x).max() == pytest.approx(1.0)
        assert 0.4 * RATE <= x.shape[0] <= 3.7 * RATE
        edge = int(0.1 * RATE)
        assert not x[:edge].any() and not x[-edge:].any()  # the silence around the sound
        hz, power = _spectrum(x)
        assert power[(hz >= 300) & (hz < 15500)].sum() > 0.97 * power.sum()
        assert power[hz > 0.46 * RATE].sum() < 1e-4 * power.sum()  # no aliased bands
        again, _ = synthetic_call(np.random.default_rng(seed), RATE, (kind,))
        np.testing.assert_array_equal(x, again)


def test_each_kind_has_its_structure() -> None:
    """A whistle is one tone at a time, a pulsed call a stack of harmonics, a click train
    brief pulses with silence between them."""
    frame = 1024
    for seed in range(5):
        rng = np.random.default_rng(seed)
        whistle, _ = synthetic_call(rng, RATE, ("whistle",))
        pulsed, _ = synthetic_call(rng, RATE, ("pulsed",))
        clicks, _ = synthetic_call(rng, RATE, ("clicks",))

        def bands(x: np.ndarray) -> float:
            """Median over loud frames of the spectral peaks within 20 dB of the strongest."""
            n = x.shape[0] // frame
            frames = x[: n * frame].reshape(n, frame) * np.hanning(frame)
            power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
            loud = power.sum(axis=1) > 0.1 * power.sum(axis=1).max()
            counts = []
            for p in power[loud]:
                db = 10 * np.log10(p + 1e-20)
                peaks, _ = find_peaks(db, height=db.max() - 20, prominence=10)
                counts.append(len(peaks))
            return float(np.median(counts))

        assert bands(whistle) <= 2  # one tone (and its weak second harmonic)
        assert bands(pulsed) >= 3  # a stack of harmonics
        # Click train: the loud samples (envelope over 1 ms) are few and apart.
        loud = maximum_filter1d(np.abs(clicks), 32) > 0.1
        assert 0 < loud.mean() < 0.05
        onsets = np.flatnonzero(np.diff(loud.astype(int)) == 1)
        assert len(onsets) >= 2 and np.min(np.diff(onsets)) > 0.004 * RATE


def test_kinds_are_checked() -> None:
    assert check_call_kinds(["whistle"]) == ("whistle",)
    with pytest.raises(ConfigError, match="'moan'"):
        check_call_kinds(["moan"])
    with pytest.raises(ConfigError, match="at least one"):
        check_call_kinds([])


def test_mixtures_use_synthetic_calls_when_asked() -> None:
    """``p_synthetic_call`` = 1: every call is synthetic (in the orca stem, named in the meta),
    the stems still sum to the mix; 0 (the default) draws nothing: the same mixture as before."""
    rng = np.random.default_rng(9)
    noise = (1e-2 * rng.standard_normal(4 * RATE)).astype(np.float32)
    call = np.zeros(RATE, np.float32)
    call[8000:16000] = np.sin(2 * np.pi * 1000 * np.arange(8000) / RATE)
    active = np.zeros(32, bool)
    active[8:16] = True
    pool = Pool(
        RATE,
        [Clip("calls/c.flac", "orca-call", "calls/c.flac", call, active, 1024)],
        [Clip("noise/n.flac", "noise-ship", "noise/n.flac", noise, np.ones(125, bool), 1024)],
    )
    n = 2 * RATE
    kinds = set()
    for seed in range(8):
        m = make_mixture(pool, np.random.default_rng(seed), n, 0.0, p_synthetic_call=1.0)
        (meta,) = m.meta["calls"]
        assert meta["path"].startswith("synthetic:")
        kinds.add(meta["path"].split(":")[1])
        assert m.active.any() and np.abs(m.sources[ORCA_STEM]).max() > 0
        np.testing.assert_allclose(m.sources[ORCA_STEM] + m.sources[NOISE_STEM], m.mix, atol=1e-6)
    assert kinds == set(CALL_KINDS)
    plain = make_mixture(pool, np.random.default_rng(3), n, 0.0)
    zero = make_mixture(pool, np.random.default_rng(3), n, 0.0, p_synthetic_call=0.0)
    assert plain.meta["calls"][0]["path"] == "calls/c.flac"
    np.testing.assert_array_equal(plain.mix, zero.mix)
