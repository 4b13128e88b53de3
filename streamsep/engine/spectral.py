"""Spleeter's spectral front end, as batch functions and as incremental objects.

Conventions (identical to Spleeter, so imported checkpoints behave as they do there):

* audio is ``(n_samples, n_channels)`` float32, channels last;
* ``frame_length`` zeros are prepended to the signal, frames advance by ``frame_step`` and
  are windowed with a periodic Hann window of ``frame_length`` samples (the FFT size);
  the end is zero-padded so that ``ceil((n_samples + frame_length) / frame_step)`` frames exist
  (``tf.signal.stft(..., pad_end=True)``);
* STFTs are ``(n_frames, n_bins, n_channels)`` complex64 with ``n_bins = frame_length // 2 + 1``;
* the inverse windows each frame with the same Hann window, overlap-adds, multiplies by the
  window compensation factor 2/3 and drops the ``frame_length`` prepended samples.

The incremental :class:`StreamingStft` and :class:`StreamingIstft` give the same frames and
samples as the batch functions whatever chunk sizes arrive. ``frame_length`` must be a multiple
of ``frame_step`` (Spleeter's 4096/1024 is).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Final

import numpy as np
import scipy.fft
from numpy.typing import NDArray

__all__ = [
    "EPSILON",
    "WINDOW_COMPENSATION_FACTOR",
    "hann_window",
    "stft",
    "istft",
    "ratio_masks",
    "extend_masks",
    "apply_masks",
    "StreamingStft",
    "StreamingIstft",
]

EPSILON: Final = 1e-10
"""Spleeter's epsilon in the ratio mask."""
WINDOW_COMPENSATION_FACTOR: Final = 2.0 / 3.0
"""Spleeter's inverse-STFT gain for a Hann window at 75 % overlap."""

Float32Array = NDArray[np.float32]
Complex64Array = NDArray[np.complex64]


def hann_window(frame_length: int) -> Float32Array:
    """Periodic Hann window of ``frame_length`` samples, as ``tf.signal.hann_window``."""
    n = np.arange(frame_length, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / frame_length)).astype(np.float32)


def _check_audio(waveform: NDArray[np.floating], what: str = "waveform") -> Float32Array:
    if waveform.ndim != 2:
        raise ValueError(f"{what}: expected shape (n_samples, n_channels), got {waveform.shape}")
    return np.ascontiguousarray(waveform, dtype=np.float32)


def _frame_spectra(frames: NDArray[np.float32], window: Float32Array) -> Complex64Array:
    """rFFT of windowed frames given channel-major, ``(n_frames, n_channels, frame_length)``
    (any strides): ``(n_frames, n_bins, n_channels)``. The transform runs along contiguous
    memory, which is several times faster than along a strided axis."""
    spectra = scipy.fft.rfft(frames * window, axis=-1)
    return np.ascontiguousarray(np.asarray(spectra, dtype=np.complex64).transpose(0, 2, 1))


def stft(waveform: NDArray[np.floating], frame_length: int, frame_step: int) -> Complex64Array:
    """Spleeter's STFT of a whole signal.

    Parameters
    ----------
    waveform : ndarray, shape (n_samples, n_channels), float
    frame_length, frame_step : int
        Window length and hop in samples.

    Returns
    -------
    ndarray, shape (n_frames, frame_length // 2 + 1, n_channels), complex64
        ``n_frames = ceil((n_samples + frame_length) / frame_step)``.
    """
    x = _check_audio(waveform)
    n_channels = x.shape[1]
    padded_len = x.shape[0] + frame_length
    n_frames = -(-padded_len // frame_step)
    total = (n_frames - 1) * frame_step + frame_length
    padded = np.zeros((total, n_channels), dtype=np.float32)
    padded[frame_length : frame_length + x.shape[0]] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length, axis=0)[::frame_step]
    return _frame_spectra(frames, hann_window(frame_length))


