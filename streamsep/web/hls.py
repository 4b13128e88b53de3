"""Live HLS of one published stem: AAC (PyAV's encoder) in MPEG-TS segments, a rolling window.

:class:`HlsWriter` takes chunks from the feed thread into a bounded queue (never blocks; a full
queue drops the oldest chunk, counted, and the hole is filled like any gap) and encodes on its
own thread (``streamsep-hls-out``). One AAC encoder runs through a whole period, so that
segments join without priming silence between them; segments are cut at AAC frame boundaries
once they reach ``segment_seconds``.

Timeline: missing audio up to ``max_fill_seconds`` is encoded as silence, so segment times stay
the capture times; a longer gap, a publisher restart or a restart of this writer starts a new
period (``EXT-X-DISCONTINUITY``). Every segment carries ``EXT-X-PROGRAM-DATE-TIME``, the UTC
capture time of its first decoded sample (the encoder's priming included: it starts
``frame_size`` samples before the first input sample). ``state.json`` in the folder keeps the
window, the next media sequence number and the discontinuity sequence, so that both continue
across restarts; files are replaced atomically (write, then rename).
"""

from __future__ import annotations

import datetime
import fractions
import json
import logging
import math
import os
import queue
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import av
import numpy as np
import soxr
from numpy.typing import NDArray

from streamsep.errors import ConfigError
from streamsep.net.subscribe import Chunk
from streamsep.web.settings import AAC_RATES, HlsOutSettings

__all__ = ["HlsWriter", "PLAYLIST", "STATE"]

_LOGGER = logging.getLogger(__name__)

PLAYLIST: Final = "live.m3u8"
STATE: Final = "state.json"
_QUEUE_CHUNKS: Final = 256
_KEEP_EXTRA: Final = 3  # segment files kept after they leave the window (players mid-download)
_FALLBACK_RATE: Final = 48000
_TS_TIME_BASE: Final = fractions.Fraction(1, 90000)
_WARN_AFTER_CHUNKS: Final = 200  # of other stems, none of the chosen one


@dataclass
class _Segment:
    sequence: int
    name: str
    duration: float
    pdt_ns: int
    discontinuity: bool


class _Period:
    """One encoder run: a continuous stretch of the stem."""

    def __init__(self, rate: int, n_channels: int, t0_ns: int, index: int, bitrate: int) -> None:
        self.in_rate = rate
        self.out_rate = rate if rate in AAC_RATES else _FALLBACK_RATE
        self.resampler = (
            None
            if self.out_rate == rate
            else soxr.ResampleStream(rate, self.out_rate, n_channels, dtype="float32")
        )
        self.n_channels = n_channels
        self.t0_ns = t0_ns  # capture time of encoder pts 0
        self.next_index = index  # next stream index expected
        codec = av.CodecContext.create("aac", "w")
        codec.sample_rate = self.out_rate
        codec.layout = "stereo" if n_channels == 2 else "mono"
        codec.format = "fltp"
        codec.bit_rate = bitrate
        codec.time_base = fractions.Fraction(1, self.out_rate)
        codec.open()
        self.codec: Any = codec
        self.frame_size = int(codec.frame_size)
        self.pending = np.zeros((n_channels, 0), np.float32)
        self.pts = 0

    def encode(self, samples: NDArray[np.float32], last: bool = False) -> list[Any]:
        """Packets for ``samples`` (shape (n, n_channels)); ``last`` flushes the encoder."""
        if self.resampler is not None:
            samples = self.resampler.resample_chunk(samples, last=last)
        self.pending = np.concatenate([self.pending, samples.T.astype(np.float32)], axis=1)
        packets: list[Any] = []
        size = self.frame_size
        n_frames = self.pending.shape[1] // size
        if last and self.pending.shape[1] % size:
            pad = size - self.pending.shape[1] % size
            self.pending = np.pad(self.pending, ((0, 0), (0, pad)))
            n_frames += 1
        for k in range(n_frames):
            block = np.ascontiguousarray(self.pending[:, k * size : (k + 1) * size])
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=self.codec.layout)
            frame.sample_rate = self.out_rate
            frame.pts = self.pts
            self.pts += size
            packets += self.codec.encode(frame)
        self.pending = self.pending[:, n_frames * size :]
        if last:
            packets += self.codec.encode(None)
        return packets


