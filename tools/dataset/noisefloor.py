"""A causal running noise floor per STFT bin: the background context of issue 19's first lever.

Per bin, a quantile tracker in the log domain: each frame moves the estimate up by
``quantile * step`` when the frame's magnitude is above it and down by ``(1 - quantile) * step``
when below, so it settles where ``quantile`` of the frames lie below (a low percentile: the
floor under sparse calls). The first ``warmup_frames`` non-silent frames set it to the running
mean of their log magnitudes instead, so it starts near the noise level within a fraction of a
second. All-zero frames (a stream's padded start, gaps filled with silence) leave it unchanged.

It sees no frame after the current one (no look-ahead) and carries its state across calls, so
a stream fed in pieces gets exactly what one call on the whole gets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.params import ModelParams
from streamsep.engine.spectral import stft
from streamsep.errors import ConfigError

__all__ = ["CONTEXTS", "FloorSettings", "NoiseFloorTracker", "input_context", "stream_floor"]

CONTEXTS: Final = ("none", "floor")
"""``model.params.context`` values: ``none``, or ``floor``: the network gets the running noise
floor of each frame (:class:`NoiseFloorTracker`) as extra input channels after the mix's."""

_TINY = 1e-12


@dataclass(frozen=True)
class FloorSettings:
    """Tracker settings (at 32 kHz and a 256-sample hop a frame is 8 ms)."""

    quantile: float = 0.2
    """Fraction of frames below the floor once settled, 0-1."""
    step_db: float = 0.1
    """Full step per frame, dB: rises at most ``quantile * step_db`` and falls at most
    ``(1 - quantile) * step_db`` per frame (0.02 / 0.08 dB: 2.5 / 10 dB per second)."""
    warmup_frames: int = 125
    """Non-silent frames averaged (log domain) to start the floor (1 s)."""

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")
        if not self.step_db > 0:
            raise ValueError(f"step_db must be > 0, got {self.step_db}")
        if self.warmup_frames < 1:
            raise ValueError(f"warmup_frames must be >= 1, got {self.warmup_frames}")


class NoiseFloorTracker:
    """Running floor of magnitude frames ``(n_frames, n_bins)``; see the module docstring."""

    def __init__(self, n_bins: int, settings: FloorSettings | None = None) -> None:
        self.settings = settings or FloorSettings()
        self.n_bins = n_bins
        step = self.settings.step_db * math.log(10) / 20  # natural-log units of magnitude
        self._up = np.float32(self.settings.quantile * step)
        self._down = np.float32((1 - self.settings.quantile) * step)
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new stream)."""
        self._log_floor = np.zeros(self.n_bins, np.float32)
        self._seen = 0

    def process(self, magnitudes: NDArray[np.floating]) -> NDArray[np.float32]:
        """Floor after each frame of ``magnitudes`` ``(n_frames, n_bins)``, same shape, float32.

        Zero until the first non-silent frame.
        """
        frames = np.asarray(magnitudes, np.float32)
        if frames.ndim != 2 or frames.shape[1] != self.n_bins:
            raise ValueError(f"magnitudes must be (n_frames, {self.n_bins}), got {frames.shape}")
        out = np.zeros_like(frames)
        warmup = self.settings.warmup_frames
        log_floor = self._log_floor
        for t, frame in enumerate(frames):
            if frame.max() > 0:
                log_x = np.log(np.maximum(frame, np.float32(_TINY)))
                if self._seen < warmup:
                    log_floor += (log_x - log_floor) / np.float32(self._seen + 1)
                else:
                    log_floor += np.where(log_x > log_floor, self._up, -self._down)
                self._seen += 1
            if self._seen:
                out[t] = np.exp(log_floor)
        return out


def input_context(model_params: dict[str, Any]) -> str:
    """``model.params.context`` (default ``none``), checked."""
    value = model_params.get("context", "none")
    if value not in CONTEXTS:
        raise ConfigError(f"params: model.params.context must be one of {CONTEXTS}, got {value!r}")
    return str(value)


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