def _frames_to_signal(
    spectra: Complex64Array, window: Float32Array, frame_length: int
) -> Float32Array:
    """Windowed inverse rFFT of ``(n_frames, n_bins, n_channels)`` with the 2/3 gain, as
    channel-major frames ``(n_frames, n_channels, frame_length)`` (the transform runs along
    contiguous memory)."""
    channel_major = np.ascontiguousarray(spectra.transpose(0, 2, 1))
    frames = np.asarray(scipy.fft.irfft(channel_major, n=frame_length, axis=-1), np.float32)
    frames *= window * np.float32(WINDOW_COMPENSATION_FACTOR)
    return frames


def _overlap_add(
    frames: Float32Array, carry: Float32Array, frame_step: int
) -> tuple[Float32Array, Float32Array]:
    """Overlap-add channel-major ``frames`` (n_frames, n_channels, frame_length) onto ``carry``.

    ``carry`` (frame_length - frame_step, n_channels) holds the unfinished overlap of earlier
    frames. Returns the ``n_frames * frame_step`` finished samples ``(n, n_channels)`` and the
    new carry.
    """
    n_frames, n_channels, frame_length = frames.shape
    ratio = frame_length // frame_step
    segments = frames.reshape(n_frames, n_channels, ratio, frame_step).transpose(1, 0, 2, 3)
    out = np.zeros((n_channels, n_frames + ratio - 1, frame_step), dtype=np.float32)
    out[:, : ratio - 1] += carry.T.reshape(n_channels, ratio - 1, frame_step)
    for r in range(ratio):
        out[:, r : r + n_frames] += segments[:, :, r]
    finished = np.ascontiguousarray(out[:, :n_frames].reshape(n_channels, -1).T)
    new_carry = np.ascontiguousarray(out[:, n_frames:].reshape(n_channels, -1).T)
    return finished, new_carry


def istft(
    spectra: NDArray[np.complexfloating], frame_length: int, frame_step: int, n_samples: int
) -> Float32Array:
    """Spleeter's inverse STFT, cropped to the original ``n_samples``.

    Parameters
    ----------
    spectra : ndarray, shape (n_frames, frame_length // 2 + 1, n_channels), complex
    n_samples : int
        Length of the original signal in samples.

    Returns
    -------
    ndarray, shape (n_samples, n_channels), float32
    """
    spectra = np.asarray(spectra, dtype=np.complex64)
    frames = _frames_to_signal(spectra, hann_window(frame_length), frame_length)
    carry = np.zeros((frame_length - frame_step, spectra.shape[2]), dtype=np.float32)
    finished, carry = _overlap_add(frames, carry, frame_step)
    signal = np.concatenate([finished, carry])
    out = np.zeros((n_samples, spectra.shape[2]), dtype=np.float32)
    available = signal[frame_length : frame_length + n_samples]
    out[: available.shape[0]] = available
    return out


def ratio_masks(outputs: NDArray[np.floating], separation_exponent: float) -> Float32Array:
    """Spleeter's ratio masks from the stems' output spectrograms.

    ``mask_i = (out_i^p + eps/n) / (sum_j out_j^p + eps)`` with ``p = separation_exponent``.

    Parameters
    ----------
    outputs : ndarray, shape (n_stems, ...), float32
        Non-negative output magnitude spectrograms, one per stem.

    Returns
    -------
    ndarray, same shape, float32
    """
    out = np.asarray(outputs, dtype=np.float32)
    powered = out**2 if separation_exponent == 2 else out ** np.float32(separation_exponent)
    n_stems = out.shape[0]
    total = powered.sum(axis=0, keepdims=True) + np.float32(EPSILON)
    return np.asarray((powered + np.float32(EPSILON / n_stems)) / total, dtype=np.float32)


