"""The running noise floor of a whole stream, as the engine's block scheduler computes it frame
by frame (:mod:`streamsep.engine.noisefloor`), for training blocks and offline evaluation."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.noisefloor import FloorSettings, NoiseFloorTracker
from streamsep.engine.params import ModelParams
from streamsep.engine.spectral import stft

__all__ = ["stream_floor", "stream_input"]


def stream_floor(
    mix: NDArray[np.floating], params: ModelParams, settings: FloorSettings | None = None
) -> tuple[NDArray[np.complex64], NDArray[np.float32]]:
    """Spleeter STFT of a whole stream ``mix`` ``(n_samples, n_channels)`` and the running floor
    of its magnitudes: ``(spectra (n_frames, n_bins, C), floor (n_frames, F, C))``, the floor of
    the first ``F`` bins as a tracker fed frame by frame from the stream's start gives it."""
    spectra = stft(np.asarray(mix, np.float32), params.frame_length, params.frame_step)
    mags = np.abs(spectra[:, : params.F])
    n_frames, n_bins, n_channels = mags.shape
    tracker = NoiseFloorTracker(n_bins * n_channels, settings)
    floor = tracker.process(mags.reshape(n_frames, -1)).reshape(mags.shape)
    return spectra, floor


def stream_input(
    mix: NDArray[np.floating], params: ModelParams
) -> tuple[NDArray[np.complex64], NDArray[np.float32]]:
    """Spleeter STFT of a whole stream ``mix`` ``(n_samples, n_channels)`` and the network's
    input for every frame: ``(spectra (n_frames, n_bins, C), x (n_frames, F,
    params.input_channels))``, the mix's magnitudes, then with ``context = "floor"`` their
    running floor (:func:`stream_floor`)."""
    if params.context == "floor":
        spectra, floor = stream_floor(mix, params)
        return spectra, np.concatenate([np.abs(spectra[:, : params.F]), floor], axis=-1)
    spectra = stft(np.asarray(mix, np.float32), params.frame_length, params.frame_step)
    return spectra, np.abs(spectra[:, : params.F])
