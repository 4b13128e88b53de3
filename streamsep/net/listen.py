"""``streamsep listen``: subscribe to published stems, record them gap-free, play, print levels.

Recording keeps the stream's timeline: samples missing before a chunk are written as silence of
exactly the missing length (and logged), never closed up, so a file's sample ``k`` is stream
sample ``first + k``. A publisher restart ends a single-file recording and starts a new file in
``--record-dir`` mode.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from streamsep.errors import AudioFileError, ConfigError, StreamsepError
from streamsep.net.subscribe import Chunk, JsonMessage, Subscriber

__all__ = ["ListenSettings", "ListenReport", "StemReport", "listen", "format_levels"]

_LOGGER = logging.getLogger(__name__)

_RECORD_FORMATS: Final = {".flac": ("FLAC", "PCM_24"), ".wav": ("WAV", "FLOAT")}
_SILENCE_BLOCK: Final = 1 << 16
_POLL_SECONDS: Final = 0.2


@dataclass(frozen=True)
class ListenSettings:
    """What ``listen`` subscribes to and does with it."""

    endpoint: str
    """Publisher endpoint."""
    stems: tuple[str, ...] = ()
    """Stems to receive (``mix`` for the input); empty: every audio topic."""
    play: bool = False
    """Play the first stem on the default output device (sounddevice)."""
    record_path: str | None = None
    """Record into this ``.flac``/``.wav`` file (``{stem}`` in the name, or ``.<stem>`` added
    before the suffix unless exactly one stem is selected)."""
    record_dir: str | None = None
    """Record into ``DIR/<stem>_<UTC capture time of first sample>.<record_format>`` files."""
    rollover_seconds: float | None = None
    """Start a new file in ``record_dir`` every this many stream seconds."""
    record_format: str = "flac"
    """``flac`` (24-bit) or ``wav`` (32-bit float) for ``record_dir``."""
    levels: bool = False
    """Print ``levels`` messages."""
    seconds: float | None = None
    """Stop after this many stream seconds per stem (gaps included); None: end of stream."""
    idle_timeout_seconds: float | None = None
    """Give up when nothing arrives for this long, seconds; None waits forever."""
    curve_server_key: str | None = None
    """Publisher public key file (``.key``) for CURVE."""
    curve_client_key: str | None = None
    """This client's ``.key_secret`` file for CURVE."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "stems", tuple(self.stems))
        if self.record_path and self.record_dir:
            raise ConfigError("listen: record_path and record_dir are exclusive")
        if self.record_path and Path(self.record_path).suffix.lower() not in _RECORD_FORMATS:
            raise ConfigError(
                f"listen: record file must end in .flac or .wav, got {self.record_path}"
            )
        if f".{self.record_format}" not in _RECORD_FORMATS:
            raise ConfigError(
                f"listen: record_format must be flac or wav, got {self.record_format!r}"
            )
        if self.rollover_seconds is not None and (
            not self.record_dir or self.rollover_seconds <= 0
        ):
            raise ConfigError("listen: rollover_seconds needs record_dir and must be > 0")
        if self.seconds is not None and self.seconds <= 0:
            raise ConfigError(f"listen: seconds must be > 0, got {self.seconds}")


@dataclass
class StemReport:
    """What happened to one stem."""

    sample_rate: int = 0
    received_samples: int = 0
    """Samples per channel received (and recorded, up to ``seconds``)."""
    filled_samples: int = 0
    """Missing samples written as silence."""
    gaps: int = 0
    """Gaps seen."""
    files: list[str] = field(default_factory=list)
    ended: bool = False
    """End of stream or ``seconds`` reached."""


@dataclass
class ListenReport:
    """Per-stem outcome of :func:`listen`."""

    stems: dict[str, StemReport] = field(default_factory=dict)
    timed_out: bool = False
    """Stopped by ``idle_timeout_seconds``."""