def extend_masks(masks: Float32Array, n_bins: int, mask_extension: str) -> Float32Array:
    """Extend masks from ``F`` to ``n_bins`` bins along axis -2 (Spleeter's ``_extend_mask``).

    Parameters
    ----------
    masks : ndarray, shape (..., F, n_channels), float32
    n_bins : int
        Full number of bins, ``frame_length // 2 + 1``.
    mask_extension : {"zeros", "average"}
        ``zeros`` zeroes the bins above ``F``; ``average`` fills them with each frame's mean mask.
    """
    n_model_bins = masks.shape[-2]
    if n_model_bins == n_bins:
        return masks
    shape = list(masks.shape)
    shape[-2] = n_bins
    out = np.zeros(shape, dtype=np.float32)
    out[..., :n_model_bins, :] = masks
    if mask_extension == "average":
        out[..., n_model_bins:, :] = masks.mean(axis=-2, keepdims=True)
    elif mask_extension != "zeros":
        raise ValueError(f"mask_extension must be 'zeros' or 'average', got {mask_extension!r}")
    return out


def apply_masks(
    masks: Float32Array, spectra: Complex64Array, mask_extension: str
) -> Complex64Array:
    """Masked STFTs of every stem, extending ``F``-bin masks to all bins on the fly.

    Same result as ``extend_masks(masks, n_bins, mask_extension) * spectra`` without building
    the extended masks.

    Parameters
    ----------
    masks : ndarray, shape (n_stems, n_frames, F, n_channels), float32
    spectra : ndarray, shape (n_frames, n_bins, n_channels), complex64
    mask_extension : {"zeros", "average"}

    Returns
    -------
    ndarray, shape (n_stems, n_frames, n_bins, n_channels), complex64
    """
    n_stems, n_frames, n_model_bins, n_channels = masks.shape
    n_bins = spectra.shape[1]
    out = np.empty((n_stems, n_frames, n_bins, n_channels), dtype=np.complex64)
    np.multiply(masks, spectra[None, :, :n_model_bins], out=out[:, :, :n_model_bins])
    if n_model_bins < n_bins:
        if mask_extension == "zeros":
            out[:, :, n_model_bins:] = 0
        elif mask_extension == "average":
            mean = masks.mean(axis=2, keepdims=True)
            np.multiply(mean, spectra[None, :, n_model_bins:], out=out[:, :, n_model_bins:])
        else:
            raise ValueError(f"mask_extension must be 'zeros' or 'average', got {mask_extension!r}")
    return out


class _StreamingTransform(abc.ABC):
    """Shared set-up of the incremental transforms."""

    def __init__(self, frame_length: int, frame_step: int, n_channels: int) -> None:
        if frame_length % frame_step:
            raise ValueError(
                f"frame_length must be a multiple of frame_step, got {frame_length}, {frame_step}"
            )
        self.frame_length = frame_length
        self.frame_step = frame_step
        self.n_channels = n_channels
        self._window = hann_window(frame_length)
        self.reset()

    @abc.abstractmethod
    def reset(self) -> None:
        """Back to the start of a stream."""


