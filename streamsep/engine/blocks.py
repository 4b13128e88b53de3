"""Overlapping fixed-width model blocks: scheduling on the analysis side, mask overlap-add on the
synthesis side.

Frames are indexed as in :mod:`streamsep.engine.spectral` (frame 0 is the first STFT frame). A block
ends at frame ``e`` and covers frames ``[e - T + 1, e]``; blocks end on the grid
``e = k * hop_frames - 1`` (k >= 1), and frames before 0 are silence. The mask of frame ``f`` is
the weighted mean of the masks that every block ending in ``[f, f + lookahead_frames]`` gives
it, so no mask depends on more than ``lookahead_frames`` future frames, and each block hands
exactly ``hop_frames`` finished frames to the inverse STFT. With ``hop_frames = T`` and
``lookahead_frames = T - 1`` and flat weights this is Spleeter's own segmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.noisefloor import NoiseFloorTracker

__all__ = ["BlockJob", "BlockScheduler", "MaskCombiner", "block_weights"]


@dataclass
class BlockJob:
    """One model block on its way from the scheduler through the model to the combiner."""

    end_frame: int
    """Index of the block's last frame."""
    spectrogram: NDArray[np.float32]
    """Model input: magnitudes, shape (T, F, n_channels); with a floor context the running
    noise floor follows as ``n_channels`` more channels."""
    stft: NDArray[np.complex64]
    """The frames new in this block, ``[end_frame - hop_frames + 1, end_frame]``:
    shape (hop_frames, n_bins, n_channels)."""
    masks: NDArray[np.float32] | None = None
    """Ratio masks from the model, shape (n_stems, T, F, n_channels); set by the worker."""


def block_weights(T: int, lookahead_frames: int, window: str) -> NDArray[np.float32]:
    """Weights of block positions ``T - 1 - lookahead_frames .. T - 1`` (the contributing ones).

    ``hann`` weights position ``p`` by ``sin^2(pi (p + 0.5) / T)`` (central frames, which have
    context on both sides, count most; no weight is zero); ``boxcar`` weights all by 1.
    """
    positions = np.arange(T - 1 - lookahead_frames, T, dtype=np.float64)
    if window == "boxcar":
        return np.ones(positions.shape, dtype=np.float32)
    if window == "hann":
        return (np.sin(np.pi * (positions + 0.5) / T) ** 2).astype(np.float32)
    raise ValueError(f"window must be 'hann' or 'boxcar', got {window!r}")


