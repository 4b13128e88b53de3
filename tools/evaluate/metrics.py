"""Separation and detection metrics (NumPy only).

* :func:`si_sdr` -- scale-invariant SDR (Le Roux et al. 2019, "SDR -- half-baked or well
  done?"): both signals made zero-mean, the reference scaled by the optimal
  ``alpha = <s_hat, s> / <s, s>``, ``10 log10(|alpha s|^2 / |alpha s - s_hat|^2)``.
* :func:`sdr` -- plain signal-to-distortion ratio ``10 log10(|s|^2 / |s - s_hat|^2)`` (the
  SiSEC 2018 / MUSDB "SDR" without the BSS-eval distortion filter).
* :func:`spectrogram_mad` -- mean absolute difference of magnitude spectrograms cut to ``F``
  bins, Spleeter's STFT: Spleeter's training/eval ``absolute_difference`` computed on audio.
* :func:`roc_auc` -- area under the ROC curve (Mann-Whitney U, ties count one half).
* :func:`band_energy_db` -- energy in a frequency band, dB.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.params import ModelParams
from streamsep.engine.spectral import stft

__all__ = ["si_sdr", "sdr", "spectrogram_mad", "roc_auc", "band_energy_db", "magnitudes"]

_TINY = 1e-20


def _pair(
    reference: NDArray[np.floating], estimate: NDArray[np.floating]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    s = np.asarray(reference, np.float64).ravel()
    e = np.asarray(estimate, np.float64).ravel()
    if s.shape != e.shape:
        raise ValueError(f"reference and estimate differ in size: {s.shape} vs {e.shape}")
    return s, e


def si_sdr(
    reference: NDArray[np.floating], estimate: NDArray[np.floating], *, zero_mean: bool = True
) -> float:
    """Scale-invariant SDR in dB; NaN if the reference or the estimate is all zeros.

    Parameters
    ----------
    reference, estimate : ndarray, same shape (n_samples,) or (n_samples, n_channels), float
    zero_mean : bool
        Subtract each signal's mean first (Le Roux et al.).
    """
    s, e = _pair(reference, estimate)
    if zero_mean:
        s, e = s - s.mean(), e - e.mean()
    ss = float(np.dot(s, s))
    if ss <= _TINY or float(np.dot(e, e)) <= _TINY:
        return float("nan")
    target = (float(np.dot(e, s)) / ss) * s
    error = target - e
    return float(
        10
        * np.log10(
            max(float(np.dot(target, target)), _TINY) / max(float(np.dot(error, error)), _TINY)
        )
    )


def sdr(reference: NDArray[np.floating], estimate: NDArray[np.floating]) -> float:
    """``10 log10(|s|^2 / |s - s_hat|^2)`` in dB; NaN for an all-zero reference."""
    s, e = _pair(reference, estimate)
    energy = float(np.dot(s, s))
    if energy <= _TINY:
        return float("nan")
    error = s - e
    return float(10 * np.log10(energy / max(float(np.dot(error, error)), _TINY)))


def magnitudes(x: NDArray[np.floating], params: ModelParams) -> NDArray[np.float32]:
    """Spleeter-STFT magnitudes of mono ``x`` (n_samples,), cut to ``F`` bins: (n_frames, F)."""
    audio = np.asarray(x, np.float32).reshape(-1, 1)
    return np.abs(stft(audio, params.frame_length, params.frame_step)[:, : params.F, 0])


def spectrogram_mad(
    reference: NDArray[np.floating], estimate: NDArray[np.floating], params: ModelParams
) -> float:
    """Mean absolute difference of the ``F``-bin magnitude spectrograms (Spleeter's STFT)."""
    return float(np.mean(np.abs(magnitudes(estimate, params) - magnitudes(reference, params))))


def roc_auc(positives: NDArray[np.floating], negatives: NDArray[np.floating]) -> float:
    """Probability that a random positive scores above a random negative (ties: 1/2).

    Equal to the area under the ROC curve of the scores. NaN if either set is empty.
    """
    pos = np.asarray(positives, np.float64).ravel()
    neg = np.asarray(negatives, np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def band_energy_db(
    x: NDArray[np.floating], sample_rate: int, low_hz: float, high_hz: float, n_fft: int = 1024
) -> float:
    """Energy of ``x`` (n_samples,) or (n_samples, n_channels) in ``[low_hz, high_hz]``, dB.

    Sum of ``|X|^2`` over the band of a Hann STFT (hop ``n_fft / 4``), channels averaged.
    """
    audio = np.asarray(x, np.float32)
    audio = audio.reshape(audio.shape[0], -1).mean(axis=1, keepdims=True)
    spectra = stft(audio, n_fft, n_fft // 4)[:, :, 0]
    freqs = np.arange(spectra.shape[1]) * sample_rate / n_fft
    band = (freqs >= low_hz) & (freqs <= high_hz)
    energy = float(np.sum(np.abs(spectra[:, band]) ** 2, dtype=np.float64))
    return float(10 * np.log10(energy + _TINY))
