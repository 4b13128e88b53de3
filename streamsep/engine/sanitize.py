"""Guards against non-finite and absurd numbers in the audio and in the model's output.

One policy, offline and live (:class:`~streamsep.engine.streamer.BlockSeparator`,
:class:`~streamsep.engine.offline.Separator`, ``streamsep separate`` and the threaded
:class:`~streamsep.engine.pipeline.Pipeline` all use it):

* **Non-finite input** (NaN, +-Inf; a float WAV, a decoder or driver glitch): every frame
  (one sample per channel) holding one becomes silence (all channels 0), is counted, and is
  reported as a run of *filled* samples at its place, like a gap, so that the stream's
  ``filled_samples`` count flags it. One warning is logged per burst.
* **Extreme finite input** is clipped to ``+-MAX_ABS_SAMPLE`` (full scale is 1.0) and counted,
  so that the high-pass filter, the STFT and the model never see numbers near float32 overflow.
* **Non-finite model output**: a block whose masks are not all finite is replaced by uniform
  masks ``1 / n_stems`` (every stem gets an equal share of the mix, so the stems still sum to
  the input), counted and logged (rate-limited).

The guards run before any stateful stage (resampler, high-pass IIR, STFT, overlap-add), so no
state can ever hold a NaN.
"""

from __future__ import annotations

import logging
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["MAX_ABS_SAMPLE", "InputGuard", "MaskGuard"]

_LOGGER = logging.getLogger(__name__)

MAX_ABS_SAMPLE: Final = 10.0
"""Input samples are clipped to ``[-MAX_ABS_SAMPLE, MAX_ABS_SAMPLE]`` (20 dB above full
scale: nothing a real recording reaches, far below float32 overflow in the STFT and model)."""

BURST_GAP_SECONDS: Final = 1.0
"""Bad samples closer than this (stream time) to the previous one belong to the same burst."""

WARNING_COOLDOWN_SECONDS: Final = 10.0
"""At most one warning per this much stream time, however many bursts."""


class InputGuard:
    """Replaces non-finite frames by silence and clips extreme values; counts both.

    Parameters
    ----------
    sample_rate : int
        Rate of the audio it sees, Hz (for burst timing and log positions).
    what : str
        Names the stream in log messages (a file name, ``capture``).

    Not thread-safe: one instance per stream, on the thread that reads the input.
    """

    def __init__(self, sample_rate: int, what: str = "input") -> None:
        self.sample_rate = sample_rate
        self.what = what
        self._burst_gap = max(1, int(BURST_GAP_SECONDS * sample_rate))
        self._cooldown = max(1, int(WARNING_COOLDOWN_SECONDS * sample_rate))
        self.samples_filled = 0
        """Frames that held a non-finite value and were replaced by silence (all streams)."""
        self.samples_clipped = 0
        """Values (per channel) clipped to ``+-MAX_ABS_SAMPLE`` (all streams)."""
        self.reset()

    def reset(self) -> None:
        """Back to the start of a stream (positions to zero; the counts keep running)."""
        self.n_seen = 0
        """Frames seen since the stream start."""
        self._last_bad = -(1 << 62)
        self._last_warning = -(1 << 62)

    def advance(self, n_samples: int) -> None:
        """Count ``n_samples`` frames that did not pass through :meth:`process` (a gap)."""
        self.n_seen += n_samples

    def process(
        self, chunk: NDArray[np.floating]
    ) -> tuple[NDArray[np.float32], list[tuple[int, int]]]:
        """Check ``chunk`` (n_samples, n_channels).

        Returns
        -------
        clean : ndarray, same shape, float32
            ``chunk`` itself when nothing was wrong, else a repaired copy.
        filled : list of (index, n_samples)
            Runs of frames replaced by silence; ``index`` counts frames from the stream start.
        """
        x = np.asarray(chunk, dtype=np.float32)
        start = self.n_seen
        self.n_seen += x.shape[0]
        if x.size == 0:
            return x, []
        low, high = float(np.min(x)), float(np.max(x))
        if -MAX_ABS_SAMPLE <= low and high <= MAX_ABS_SAMPLE:  # False for NaN
            return x, []
        x = x.copy()
        bad_values = ~np.isfinite(x)
        runs: list[tuple[int, int]] = []
        if bad_values.any():
            bad = np.asarray(bad_values.reshape(x.shape[0], -1).any(axis=1), dtype=bool)
            x[bad] = 0.0
            runs = _runs(bad, start)
            self.samples_filled += int(np.count_nonzero(bad))
        extreme = np.abs(x) > MAX_ABS_SAMPLE
        n_clipped = int(np.count_nonzero(extreme))
        if n_clipped:
            np.clip(x, -MAX_ABS_SAMPLE, MAX_ABS_SAMPLE, out=x)
            self.samples_clipped += n_clipped
            first = start + int(np.flatnonzero(extreme.reshape(x.shape[0], -1).any(axis=1))[0])
            self._note(first, f"{n_clipped} extreme value(s) clipped to +-{MAX_ABS_SAMPLE:g}")
        if runs:
            self._note(runs[0][0], f"{sum(n for _, n in runs)} non-finite sample(s) -> silence")
        return x, runs

    def _note(self, index: int, what: str) -> None:
        """Warn once per burst, at most once per cooldown (stream time)."""
        new_burst = index - self._last_bad >= self._burst_gap
        self._last_bad = max(self._last_bad, index)
        if new_burst and index - self._last_warning >= self._cooldown:
            self._last_warning = index
            _LOGGER.warning(
                "%s: bad samples at %.3f s: %s (so far: %d filled with silence, %d clipped)",
                self.what,
                index / self.sample_rate,
                what,
                self.samples_filled,
                self.samples_clipped,
            )


def _runs(bad: NDArray[np.bool_], offset: int) -> list[tuple[int, int]]:
    """``(offset + start, length)`` of each run of True in ``bad``."""
    edges = np.diff(np.concatenate(([0], bad.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(offset + int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)]


class MaskGuard:
    """Replaces a block of non-finite masks by uniform masks ``1 / n_stems``; counts them.

    Not thread-safe: used by the thread that runs the model.
    """

    def __init__(self, what: str = "model") -> None:
        self.what = what
        self.blocks_replaced = 0
        """Blocks whose masks were not finite and were replaced."""
        self._blocks = 0
        self._next_warning = 0

    def check(self, masks: NDArray[np.float32]) -> NDArray[np.float32]:
        """``masks`` (n_stems, T, F, n_channels) if finite, else uniform masks."""
        self._blocks += 1
        if np.isfinite(masks).all():
            return masks
        self.blocks_replaced += 1
        if self._blocks >= self._next_warning:
            self._next_warning = self._blocks + 100
            _LOGGER.warning(
                "%s: non-finite output in block %d, replaced by uniform masks 1/%d "
                "(%d block(s) replaced so far)",
                self.what,
                self._blocks,
                masks.shape[0],
                self.blocks_replaced,
            )
        return np.full(masks.shape, 1.0 / masks.shape[0], dtype=np.float32)