class BlockScheduler:
    """Turns STFT frames into :class:`BlockJob` s every ``hop_frames`` frames. Not thread-safe.

    Parameters
    ----------
    T, F : int
        Block width in frames and model bins.
    hop_frames : int
        Frames between consecutive blocks.
    n_bins, n_channels : int
        Shape of the STFT frames fed in.
    floor : bool
        Also give each block the running noise floor of its frames
        (:class:`~streamsep.engine.noisefloor.NoiseFloorTracker`, fed every frame in order from
        the stream's start) as ``n_channels`` more channels: blocks ``(T, F, 2 n_channels)``.
    """

    def __init__(
        self, T: int, F: int, hop_frames: int, n_bins: int, n_channels: int, *, floor: bool = False
    ) -> None:
        self.T = T
        self.F = F
        self.hop_frames = hop_frames
        self.n_bins = n_bins
        self.n_channels = n_channels
        self._floor = NoiseFloorTracker(F * n_channels) if floor else None
        self.input_channels = n_channels * (2 if floor else 1)
        self.reset()

    def reset(self) -> None:
        """Back to the stream start: history is silence, the next frame is frame 0."""
        # Magnitudes of frames [n_frames - fill, n_frames) live in _magnitudes[:fill]; the
        # buffer keeps at least the last T frames and is compacted only when full.
        capacity = 2 * self.T + self.hop_frames
        self._magnitudes = np.zeros((capacity, self.F, self.input_channels), dtype=np.float32)
        if self._floor is not None:
            self._floor.reset()
        self._fill = self.T
        self._stft_pending: list[NDArray[np.complex64]] = []
        self._n_pending = 0
        self._n_frames = 0

    @property
    def n_frames(self) -> int:
        """Frames received so far."""
        return self._n_frames

    def _append_magnitudes(self, frames: NDArray[np.complex64]) -> None:
        m = frames.shape[0]
        if self._fill + m > self._magnitudes.shape[0]:
            keep = self._magnitudes[self._fill - self.T : self._fill]
            capacity = max(self._magnitudes.shape[0], 2 * self.T + m)
            if capacity > self._magnitudes.shape[0]:
                grown = np.zeros((capacity, self.F, self.input_channels), dtype=np.float32)
                grown[: self.T] = keep
                self._magnitudes = grown
            else:
                self._magnitudes[: self.T] = keep
            self._fill = self.T
        rows = self._magnitudes[self._fill : self._fill + m]
        C = self.n_channels
        np.abs(frames[:, : self.F, :], out=rows[:, :, :C])
        if self._floor is not None:
            floor = self._floor.process(rows[:, :, :C].reshape(m, -1))
            rows[:, :, C:] = floor.reshape(m, self.F, C)
        self._fill += m

    def feed(self, frames: NDArray[np.complex64]) -> list[BlockJob]:
        """Add STFT frames (n_frames, n_bins, n_channels); return the blocks they complete."""
        m = frames.shape[0]
        if m == 0:
            return []
        start = self._n_frames
        self._append_magnitudes(frames)
        self._n_frames = start + m
        H = self.hop_frames
        first_end = ((start + 1 + H - 1) // H) * H - 1
        if first_end >= start + m:
            self._stft_pending.append(frames)
            self._n_pending += m
            return []
        stft = np.concatenate([*self._stft_pending, frames]) if self._stft_pending else frames
        stft_start = start - self._n_pending
        jobs = []
        for end in range(first_end, start + m, H):
            # frame index -> buffer row: row = fill - (n_frames - frame)
            row = self._fill - (self._n_frames - (end - self.T + 1))
            jobs.append(
                BlockJob(
                    end_frame=end,
                    spectrogram=self._magnitudes[row : row + self.T].copy(),
                    stft=stft[end - H + 1 - stft_start : end + 1 - stft_start].copy(),
                )
            )
        rest = stft[jobs[-1].end_frame + 1 - stft_start :]
        self._stft_pending = [rest.copy()] if rest.shape[0] else []
        self._n_pending = rest.shape[0]
        return jobs


class MaskCombiner:
    """Overlap-adds block masks into finished per-frame masks. Not thread-safe.

    Each :meth:`add` of the next block (in order) returns exactly ``hop_frames`` finished
    frames: their masks (still at ``F`` bins) and their STFT. Frames before frame 0 are dropped,
    so the first blocks of a stream return fewer.
    """

    def __init__(
        self,
        T: int,
        F: int,
        n_bins: int,
        n_channels: int,
        n_stems: int,
        hop_frames: int,
        lookahead_frames: int,
        window: str,
    ) -> None:
        if not 1 <= hop_frames <= lookahead_frames + 1 <= T:
            raise ValueError(
                f"need 1 <= hop_frames <= lookahead_frames + 1 <= T, got {hop_frames}, "
                f"{lookahead_frames}, {T}"
            )
        self.T = T
        self.hop_frames = hop_frames
        self.lookahead_frames = lookahead_frames
        self._width = lookahead_frames + 1
        self._weights = block_weights(T, lookahead_frames, window)
        self._single = hop_frames == self._width and bool(np.all(self._weights == 1.0))
        """Every frame in exactly one block with weight 1 (Spleeter's segmentation): a block's
        masks are the finished masks, no overlap-add needed."""
        self._shape = (n_stems, self._width, F, n_channels)
        self._stft_shape = (self._width, n_bins, n_channels)
        self.reset()

    def reset(self) -> None:
        """Forget all blocks; the next block added must be the stream's first."""
        # Spleeter's segmentation passes blocks through: no accumulators (a full-size block's
        # are 25 MB).
        shapes = ((0,) * 4, (0,) * 3) if self._single else (self._shape, self._stft_shape)
        self._acc = np.zeros(shapes[0], dtype=np.float32)
        self._weight_sum = np.zeros(0 if self._single else self._width, dtype=np.float32)
        self._stft = np.zeros(shapes[1], dtype=np.complex64)
        self._next_end = self.hop_frames - 1

    def add(self, job: BlockJob) -> tuple[NDArray[np.float32], NDArray[np.complex64]]:
        """Add the next block's masks; return finished ``(masks, stft)``.

        Returns
        -------
        masks : ndarray, shape (n_stems, n_finished, F, n_channels), float32
        stft : ndarray, shape (n_finished, n_bins, n_channels), complex64
        """
        if job.masks is None:
            raise ValueError(f"block ending at frame {job.end_frame} has no masks")
        if job.end_frame != self._next_end:
            raise ValueError(f"expected block ending at {self._next_end}, got {job.end_frame}")
        e, H, L, W = job.end_frame, self.hop_frames, self.lookahead_frames, self._width
        self._next_end += H
        if self._single:  # same result as below (x * 1 / 1), without the copies
            skip = max(0, L - e)  # frames before frame 0
            return job.masks[:, self.T - 1 - L + skip :], job.stft[skip:]
        self._stft[np.arange(e - H + 1, e + 1) % W] = job.stft
        slots = np.arange(e - L, e + 1) % W
        self._acc[:, slots] += job.masks[:, self.T - 1 - L :] * self._weights[None, :, None, None]
        self._weight_sum[slots] += self._weights
        first = e - L
        done = np.arange(max(first, 0), first + H) % W
        masks = self._acc[:, done] / self._weight_sum[done][None, :, None, None]
        stft = self._stft[done]
        finished_all = np.arange(first, first + H) % W
        self._acc[:, finished_all] = 0.0
        self._weight_sum[finished_all] = 0.0
        return masks, stft
