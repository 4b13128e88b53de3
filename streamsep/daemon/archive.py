"""Raw input archive: lossless FLAC files of the captured audio, rolled by sample count.

Each file holds consecutive samples of the capture timeline, at the capture rate with the
captured channels, untouched by the engine (no high-pass, no resampling). A file is named by the
UTC capture time of its first sample, ``<prefix>YYYYmmddTHHMMSS.ffffffZ.flac``, and holds
``file_seconds * sample_rate`` samples, except the last one and one cut short by a gap: a gap
(samples lost upstream, or dropped here) always starts a new file, so that every file is
contiguous and its name tells when each of its samples was captured. No sample is in two files.

Samples are stored as 24-bit (or 16-bit) integers: ``round(x * 2**23)``. Converters deliver at
most 24-bit integers, which float32 holds exactly, so this is lossless; values outside
``[-1, 1)`` are clipped and counted. A file being written is ``NAME.flac.part`` and is renamed to
``NAME.flac`` when complete.

Threads: :meth:`RawArchive.write` runs on the capture thread and only puts the block on a
bounded queue (``queue_seconds`` of audio); when the queue is full the block is dropped,
counted, and the next file starts after the hole. Files are written on ``streamsep-archive``.

Disk guard: before every write (a ``statvfs``, a few microseconds) the free space must stay
above ``min_free_mb`` after the write, counting the worst case of what it can add: the block as
uncompressed FLAC (noise does not compress), the encoder's buffered frames, a new file's
header and one filesystem block. Otherwise archiving stops before the margin is crossed (one
error line, ``stopped`` set, the samples counted as dropped) and resumes once the free space is
back above ``1.1 * min_free_mb`` plus that worst case. A ``min_free_mb`` beyond the size of the
disk is a configuration error (:func:`check_margin`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from streamsep.engine.clock import Clock
from streamsep.errors import ConfigError
from streamsep.validate import check_bool, check_number, check_str, fail

__all__ = [
    "ArchiveSettings",
    "RawArchive",
    "ArchiveStats",
    "check_directory",
    "check_margin",
    "file_name",
]

_LOGGER = logging.getLogger(__name__)

_RETRY_SECONDS: Final = 10.0
_MIB: Final = 1024 * 1024
_FLAC_BLOCK: Final = 4096  # samples per FLAC frame (libsndfile's encoder)
_FLAC_FRAME_OVERHEAD: Final = 32  # frame header, CRC, per-channel subframe headers (bytes, bound)
_BUFFERED_SAMPLES: Final = 16384  # held in libsndfile's and libFLAC's buffers, written later
_FILE_OVERHEAD_BYTES: Final = 16384  # FLAC header and metadata, one filesystem block
_RESUME_FACTOR: Final = 1.1
_JOIN_SECONDS: Final = 10.0
_SUBTYPES: Final = {16: "PCM_16", 24: "PCM_24"}


@dataclass(frozen=True)
class ArchiveSettings:
    """The ``[archive]`` table: optional lossless recording of the raw input."""

    enabled: bool = False
    """Record the raw input."""
    directory: str = "archive"
    """Folder of the FLAC files (created if missing; relative paths are relative to the
    config file's folder)."""
    file_seconds: float = 600.0
    """Duration of each file, seconds (> 0; rounded to whole samples)."""
    bits_per_sample: int = 24
    """Integer sample width in the files: 16 or 24."""
    min_free_mb: float = 1024.0
    """Stop archiving when the disk has less free space than this, MiB (>= 0)."""
    queue_seconds: float = 30.0
    """Audio the writer thread may fall behind before blocks are dropped, seconds (> 0)."""
    prefix: str = ""
    """Start of every file name (e.g. a station name)."""

    def __post_init__(self) -> None:
        check_bool("archive.enabled", self.enabled)
        check_str("archive.directory", self.directory)
        check_number("archive.file_seconds", self.file_seconds, positive=True)
        bits = self.bits_per_sample
        if isinstance(bits, bool) or bits not in _SUBTYPES:
            raise fail("archive.bits_per_sample", "16 or 24", bits)
        check_number("archive.min_free_mb", self.min_free_mb, minimum=0)
        check_number("archive.queue_seconds", self.queue_seconds, positive=True)
        check_str("archive.prefix", self.prefix, empty=True)
        if "/" in self.prefix or "\\" in self.prefix:
            raise fail("archive.prefix", "a name without path separators", self.prefix)


def check_directory(directory: str | Path, *, create: bool = True) -> Path:
    """Create ``directory`` if needed and check that files can be written in it.

    With ``create=False`` nothing is created: the folder, or the nearest existing folder above
    it, must be writable.

    Raises
    ------
    ConfigError
        If it cannot be created or written.
    """
    path = Path(directory)
    if not create:
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"archive.directory: cannot write in {path}: permission denied")
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".streamsep-check-"):
            pass
    except OSError as e:
        raise ConfigError(f"archive.directory: cannot write in {path}: {e.strerror or e}") from None
    return path