class HlsWriter:
    """Writes ``live.m3u8`` and its segments into ``settings.directory``; see the module
    docstring.

    Raises
    ------
    ConfigError
        If the folder cannot be created or written.
    """

    def __init__(self, settings: HlsOutSettings) -> None:
        self.settings = settings
        self.dir = Path(settings.directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe = self.dir / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"hls_out.directory: cannot write {self.dir}: {e.strerror}") from None
        self._queue: queue.Queue[Chunk | None] = queue.Queue(_QUEUE_CHUNKS)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped_chunks = 0
        self._others = 0
        self.filled_samples = 0
        self.segments_written = 0
        self.errors = 0
        self._period: _Period | None = None
        self._container: Any = None
        self._stream: Any = None
        self._seg_first_pts: int | None = None
        self._seg_last_end = 0
        self._discontinuity_next = False
        self._segments: list[_Segment] = []
        self._next_sequence = 0
        self._discontinuity_sequence = 0
        self._load_state()

    # -- state -------------------------------------------------------------------------------

    def _load_state(self) -> None:
        path = self.dir / STATE
        if not path.exists():
            return
        try:
            state = json.loads(path.read_text())
            self._segments = [_Segment(**s) for s in state["segments"]]
            self._next_sequence = int(state["next_sequence"])
            self._discontinuity_sequence = int(state["discontinuity_sequence"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            _LOGGER.warning("hls_out: ignoring unreadable %s: %s", path, e)
            numbers = [int(p.stem[3:]) for p in self.dir.glob("seg*.ts") if p.stem[3:].isdigit()]
            self._segments = []
            self._next_sequence = max(numbers, default=-1) + 1
        self._discontinuity_next = bool(self._segments) or self._next_sequence > 0
        _LOGGER.info("hls_out: continuing at media sequence %d", self._next_sequence)

    def _save(self) -> None:
        state = {
            "version": 1,
            "next_sequence": self._next_sequence,
            "discontinuity_sequence": self._discontinuity_sequence,
            "segments": [asdict(s) for s in self._segments],
        }
        _atomic_write(self.dir / STATE, json.dumps(state, indent=1).encode())
        _atomic_write(self.dir / PLAYLIST, self.playlist().encode())

    def playlist(self) -> str:
        """The current ``live.m3u8`` text."""
        target = max(
            [math.ceil(self.settings.segment_seconds)]
            + [math.ceil(s.duration) for s in self._segments]
        )
        first = self._segments[0].sequence if self._segments else self._next_sequence
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{target}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
            f"#EXT-X-DISCONTINUITY-SEQUENCE:{self._discontinuity_sequence}",
        ]
        for s in self._segments:
            if s.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_iso(s.pdt_ns)}")
            lines.append(f"#EXTINF:{s.duration:.6f},")
            lines.append(s.name)
        return "\n".join(lines) + "\n"

    # -- input (feed thread) -----------------------------------------------------------------

    def write(self, chunk: Chunk) -> None:
        """Queue ``chunk`` if it is of the chosen stem; never blocks (drop-oldest)."""
        if chunk.stem != self.settings.stem:
            self._others += 1
            if self._others == _WARN_AFTER_CHUNKS:
                _LOGGER.warning(
                    "hls_out.stem %r is not published here (seen: %s); nothing is written",
                    self.settings.stem,
                    chunk.stem,
                )
            return
        self._others = -(1 << 62)  # the stem is there: never warn
        while True:
            try:
                self._queue.put_nowait(chunk)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    with self._lock:
                        self.dropped_chunks += 1
                except queue.Empty:
                    pass

    def start(self) -> None:
        """Start the encoder thread."""
        self._thread = threading.Thread(target=self._run, name="streamsep-hls-out", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Encode what is queued, close the period (its last segment written), join."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=5.0)
        except queue.Full:
            _LOGGER.warning("hls_out: queue full at stop; the newest audio is not written")
        self._thread.join(10.0)
        self._thread = None

    def stats(self) -> dict[str, Any]:
        """Counters, JSON-able."""
        with self._lock:
            return {
                "segments_written": self.segments_written,
                "next_sequence": self._next_sequence,
                "dropped_chunks": self.dropped_chunks,
                "filled_samples": self.filled_samples,
                "errors": self.errors,
            }

    # -- encoder thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            try:
                if chunk is None:
                    self._end_period()
                    return
                self._on_chunk(chunk)
            except Exception:  # noqa: BLE001 - one bad chunk must not end the output
                with self._lock:
                    self.errors += 1
                _LOGGER.exception("hls_out: chunk skipped; starting a new period")
                self._period = None
                self._abort_segment()

    def _on_chunk(self, chunk: Chunk) -> None:
        p = self._period
        n_channels = min(2, chunk.samples.shape[1])
        samples = chunk.samples[:, :n_channels]
        missing = 0 if p is None else chunk.first_sample - p.next_index
        restart = (
            p is None
            or chunk.new_stream
            or missing < 0
            or chunk.sample_rate != p.in_rate
            or n_channels != p.n_channels
            or missing > self.settings.max_fill_seconds * chunk.sample_rate
        )
        if restart:
            self._end_period()
            p = self._period = _Period(
                chunk.sample_rate,
                n_channels,
                chunk.capture_time_ns,
                chunk.first_sample,
                self.settings.bitrate,
            )
        elif missing > 0:
            assert p is not None
            with self._lock:
                self.filled_samples += missing
            self._mux(p.encode(np.zeros((missing, n_channels), np.float32)))
        assert p is not None
        p.next_index = chunk.end_sample
        self._mux(p.encode(np.nan_to_num(samples)))
        if chunk.end_of_stream:
            self._end_period()

    def _end_period(self) -> None:
        p = self._period
        if p is None:
            return
        self._mux(p.encode(np.zeros((0, p.n_channels), np.float32), last=True))
        self._close_segment()
        self._period = None
        self._discontinuity_next = True

    def _mux(self, packets: list[Any]) -> None:
        p = self._period
        assert p is not None
        for packet in packets:
            pts = int(packet.pts) + p.frame_size  # >= 0: the priming frame starts at -frame_size
            if self._container is None:
                self._open_segment(pts)
            packet.pts = packet.dts = pts
            packet.time_base = fractions.Fraction(1, p.out_rate)
            packet.stream = self._stream
            self._container.mux(packet)  # rescales the packet's times to the stream's
            self._seg_last_end = pts + p.frame_size
            assert self._seg_first_pts is not None
            if self._seg_last_end - self._seg_first_pts >= self.settings.segment_seconds * (
                p.out_rate
            ):
                self._close_segment()

    def _open_segment(self, pts: int) -> None:
        p = self._period
        assert p is not None
        name = f"seg{self._next_sequence}.ts"
        self._container = av.open(str(self.dir / (name + ".part")), "w", format="mpegts")
        stream = self._container.add_stream("aac", rate=p.out_rate)
        stream.codec_context.layout = p.codec.layout
        stream.codec_context.extradata = p.codec.extradata
        stream.time_base = _TS_TIME_BASE
        self._stream = stream
        self._seg_first_pts = pts

    def _abort_segment(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001
                pass
            self._container = None

    def _close_segment(self) -> None:
        p = self._period
        if self._container is None or p is None or self._seg_first_pts is None:
            return
        self._container.close()
        self._container = None
        name = f"seg{self._next_sequence}.ts"
        os.replace(self.dir / (name + ".part"), self.dir / name)
        first = self._seg_first_pts - p.frame_size  # encoder pts of the first decoded sample
        segment = _Segment(
            sequence=self._next_sequence,
            name=name,
            duration=(self._seg_last_end - self._seg_first_pts) / p.out_rate,
            pdt_ns=p.t0_ns + round(first * 1e9 / p.out_rate),
            discontinuity=self._discontinuity_next,
        )
        self._discontinuity_next = False
        self._segments.append(segment)
        self._next_sequence += 1
        while len(self._segments) > self.settings.window_segments:
            gone = self._segments.pop(0)
            if gone.discontinuity:
                self._discontinuity_sequence += 1
            old = self.dir / f"seg{gone.sequence - _KEEP_EXTRA}.ts"
            old.unlink(missing_ok=True)
        self._save()
        with self._lock:
            self.segments_written += 1


def _iso(ns: int) -> str:
    """UTC ISO 8601 with milliseconds, e.g. ``2026-11-30T07:00:00.125Z``."""
    t = datetime.datetime.fromtimestamp(ns // 1_000_000 / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns // 1_000_000 % 1000:03d}Z"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
