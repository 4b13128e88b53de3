"""tools.evaluate.metrics: SI-SDR, SDR, spectrogram MAD, ROC AUC, band energy (NumPy only)."""

from __future__ import annotations

import numpy as np
import pytest

from streamsep.engine.params import ModelParams
from tools.evaluate.metrics import band_energy_db, magnitudes, roc_auc, sdr, si_sdr, spectrogram_mad


def _orthogonal_pair(rng: np.random.Generator, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Zero-mean ``x`` and zero-mean ``noise`` orthogonal to it."""
    x = rng.standard_normal(n)
    x -= x.mean()
    noise = rng.standard_normal(n)
    noise -= noise.mean()
    noise -= (noise @ x) / (x @ x) * x
    return x, noise


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 13.5])
def test_si_sdr_of_orthogonal_noise_is_the_energy_ratio(
    rng: np.random.Generator, snr_db: float
) -> None:
    x, noise = _orthogonal_pair(rng)
    noise *= np.sqrt((x @ x) / (noise @ noise) / 10 ** (snr_db / 10))
    assert si_sdr(x, x + noise) == pytest.approx(snr_db, abs=1e-9)
    # Scale invariance: any gain on the estimate changes nothing.
    assert si_sdr(x, -0.3 * (x + noise)) == pytest.approx(snr_db, abs=1e-9)
    assert si_sdr(x, 7.0 * (x + noise)) == pytest.approx(snr_db, abs=1e-9)


def test_si_sdr_known_value_and_mean_invariance(rng: np.random.Generator) -> None:
    x, noise = _orthogonal_pair(rng)
    noise *= np.sqrt((x @ x) / (noise @ noise))  # 0 dB
    assert si_sdr(x, x + noise + 5.0) == pytest.approx(0.0, abs=1e-9)  # offsets removed
    assert si_sdr(x, x + noise + 5.0, zero_mean=False) < 0.0
    assert si_sdr(x, 2 * x) > 100  # perfect up to scale
    assert np.isnan(si_sdr(np.zeros(100), rng.standard_normal(100)))
    assert np.isnan(si_sdr(x, np.zeros_like(x)))


def test_sdr_is_not_scale_invariant(rng: np.random.Generator) -> None:
    x, noise = _orthogonal_pair(rng)
    noise *= np.sqrt((x @ x) / (noise @ noise) / 10)  # 10 dB
    assert sdr(x, x + noise) == pytest.approx(10.0, abs=1e-9)
    assert sdr(x, 0.5 * x) == pytest.approx(10 * np.log10(4.0), abs=1e-9)  # error = x / 2
    assert sdr(x, np.zeros_like(x)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="differ in size"):
        sdr(x, x[:-1])


def test_spectrogram_mad() -> None:
    params = ModelParams(
        instrument_list=("orca_vocals", "noise"),
        sample_rate=8000,
        frame_length=256,
        frame_step=64,
        T=16,
        F=64,
        n_channels=1,
    )
    t = np.arange(4000) / 8000
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    mags = magnitudes(x, params)
    assert mags.shape == (-(-(4000 + 256) // 64), 64)
    assert spectrogram_mad(x, x, params) == 0.0
    assert spectrogram_mad(x, np.zeros_like(x), params) == pytest.approx(float(mags.mean()))
    assert spectrogram_mad(x, 2 * x, params) == pytest.approx(float(mags.mean()), rel=1e-5)


def _trapezoid_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Area under the ROC curve by sweeping thresholds (independent of roc_auc)."""
    thresholds = np.concatenate([[np.inf], np.sort(np.unique(np.r_[positives, negatives]))[::-1]])
    tpr = [(positives >= th).mean() for th in thresholds]
    fpr = [(negatives >= th).mean() for th in thresholds]
    return float(np.sum(np.diff(fpr) * (np.array(tpr[1:]) + np.array(tpr[:-1])) / 2))


def test_roc_auc(rng: np.random.Generator) -> None:
    assert roc_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert roc_auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert roc_auc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5
    assert roc_auc(np.array([2.0, 0.0]), np.array([1.0])) == 0.5
    assert np.isnan(roc_auc(np.array([]), np.array([1.0])))
    pos = np.round(rng.normal(1.0, 1.0, 37), 1)  # rounded: ties on purpose
    neg = np.round(rng.normal(0.0, 1.0, 23), 1)
    assert roc_auc(pos, neg) == pytest.approx(_trapezoid_auc(pos, neg), abs=1e-12)


def test_band_energy_db() -> None:
    rate = 32000
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 2000 * t).astype(np.float32)
    inside = band_energy_db(tone, rate, 500, 15000)
    assert band_energy_db(tone, rate, 5000, 15000) < inside - 40  # edges leak a little
    assert band_energy_db(0.1 * tone, rate, 500, 15000) == pytest.approx(inside - 20, abs=1e-3)
    stereo = np.stack([tone, tone], axis=1)
    assert band_energy_db(stereo, rate, 500, 15000) == pytest.approx(inside, abs=1e-6)