class StreamingStft(_StreamingTransform):
    """Incremental Spleeter STFT: feed audio in any chunk sizes, get the frames that are ready.

    Frame ``k`` covers samples ``[k * frame_step - frame_length, k * frame_step)`` of the input
    (negative indices are the prepended zeros), so it is ready once ``k * frame_step`` samples
    have arrived; frame 0 is ready before any input. Not thread-safe.
    """

    def reset(self) -> None:
        """Forget all input: the next frame is frame 0 again."""
        self._pending = np.zeros((self.frame_length, self.n_channels), dtype=np.float32)
        self._n_input = 0
        self.n_frames_out = 0
        """Frames returned so far."""

    @property
    def n_input(self) -> int:
        """Input samples received so far."""
        return self._n_input

    def feed(self, chunk: NDArray[np.floating]) -> Complex64Array:
        """Add ``chunk`` (n_samples, n_channels) and return the newly ready frames.

        Returns
        -------
        ndarray, shape (n_new_frames, n_bins, n_channels), complex64
        """
        x = _check_audio(chunk, "chunk")
        if x.shape[1] != self.n_channels:
            raise ValueError(f"chunk: expected {self.n_channels} channels, got {x.shape[1]}")
        self._n_input += x.shape[0]
        pending = np.concatenate([self._pending, x]) if x.shape[0] else self._pending
        n_new = (pending.shape[0] - self.frame_length) // self.frame_step + 1
        if n_new <= 0:
            self._pending = pending
            return np.zeros((0, self.frame_length // 2 + 1, self.n_channels), np.complex64)
        view = np.lib.stride_tricks.sliding_window_view(pending, self.frame_length, axis=0)
        spectra = _frame_spectra(view[: n_new * self.frame_step : self.frame_step], self._window)
        self._pending = pending[n_new * self.frame_step :].copy()
        self.n_frames_out += n_new
        return spectra

    def flush(self) -> Complex64Array:
        """Zero-pad the end as ``pad_end=True`` does and return the remaining frames."""
        padded_len = self._n_input + self.frame_length
        n_total = -(-padded_len // self.frame_step)
        missing = n_total - self.n_frames_out
        if missing <= 0:
            return np.zeros((0, self.frame_length // 2 + 1, self.n_channels), np.complex64)
        zeros_needed = ((n_total - 1) * self.frame_step + self.frame_length) - (
            self._n_input + self.frame_length
        )
        n_input = self._n_input
        frames = self.feed(np.zeros((max(zeros_needed, 0), self.n_channels), np.float32))
        self._n_input = n_input
        return frames[:missing]


class StreamingIstft(_StreamingTransform):
    """Incremental Spleeter inverse STFT (overlap-add).

    Feed frames in order from frame 0; each call returns the samples that no later frame can
    change. The ``frame_length`` prepended samples are dropped, so the first returned sample is
    sample 0 of the original signal. Not thread-safe.
    """

    def reset(self) -> None:
        """Forget all frames: the next frame fed is frame 0 again."""
        self._carry = np.zeros((self.frame_length - self.frame_step, self.n_channels), np.float32)
        self._to_skip = self.frame_length
        self.n_samples_out = 0
        """Original-signal samples returned so far."""

    def feed(self, spectra: NDArray[np.complexfloating]) -> Float32Array:
        """Add frames ``(n_frames, n_bins, n_channels)``; return finished samples.

        Returns
        -------
        ndarray, shape (n_finished, n_channels), float32
        """
        return self.feed_pieces([spectra], spectra.shape[0])

    def feed_pieces(
        self, pieces: Iterable[NDArray[np.complexfloating]], n_frames: int
    ) -> Float32Array:
        """:meth:`feed` of ``n_frames`` frames given as consecutive pieces: the same as
        ``feed(np.concatenate(pieces))`` to float32 rounding (an inverse FFT may round
        differently with the number of frames per call), while only one piece's spectra (and
        its inverse transform's temporaries) exist at a time. The same pieces give the same
        bits, so streaming and offline separation stay equal."""
        if n_frames == 0:
            return np.zeros((0, self.n_channels), dtype=np.float32)
        frames = np.empty((n_frames, self.n_channels, self.frame_length), dtype=np.float32)
        at = 0
        for piece in pieces:
            spectra = np.asarray(piece, dtype=np.complex64)
            n = spectra.shape[0]
            frames[at : at + n] = _frames_to_signal(spectra, self._window, self.frame_length)
            at += n
        if at != n_frames:
            raise ValueError(f"pieces hold {at} frames, expected {n_frames}")
        finished, self._carry = _overlap_add(frames, self._carry, self.frame_step)
        if self._to_skip:
            skip = min(self._to_skip, finished.shape[0])
            self._to_skip -= skip
            finished = finished[skip:]
        self.n_samples_out += finished.shape[0]
        return finished