class _Recorder:
    """Writes one stem to one file, or to rolling files in a folder. Not thread-safe."""

    def __init__(self, settings: ListenSettings, stem: str, rate: int, n_channels: int) -> None:
        self.settings = settings
        self.stem = stem
        self.rate = rate
        self.n_channels = n_channels
        self.rollover = (
            None if settings.rollover_seconds is None else int(settings.rollover_seconds * rate)
        )
        self.files: list[str] = []
        self._file: sf.SoundFile | None = None
        self._in_file = 0
        self._subtype = "FLOAT"

    def _target(self, time_ns: int) -> tuple[Path, str, str]:
        if self.settings.record_path:
            path = Path(self.settings.record_path)
            if "{stem}" in path.name:
                path = path.with_name(path.name.format(stem=self.stem))
            elif len(self.settings.stems) != 1:
                path = path.with_name(f"{path.stem}.{self.stem}{path.suffix}")
        else:
            stamp = dt.datetime.fromtimestamp(time_ns / 1e9, dt.timezone.utc)
            name = f"{self.stem}_{stamp:%Y%m%dT%H%M%S}.{stamp.microsecond // 1000:03d}Z"
            path = Path(str(self.settings.record_dir)) / f"{name}.{self.settings.record_format}"
            k = 1
            while path.exists() or str(path) in self.files:
                path = path.with_name(f"{name}-{k}.{self.settings.record_format}")
                k += 1
        kind, subtype = _RECORD_FORMATS[path.suffix.lower()]
        return path, kind, subtype

    def _open(self, time_ns: int) -> sf.SoundFile:
        path, kind, subtype = self._target(time_ns)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = sf.SoundFile(
                str(path), "w", self.rate, self.n_channels, subtype=subtype, format=kind
            )
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            raise AudioFileError(f"cannot write audio file {path}: {e}") from e
        _LOGGER.info("recording %s to %s", self.stem, path)
        self.files.append(str(path))
        self._subtype = subtype
        self._in_file = 0
        return handle

    def write(self, samples: NDArray[np.float32], time_ns: int) -> None:
        """Append ``samples`` (n_samples, n_channels); ``time_ns`` is the capture time of the
        first one (names rolled-over files)."""
        done = 0
        while done < samples.shape[0]:
            if self._file is None:
                self._file = self._open(time_ns + done * 1_000_000_000 // self.rate)
            n = samples.shape[0] - done
            if self.rollover is not None:
                n = min(n, self.rollover - self._in_file)
            block = samples[done : done + n]
            if self._subtype == "PCM_24":
                block = np.clip(block, -1.0, 1.0 - 2.0**-23)
            self._file.write(block)
            self._in_file += n
            done += n
            if self.rollover is not None and self._in_file >= self.rollover:
                self.close()

    def write_silence(self, n: int, time_ns: int) -> None:
        """Append ``n`` samples of silence."""
        zeros = np.zeros((min(n, _SILENCE_BLOCK), self.n_channels), np.float32)
        for start in range(0, n, _SILENCE_BLOCK):
            k = min(_SILENCE_BLOCK, n - start)
            self.write(zeros[:k], time_ns + start * 1_000_000_000 // self.rate)

    def close(self) -> None:
        """Finish the current file."""
        if self._file is not None:
            self._file.close()
            self._file = None


class _Player:
    """Plays one stem on the default output device from its own thread (blocking writes)."""

    def __init__(self, rate: int, n_channels: int) -> None:
        try:
            import sounddevice as sd
        except (ImportError, OSError) as e:
            raise ImportError("sounddevice and PortAudio must be installed for --play") from e
        try:
            self._stream = sd.OutputStream(samplerate=rate, channels=n_channels, dtype="float32")
            self._stream.start()
        except sd.PortAudioError as e:
            raise StreamsepError(f"error opening output stream: {e}") from e
        self._queue: queue.Queue[NDArray[np.float32] | None] = queue.Queue(maxsize=64)
        self._thread = threading.Thread(target=self._run, name="streamsep-player", daemon=True)
        self._thread.start()
        self.dropped = 0

    def write(self, samples: NDArray[np.float32]) -> None:
        """Queue samples; drops them (counted) if the device lags by 64 chunks."""
        try:
            self._queue.put_nowait(samples)
        except queue.Full:
            self.dropped += samples.shape[0]

    def _run(self) -> None:
        while (block := self._queue.get()) is not None:
            if self._stream.write(block):
                _LOGGER.debug("playback underflow")

    def close(self) -> None:
        """Play what is queued, then close the device."""
        self._queue.put(None)
        self._thread.join(5.0)
        self._stream.stop()
        self._stream.close()


def format_levels(body: dict[str, Any]) -> str:
    """One line for a ``levels`` message: time, then per stem RMS/peak in dBFS (and in
    dB re 1 µPa when calibrated)."""
    stamp = dt.datetime.fromtimestamp(body.get("capture_time_ns", 0) / 1e9, dt.timezone.utc)
    parts = [f"{stamp:%H:%M:%S}.{stamp.microsecond // 1000:03d}Z"]
    for stem, level in body.get("levels", {}).items():
        text = f"{stem} rms {level['rms_dbfs']:7.1f} peak {level['peak_dbfs']:7.1f} dBFS"
        if "rms_db_re_1upa" in level:
            text += f" ({level['rms_db_re_1upa']:.1f} / {level['peak_db_re_1upa']:.1f} dB re 1 µPa)"
        parts.append(text)
    return " | ".join(parts)


def listen(
    settings: ListenSettings,
    *,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> ListenReport:
    """Receive until every stem ended or reached ``seconds``, ``stop`` is set, or idle timeout.

    Parameters
    ----------
    settings : ListenSettings
        What to receive and what to do with it.
    out : text stream, optional
        Where levels lines go (default: stdout).
    stop : threading.Event, optional
        Set it from another thread to end early.

    Raises
    ------
    ConfigError, AudioFileError, StreamsepError
        On bad keys, unwritable files or an unusable output device.
    """
    out = sys.stdout if out is None else out
    report = ListenReport()
    recorders: dict[str, _Recorder] = {}
    limits: dict[str, int | None] = {}
    timeline: dict[str, int] = {}
    player: _Player | None = None
    play_stem = settings.stems[0] if settings.stems else None
    record = bool(settings.record_path or settings.record_dir)
    subscriber = Subscriber(
        settings.endpoint,
        settings.stems or None,
        levels=settings.levels,
        curve_server_key=settings.curve_server_key,
        curve_client_key=settings.curve_client_key,
    )
    last_message = time.monotonic()
    try:
        while stop is None or not stop.is_set():
            message = subscriber.recv(_POLL_SECONDS)
            if message is None:
                idle = time.monotonic() - last_message
                if (
                    settings.idle_timeout_seconds is not None
                    and idle > settings.idle_timeout_seconds
                ):
                    report.timed_out = True
                    break
                continue
            last_message = time.monotonic()
            if isinstance(message, JsonMessage):
                if message.topic == "levels":
                    print(format_levels(message.body), file=out, flush=True)
                continue
            chunk: Chunk = message
            stem = chunk.stem
            rep = report.stems.setdefault(stem, StemReport(sample_rate=chunk.sample_rate))
            if rep.ended:
                continue
            if stem not in timeline or chunk.new_stream:
                if stem in timeline:  # the publisher restarted: start afresh
                    if stem in recorders:
                        finished = recorders.pop(stem)
                        finished.close()
                        rep.files += finished.files
                    if settings.record_path:
                        _LOGGER.warning("%s: stream restarted; recording stopped", stem)
                        rep.ended = True
                        continue
                timeline[stem] = 0
                limits[stem] = (
                    None
                    if settings.seconds is None
                    else round(settings.seconds * chunk.sample_rate)
                )
                if record:
                    recorders[stem] = _Recorder(
                        settings, stem, chunk.sample_rate, chunk.samples.shape[1]
                    )
                if settings.play and player is None and play_stem in (None, stem):
                    play_stem = stem
                    player = _Player(chunk.sample_rate, chunk.samples.shape[1])
            fill, samples = chunk.missing, chunk.samples
            limit = limits[stem]
            if limit is not None:
                room = limit - timeline[stem]
                fill = min(fill, room)
                samples = samples[: max(0, room - fill)]
            if fill:
                rep.gaps += 1
                rep.filled_samples += fill
                seconds = chunk.missing / chunk.sample_rate
                _LOGGER.warning(
                    "%s: %d samples (%.3f s) missing before sample %d; filled with silence",
                    *(stem, chunk.missing, seconds, chunk.first_sample),
                )
            gap_ns = chunk.capture_time_ns - fill * 1_000_000_000 // chunk.sample_rate
            if stem in recorders:
                recorders[stem].write_silence(fill, gap_ns)
                recorders[stem].write(samples, chunk.capture_time_ns)
            if player is not None and stem == play_stem:
                if fill:
                    player.write(np.zeros((fill, samples.shape[1]), np.float32))
                player.write(samples)
            rep.received_samples += samples.shape[0]
            timeline[stem] += fill + samples.shape[0]
            rep.ended = chunk.end_of_stream or (limit is not None and timeline[stem] >= limit)
            wanted = settings.stems or tuple(report.stems)
            if all(s in report.stems and report.stems[s].ended for s in wanted):
                break
    finally:
        subscriber.close()
        for stem, recorder in recorders.items():
            recorder.close()
            report.stems[stem].files += recorder.files
        if player is not None:
            player.close()
    return report
