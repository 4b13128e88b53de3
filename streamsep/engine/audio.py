"""Audio files, channel adaptation and resampling (soundfile and soxr do the real work)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from numpy.typing import NDArray

from streamsep.errors import AudioFileError

__all__ = ["read_audio", "write_audio", "adapt_channels", "resample", "StreamResampler"]


def read_audio(path: str | Path) -> tuple[NDArray[np.float32], int]:
    """Read a WAV/FLAC/... file as ``(n_samples, n_channels)`` float32 and its rate in Hz.

    Raises
    ------
    AudioFileError
        If the file is missing or not a readable audio file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"audio file not found: {path}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioFileError(f"cannot read audio file {path}: {e}") from e
    return np.ascontiguousarray(data), int(rate)


def write_audio(path: str | Path, audio: NDArray[np.floating], sample_rate: int) -> None:
    """Write ``(n_samples, n_channels)`` audio; the suffix picks the format.

    FLAC is written as 24-bit PCM, WAV as 32-bit float.
    """
    path = Path(path)
    subtype = "PCM_24" if path.suffix.lower() == ".flac" else "FLOAT"
    data = np.asarray(audio, dtype=np.float32)
    if subtype == "PCM_24":
        data = np.clip(data, -1.0, 1.0 - 2.0**-23)
    try:
        sf.write(str(path), data, sample_rate, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioFileError(f"cannot write audio file {path}: {e}") from e


def adapt_channels(audio: NDArray[np.floating], n_channels: int) -> NDArray[np.float32]:
    """Map ``(n_samples, c)`` audio to ``n_channels``: mono is duplicated, more is averaged."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    have = x.shape[1]
    if have == n_channels:
        return x
    if have == 1:
        return np.repeat(x, n_channels, axis=1)
    mono = x.mean(axis=1, keepdims=True, dtype=np.float32)
    return mono if n_channels == 1 else np.repeat(mono, n_channels, axis=1)


def resample(audio: NDArray[np.floating], from_rate: int, to_rate: int) -> NDArray[np.float32]:
    """Resample ``(n_samples, n_channels)`` audio in one go (soxr, high quality)."""
    if from_rate == to_rate:
        return np.asarray(audio, dtype=np.float32)
    out = soxr.resample(np.asarray(audio, dtype=np.float32), from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype=np.float32).reshape(-1, audio.shape[1])


class StreamResampler:
    """Streaming resampler (soxr) for ``(n_samples, n_channels)`` chunks; identity when rates
    agree. Not thread-safe."""

    def __init__(self, from_rate: int, to_rate: int, n_channels: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self.n_channels = n_channels
        self._stream = (
            None
            if from_rate == to_rate
            else soxr.ResampleStream(from_rate, to_rate, n_channels, dtype="float32", quality="HQ")
        )

    @property
    def identity(self) -> bool:
        """Whether the rates agree (:meth:`process` returns its input)."""
        return self._stream is None

    def process(self, chunk: NDArray[np.float32], last: bool = False) -> NDArray[np.float32]:
        """Resample ``chunk``; ``last=True`` drains the filter at the end of a stream."""
        if self._stream is None:
            return np.asarray(chunk, dtype=np.float32)
        out = self._stream.resample_chunk(np.ascontiguousarray(chunk, dtype=np.float32), last=last)
        return np.asarray(out, dtype=np.float32).reshape(-1, self.n_channels)
