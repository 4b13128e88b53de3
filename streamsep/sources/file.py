"""Audio sources that write into a pipeline's ring buffer from their own thread."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Final

import numpy as np
import soundfile as sf

from streamsep.engine.ringbuffer import RingBuffer
from streamsep.errors import AudioFileError

__all__ = ["FileSource", "file_info"]

_LOGGER = logging.getLogger(__name__)

_WAIT_SECONDS: Final = 0.1


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


class FileSource:
    """Reads a WAV/FLAC file into a ring buffer, in real time or as fast as the ring drains.

    Parameters
    ----------
    path : str or Path
        The audio file.
    ring : RingBuffer
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
        ring: RingBuffer,
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
        self.samples_written = 0
        """Samples offered to the ring so far."""
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start the reader thread."""
        self._thread = threading.Thread(target=self._run, name="streamsep-file-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop early; the ring is closed so the pipeline drains and ends."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the reader thread."""
        if self._thread is not None:
            self._thread.join(timeout)

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
                with sf.SoundFile(str(self.path)) as f:
                    while not self._stop.is_set():
                        block = f.read(self.chunk_samples, dtype="float32", always_2d=True)
                        if block.shape[0] == 0:
                            break
                        self._write(np.ascontiguousarray(block), started)
                if self._stop.is_set():
                    break
        except BaseException as e:  # noqa: BLE001 - surfaced through .error and the log
            _LOGGER.exception("file source %s failed", self.path)
            self.error = e
        finally:
            self.ring.close()
            self.done.set()

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
