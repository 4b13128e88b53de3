"""A causal running noise floor per STFT bin: the background context a ``context = "floor"``
model gets as extra input channels (``model.params.context``, :attr:`ModelParams.context`).

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

import numpy as np
from numpy.typing import NDArray

__all__ = ["FloorSettings", "NoiseFloorTracker"]

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
        log_x = np.log(np.maximum(frames, np.float32(_TINY)))
        sounding = frames.max(axis=1, initial=0.0) > 0
        log_out = np.empty_like(frames)
        first = -1  # the first output row after a sounding frame
        warmup = self.settings.warmup_frames
        log_floor, up, down = self._log_floor, self._up, -self._down
        for t in range(frames.shape[0]):
            if sounding[t]:
                if self._seen < warmup:
                    log_floor += (log_x[t] - log_floor) / np.float32(self._seen + 1)
                else:
                    log_floor += np.where(log_x[t] > log_floor, up, down)
                self._seen += 1
            if self._seen and first < 0:
                first = t
            log_out[t] = log_floor
        out = np.zeros_like(frames)
        if first >= 0:
            np.exp(log_out[first:], out=out[first:])
        return out
