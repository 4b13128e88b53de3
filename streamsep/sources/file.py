"""An audio file played as a stream, written into a pipeline's ring buffer from its own thread.

A file that ends before the length its header declares (cut off in a copy, a full disk, a
corrupt FLAC frame) is not a clean end: the samples never read are marked lost at the end of
the timeline (``ring.mark_gap``, so the stream carries them as a gap), counted in
:attr:`FileSource.samples_lost`, logged in one line, and :attr:`FileSource.error` is set, so that
the command exits non-zero. libsndfile clamps a truncated WAV's length to the bytes present, so
the WAV header's own ``data`` size is read here (:func:`declared_samples`).
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from pathlib import Path
from typing import Final

import numpy as np
import soundfile as sf

from streamsep.engine.ringbuffer import RingLike
from streamsep.errors import AudioFileError
from streamsep.threads import join_thread

__all__ = ["FileSource", "file_info", "declared_samples"]

_LOGGER = logging.getLogger(__name__)

_WAIT_SECONDS: Final = 0.1
_UNKNOWN_LENGTH: Final = 1 << 62  # libsndfile's count of a stream without a length (SF_COUNT_MAX)
_RIFF_HEADER: Final = struct.Struct("<4sI4s")
_CHUNK_HEADER: Final = struct.Struct("<4sI")
_MAX_CHUNKS: Final = 64  # a WAV header walk gives up after this many chunks


def file_info(path: str | Path) -> tuple[int, int, int]:
    """``(sample_rate, n_channels, n_samples)`` of an audio file.

    Raises
    ------
    AudioFileError
        If the file is missing or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioFileError(f"cannot read audio file {path}: {e}") from e
    return int(info.samplerate), int(info.channels), int(info.frames)


def declared_samples(path: str | Path) -> int | None:
    """Samples per channel a WAV file's header declares (``data`` size / block align), or None
    for other formats, a streamed WAV (size 0 or 0xFFFFFFFF) or an unreadable header."""
    try:
        with open(path, "rb") as f:
            riff, _, wave = _RIFF_HEADER.unpack(f.read(_RIFF_HEADER.size))
            if riff != b"RIFF" or wave != b"WAVE":
                return None
            block_align = 0
            for _ in range(_MAX_CHUNKS):
                chunk_id, size = _CHUNK_HEADER.unpack(f.read(_CHUNK_HEADER.size))
                if chunk_id == b"fmt ":
                    fmt = f.read(size + (size & 1))
                    block_align = struct.unpack_from("<H", fmt, 12)[0]
                    continue
                if chunk_id == b"data":
                    if block_align <= 0 or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                f.seek(size + (size & 1), 1)
    except (OSError, struct.error):
        return None
    return None


class FileSource:
    """Reads a WAV/FLAC file into a ring buffer, in real time or as fast as the ring drains.

    Parameters
    ----------
    path : str or Path
        The audio file.
    ring : RingLike
        Destination; its channel count must match the file's.
    chunk_samples : int
        Samples per write (any size, >= 1).
    realtime : bool
        Pace writes to the file's sample rate (like a live device: if the pipeline falls
        behind, the ring overruns and the loss is counted). Otherwise wait for ring space so
        that nothing is dropped.
    loops : int
        Times to play the file (>= 1).
    """

    def __init__(
        self,
        path: str | Path,
        ring: RingLike,
        *,
        chunk_samples: int = 1024,
        realtime: bool = False,
        loops: int = 1,
    ) -> None:
        self.path = Path(path)
        self.sample_rate, self.n_channels, self.n_samples = file_info(self.path)
        if ring.n_channels != self.n_channels:
            raise AudioFileError(
                f"{self.path}: ring has {ring.n_channels} channels, file has {self.n_channels}"
            )
        if chunk_samples < 1 or loops < 1:
            raise ValueError(f"chunk_samples and loops must be >= 1, got {chunk_samples}, {loops}")
        self.ring = ring
        self.chunk_samples = chunk_samples
        self.realtime = realtime
        self.loops = loops
        declared = declared_samples(self.path)
        self.expected_samples = max(self.n_samples, declared or 0)
        """Samples per pass the header declares (more than :attr:`n_samples` when a WAV is
        truncated)."""
        self.samples_written = 0
        """Samples offered to the ring so far."""
        self.samples_lost = 0
        """Samples the file should have held but that could not be read (truncated or corrupt
        file): marked as a gap at the end of the stream."""
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        """Why the file ended early (an :class:`AudioFileError`), or an unexpected failure."""

    def start(self) -> None:
        """Start the reader thread."""
        self._thread = threading.Thread(target=self._run, name="streamsep-file-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop early; the ring is closed so the pipeline drains and ends."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the reader thread; False on timeout."""
        return join_thread(self._thread, timeout)

    def __enter__(self) -> FileSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.join()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            for _ in range(self.loops):
                read = self._play_once(started)
                if self._stop.is_set() or self.error is not None:
                    break
                if read < self.expected_samples and self.expected_samples < _UNKNOWN_LENGTH:
                    self._ended_early(read, "the file is shorter than its header says")
                    break
        except Exception as e:  # noqa: BLE001 - surfaced through .error and the log
            _LOGGER.exception("file source %s failed", self.path)
            self.error = e
        finally:
            self.ring.close()
            self.done.set()

    def _play_once(self, started: float) -> int:
        """One pass over the file; returns the samples read (a read error ends the stream)."""
        read = 0
        try:
            with sf.SoundFile(str(self.path)) as f:
                while not self._stop.is_set():
                    block = f.read(self.chunk_samples, dtype="float32", always_2d=True)
                    if block.shape[0] == 0:
                        break
                    read += block.shape[0]
                    self._write(np.ascontiguousarray(block), started)
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            self._ended_early(read, str(e).strip() or type(e).__name__)
        return read

    def _ended_early(self, read: int, reason: str) -> None:
        """Mark what the pass could not read as lost at the end, log once, set :attr:`error`."""
        lost = self.expected_samples - read if self.expected_samples < _UNKNOWN_LENGTH else 0
        lost = max(0, lost)
        if lost:
            self.ring.mark_gap(lost)
            self.samples_lost += lost
        message = (
            f"{self.path}: input ended after {read} of {self.expected_samples} samples "
            f"({reason}); {lost} samples lost, sent as a gap at the end"
        )
        _LOGGER.error("%s", message)
        self.error = AudioFileError(message)

    def _write(self, block: np.ndarray, started: float) -> None:
        n = block.shape[0]
        if self.realtime:
            due = started + (self.samples_written + n) / self.sample_rate
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
        else:
            while not self.ring.wait_for_space(n, timeout=_WAIT_SECONDS):
                if self._stop.is_set():
                    return
        self.ring.write(block)
        self.samples_written += n