def check_margin(settings: ArchiveSettings) -> None:
    """Refuse a ``min_free_mb`` no disk space could satisfy (the disk of ``directory``, or of
    the nearest existing folder above it, is smaller).

    Raises
    ------
    ConfigError
        If ``min_free_mb`` is at least the size of the disk.
    """
    existing = Path(settings.directory)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        total = shutil.disk_usage(existing).total
    except OSError:
        return  # check_directory reports an unusable folder
    if settings.min_free_mb * _MIB >= total:
        raise ConfigError(
            f"archive.min_free_mb = {settings.min_free_mb:g} is more than the whole disk of "
            f"{settings.directory} ({total / _MIB:.0f} MiB): nothing could be archived"
        )


def file_name(prefix: str, utc_ns: int) -> str:
    """``<prefix>YYYYmmddTHHMMSS.ffffffZ.flac`` for a first sample captured at ``utc_ns``."""
    seconds, ns = divmod(utc_ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{prefix}{stamp}.{ns // 1000:06d}Z.flac"


@dataclass
class ArchiveStats:
    """Counters (read from any thread)."""

    files: int = 0
    """Files completed."""
    samples_written: int = 0
    """Samples written to files."""
    bytes_written: int = 0
    """Bytes of completed files."""
    samples_dropped: int = 0
    """Samples not archived: queue full, disk guard, write errors."""
    samples_clipped: int = 0
    """Sample values outside [-1, 1) stored clipped."""
    stopped: bool = False
    """The disk-space guard or a write error has stopped archiving (for now)."""
    free_bytes: int = 0
    """Free space at the last check."""


class _Writer:
    """An open archive file."""

    def __init__(self, path: Path, rate: int, n_channels: int, bits: int) -> None:
        self.path = path
        self.part = path.with_name(path.name + ".part")
        self.file = sf.SoundFile(
            str(self.part), "w", rate, n_channels, _SUBTYPES[bits], format="FLAC"
        )
        self.n_samples = 0

    def close(self) -> int:
        self.file.close()
        os.replace(self.part, self.path)
        return self.path.stat().st_size


class RawArchive:
    """Writes the raw input to rolling FLAC files on its own thread.

    Parameters
    ----------
    settings : ArchiveSettings
        Folder, file length, sample width, disk guard.
    sample_rate : int
        Capture rate, Hz.
    n_channels : int
        Captured channels.
    clock : callable
        ``clock(index) -> UTC ns`` of the capture timeline (names the files).
    disk_free : callable, optional
        ``disk_free(path) -> bytes`` free (a seam for tests; default ``shutil.disk_usage``).

    Raises
    ------
    ConfigError
        If the folder cannot be created or written, or ``min_free_mb`` exceeds its disk.
    """

    def __init__(
        self,
        settings: ArchiveSettings,
        *,
        sample_rate: int,
        n_channels: int,
        clock: Clock,
        disk_free: Callable[[Path], int] | None = None,
    ) -> None:
        self.settings = settings
        self.directory = check_directory(settings.directory)
        check_margin(settings)
        self.sample_rate = sample_rate
        self.n_channels = n_channels
        self.file_samples = max(1, round(settings.file_seconds * sample_rate))
        self._clock = clock
        self._disk_free = disk_free or (lambda path: shutil.disk_usage(path).free)
        self._scale = float(2 ** (settings.bits_per_sample - 1))
        self._dtype: Any = np.int16 if settings.bits_per_sample == 16 else np.int32
        capacity = max(1, round(settings.queue_seconds * sample_rate))
        self._queue: queue.Queue[tuple[int, NDArray[np.float32]] | None] = queue.Queue()
        self._queued = 0  # samples waiting in the queue
        self._capacity = capacity
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._writer: _Writer | None = None
        self._next_index = -1  # timeline index the open file continues with
        self._retry_at = 0.0
        self._free_error: str | None = None  # the last failure to read the free space
        bytes_per_sample = n_channels * settings.bits_per_sample // 8
        self._bytes_per_sample = bytes_per_sample
        self._slack_bytes = self._worst_bytes(_BUFFERED_SAMPLES) + _FILE_OVERHEAD_BYTES
        self.stats = ArchiveStats()
        self.completed: list[Path] = []
        """Paths of the files completed so far (newest last; the last 1000)."""

    @property
    def queue_samples(self) -> int:
        """Samples waiting for the writer thread."""
        return self._queued

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="streamsep-archive", daemon=True)
        self._thread.start()
        _LOGGER.info(
            "archive: %s, %d-bit FLAC, %d samples (%.0f s) per file",
            self.directory,
            self.settings.bits_per_sample,
            self.file_samples,
            self.file_samples / self.sample_rate,
        )

    def write(self, index: int, samples: NDArray[np.float32]) -> None:
        """Queue ``samples`` (n_samples, n_channels) captured at timeline ``index``; never
        blocks. Called from the capture thread. A full queue drops the block (counted)."""
        n = samples.shape[0]
        with self._lock:
            if self._queued + n > self._capacity:
                self.stats.samples_dropped += n
                return
            self._queued += n
        self._queue.put((index, samples.copy()))

    def stop(self) -> None:
        """Write what is queued, close the open file, join the thread."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(_JOIN_SECONDS)

    def close(self) -> None:
        """Same as :meth:`stop`."""
        self.stop()

    # -- writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._close_file()
                return
            index, samples = item
            with self._lock:
                self._queued -= samples.shape[0]
            try:
                self._archive(index, samples)
            except Exception as e:  # noqa: BLE001 - per block: the writer thread never ends
                # (OSError, libsndfile's errors, and soundfile's assertion that a write was
                # complete, which a full disk can fail)
                _LOGGER.error(
                    "archive: write failed: %s; retrying in %g s",
                    str(e) or type(e).__name__,
                    _RETRY_SECONDS,
                )
                self.stats.samples_dropped += samples.shape[0]
                self._abandon_file()
                self._retry_at = time.monotonic() + _RETRY_SECONDS

    def _archive(self, index: int, samples: NDArray[np.float32]) -> None:
        now = time.monotonic()
        if now < self._retry_at or not self._space_ok(samples.shape[0]):
            self.stats.samples_dropped += samples.shape[0]
            self._close_file()
            return
        if self._writer is not None and index != self._next_index:
            self._close_file()  # a hole in the timeline: a new file starts after it
        done = 0
        n = samples.shape[0]
        while done < n:
            if self._writer is None:
                utc_ns = self._clock(index + done)
                path = self.directory / file_name(self.settings.prefix, utc_ns)
                self._writer = _Writer(
                    path, self.sample_rate, self.n_channels, self.settings.bits_per_sample
                )
            take = min(n - done, self.file_samples - self._writer.n_samples)
            self._writer.file.write(self._to_int(samples[done : done + take]))
            self._writer.n_samples += take
            self.stats.samples_written += take
            done += take
            if self._writer.n_samples >= self.file_samples:
                self._close_file()
        self._next_index = index + n

    def _to_int(self, x: NDArray[np.float32]) -> NDArray[Any]:
        scaled = np.rint(x.astype(np.float64) * self._scale)
        clipped = np.clip(scaled, -self._scale, self._scale - 1)
        self.stats.samples_clipped += int(np.count_nonzero(clipped != scaled))
        ints = clipped.astype(self._dtype)
        if self._dtype is np.int32:
            ints = ints << 8  # libsndfile keeps the top 24 bits of an int32 for PCM_24
        return ints

    def _worst_bytes(self, n_samples: int) -> int:
        """The most bytes ``n_samples`` can add to a FLAC file (verbatim frames)."""
        frames = n_samples // _FLAC_BLOCK + 1
        return n_samples * self._bytes_per_sample + frames * _FLAC_FRAME_OVERHEAD

    def _space_ok(self, n_samples: int) -> bool:
        """Whether ``n_samples`` more can be written and keep ``min_free_mb`` free."""
        try:
            free = int(self._disk_free(self.directory))
        except OSError as e:
            if str(e) != self._free_error:  # once per kind of failure
                self._free_error = str(e)
                _LOGGER.error("archive: cannot check free space in %s: %s", self.directory, e)
            return not self.stats.stopped
        self.stats.free_bytes = free
        limit = self.settings.min_free_mb * _MIB
        need = self._worst_bytes(n_samples) + self._slack_bytes
        if self.stats.stopped:
            if free - need >= limit * _RESUME_FACTOR:
                _LOGGER.warning("archive: resuming, %.1f MiB free", free / _MIB)
                self.stats.stopped = False
            return not self.stats.stopped
        if free - need < limit:
            _LOGGER.error(
                "archive: STOPPED: only %.1f MiB free in %s (archive.min_free_mb = %g); "
                "resuming above %.1f MiB",
                free / _MIB,
                self.directory,
                self.settings.min_free_mb,
                (limit * _RESUME_FACTOR + need) / _MIB,
            )
            self.stats.stopped = True
            return False
        return True

    def _close_file(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            size = writer.close()
        except (OSError, RuntimeError, sf.LibsndfileError) as e:
            _LOGGER.error("archive: cannot finish %s: %s", writer.path, e)
            return
        self.stats.files += 1
        self.stats.bytes_written += size
        self.completed.append(writer.path)
        del self.completed[:-1000]
        _LOGGER.debug("archive: wrote %s (%d samples)", writer.path.name, writer.n_samples)

    def _abandon_file(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.file.close()
            except (OSError, RuntimeError, sf.LibsndfileError):
                pass
