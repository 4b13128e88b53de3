"""A subscriber of the published streams turned into browser messages (``frames``).

:class:`Feed` runs a :class:`~streamsep.net.subscribe.Subscriber` on its own thread
(``streamsep-web-feed``). Per stem it computes spectrogram columns (:class:`ColumnMaker`) and
int16 mono audio at the browser rate (soxr), once for every browser, and turns the protocol's
accounting into events: a stem's stream start and end (a publisher restart is a new start),
and every gap, lost (absent) or filled (silence), with its capture time and length; the
publisher's orca activity events (topic ``events``) become ``detection`` messages, the latest
``_RECENT_DETECTIONS`` of them kept for browsers that connect later. Missing
audio up to ``_FILL_SECONDS`` is replaced by silence in the columns and the audio so that the
page's timeline stays continuous; a longer gap restarts the stem's column and audio state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import soxr
import zmq

from streamsep.errors import ConfigError, StreamsepError
from streamsep.net import protocol as proto
from streamsep.net.subscribe import Chunk, JsonMessage, Subscriber
from streamsep.validate import check_number
from streamsep.web import frames
from streamsep.web.settings import WebSettings
from streamsep.web.spectrogram import ColumnMaker

__all__ = ["Feed", "Emit"]

_LOGGER = logging.getLogger(__name__)

_RECV_SECONDS: Final = 0.2
_FILL_SECONDS: Final = 10.0
_ERROR_LOG_SECONDS: Final = 10.0
_RECENT_DETECTIONS: Final = 20  # detection messages replayed to a browser that connects

Emit = Callable[[bytes | str, "str | None"], None]
"""``emit(message, audio_stem)``: hand one message to the clients (``audio_stem``: only to those
that asked for that stem's audio; None: to all). Called on the feed thread."""
Tap = Callable[[Chunk], None]


@dataclass
class _Stem:
    index: int
    sample_rate: int
    n_channels: int
    columns: ColumnMaker
    resampler: Any
    anchor_index: int = 0
    anchor_ns: int = 0
    next_index: int = 0
    audio_out: int = 0  # audio-rate samples emitted since audio_base
    audio_base: int = 0  # stream index where audio_out counts from
    meta: dict[str, Any] = field(default_factory=dict)

    def time_ms(self, index: float) -> float:
        """Capture time (UTC ms) of stream index ``index``."""
        return (self.anchor_ns + (index - self.anchor_index) * 1e9 / self.sample_rate) / 1e6


_ID_CHARS: Final = 256  # longest event id passed on


_DETECTION_NUMBERS: Final = (
    "start_index", "end_index", "start_time_ns", "end_time_ns", "sequence", "duration_seconds",
    "peak_score_db", "peak_level_dbfs",
)  # fmt: skip


def detection_body(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of an ``events`` message that the page shows, checked (a publisher's bad
    message is skipped by the feed, never passed on to the browsers).

    Raises
    ------
    StreamsepError
        Naming the first missing or ill-typed field (:class:`ConfigError` from the shared
        checks of :mod:`streamsep.validate` for the numbers).
    """
    out: dict[str, Any] = {}
    for key in _DETECTION_NUMBERS:
        check_number(f"events.{key}", body.get(key))  # finite, not a bool
        out[key] = body[key]  # as sent: indices and times stay integers
    if out["end_time_ns"] < out["start_time_ns"]:
        raise StreamsepError("events: end_time_ns is before start_time_ns")
    event_id = body.get("id")
    if not isinstance(event_id, str) or len(event_id) > _ID_CHARS:
        raise StreamsepError(
            f"events: id must be a string of at most {_ID_CHARS} characters, "
            f"got {str(event_id)[:40]!r}"
        )
    band = body.get("band_hz")
    if not isinstance(band, list) or len(band) != 2:
        raise StreamsepError(f"events: band_hz must be [low, high] in Hz, got {band!r}")
    band_hz = [check_number("events.band_hz", f) for f in band]
    db_re_1upa = None
    if body.get("calibrated") is True:
        try:
            db_re_1upa = check_number(
                "events.peak_level_db_re_1upa", body.get("peak_level_db_re_1upa")
            )
        except ConfigError:  # shown uncalibrated
            db_re_1upa = None
    return {
        **out,
        "id": event_id,
        "band_hz": band_hz,
        "calibrated": db_re_1upa is not None,
        "peak_level_db_re_1upa": db_re_1upa,
    }


class Feed:
    """Subscribes to ``endpoint`` and emits browser messages; see the module docstring.

    Parameters
    ----------
    endpoint : str
        The publisher.
    settings : WebSettings
        Spectrogram and audio parameters.
    emit : callable or None
        See :data:`Emit`; None: no browser messages are computed (only the taps run).
    curve_server_key, curve_client_key : str, optional
        CURVE key files (both or neither).
    taps : list of callable, optional
        Called with every audio chunk on the feed thread (must not block), e.g. the HLS writer.
    """

    def __init__(
        self,
        endpoint: str,
        settings: WebSettings,
        emit: Emit | None,
        *,
        curve_server_key: str | None = None,
        curve_client_key: str | None = None,
        taps: Sequence[Tap] | None = None,
    ) -> None:
        self.settings = settings
        self._emit = emit
        self._taps = list(taps or [])
        try:
            self._subscriber = Subscriber(
                endpoint,
                levels=True,
                status=True,
                events=True,
                curve_server_key=curve_server_key,
                curve_client_key=curve_client_key,
            )
        except zmq.ZMQError as e:
            raise ConfigError(f"web: cannot connect to {endpoint!r}: {e}") from None
        self._stems: dict[str, _Stem] = {}
        self.stem_names: list[str] = []
        """Stems in order of first appearance (their index in binary messages)."""
        self._lock = threading.Lock()
        self._last: dict[str, str] = {}  # latest levels / status message, for new clients
        self._detections: deque[str] = deque(maxlen=_RECENT_DETECTIONS)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.messages_in = 0
        self.errors = 0
        self.latency_ms: float | None = None
        """Capture-to-server latency of the newest chunk (end sample), ms."""

    def start(self) -> None:
        """Start the feed thread."""
        self._thread = threading.Thread(target=self._run, name="streamsep-web-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the subscriber."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self._subscriber.close()

    def snapshot(self) -> list[str]:
        """The messages a new client needs first: each stem's stream start, the latest levels
        and status, the recent detections (thread-safe)."""
        with self._lock:
            starts = [frames.json_message("stream", **s.meta) for s in self._stems.values()]
            return starts + list(self._last.values()) + list(self._detections)

    def _run(self) -> None:
        last_error = 0.0
        while not self._stop.is_set():
            try:
                message = self._subscriber.recv(_RECV_SECONDS)
                if message is None:
                    continue
                self.messages_in += 1
                if isinstance(message, JsonMessage):
                    self._on_json(message)
                else:
                    self._on_chunk(message)
            except Exception as e:  # noqa: BLE001 - a bad message must not end the feed
                self.errors += 1
                if time.monotonic() - last_error > _ERROR_LOG_SECONDS:
                    last_error = time.monotonic()
                    _LOGGER.warning("web feed: skipped a message: %s", e)

    def _on_json(self, message: JsonMessage) -> None:
        if message.topic == proto.EVENTS_TOPIC:
            text = frames.json_message("detection", body=detection_body(message.body))
            with self._lock:
                self._detections.append(text)
        else:
            kind = "levels" if message.topic == proto.LEVELS_TOPIC else "status"
            text = frames.json_message(kind, body=message.body)
            with self._lock:
                self._last[kind] = text
        if self._emit is not None:
            self._emit(text, None)

    def _new_stem(self, chunk: Chunk) -> _Stem:
        s = self.settings
        rate = chunk.sample_rate
        index = self.stem_names.index(chunk.stem) if chunk.stem in self.stem_names else None
        if index is None:
            index = len(self.stem_names)
            self.stem_names.append(chunk.stem)
        maker = ColumnMaker(
            rate,
            columns_per_second=s.columns_per_second,
            max_hz=s.max_hz,
            n_bins=s.n_bins,
            db_min=s.db_min,
            db_max=s.db_max,
        )
        return _Stem(index, rate, chunk.header.n_channels, maker, None)

    def _restart(self, state: _Stem, index: int) -> None:
        state.columns.reset(index)
        state.resampler = soxr.ResampleStream(
            state.sample_rate, self.settings.audio_rate, 1, dtype="float32", quality="HQ"
        )
        state.audio_out = 0
        state.audio_base = index
        state.next_index = index

    def _on_chunk(self, chunk: Chunk) -> None:
        for tap in self._taps:
            tap(chunk)
        if self._emit is None:
            return
        state = self._stems.get(chunk.stem)
        if (
            state is None
            or chunk.sample_rate != state.sample_rate
            or chunk.header.n_channels != state.n_channels
        ):
            state = self._new_stem(chunk)
            with self._lock:
                self._stems[chunk.stem] = state
            self._restart(state, chunk.first_sample)
        state.anchor_index, state.anchor_ns = chunk.first_sample, chunk.capture_time_ns
        if chunk.new_stream:
            self._restart(state, chunk.first_sample)
            self._stream_event(state, chunk, "start")
        missing = chunk.first_sample - state.next_index
        if missing > 0:
            self._gap(state, chunk, "lost", chunk.first_sample - missing, missing)
            if missing <= _FILL_SECONDS * state.sample_rate:
                self._process(state, np.zeros(missing, np.float32), chunk)
            else:
                self._restart(state, chunk.first_sample)
        elif missing < 0:  # cannot happen within a stream (the subscriber says new_stream)
            raise StreamsepError(f"{chunk.topic}: index went back by {-missing}")
        if chunk.header.filled_samples:
            self._gap(state, chunk, "filled", chunk.first_sample, chunk.header.filled_samples)
        mono = chunk.samples.mean(axis=1) if chunk.samples.shape[1] > 1 else chunk.samples[:, 0]
        self._process(state, np.nan_to_num(mono.astype(np.float32)), chunk)
        end_ns = chunk.capture_time_ns + chunk.n_samples * 1e9 / chunk.sample_rate
        self.latency_ms = (time.time_ns() - end_ns) / 1e6
        if chunk.end_of_stream:
            self._stream_event(state, chunk, "end")

    def _send(self, message: bytes | str, audio_stem: str | None) -> None:
        if self._emit is not None:
            self._emit(message, audio_stem)

    def _process(self, state: _Stem, mono: np.ndarray, chunk: Chunk) -> None:
        end_ms = state.time_ms(chunk.end_sample)
        centre, columns = state.columns.feed(mono)
        if columns.shape[0]:
            self._send(
                frames.pack_columns(state.index, columns, state.time_ms(centre), end_ms), None
            )
        out = state.resampler.resample_chunk(mono, last=False)
        if out.shape[0]:
            first = (
                state.audio_base + state.audio_out * state.sample_rate / self.settings.audio_rate
            )
            pcm = np.rint(np.clip(out, -1.0, 1.0) * 32767).astype(np.int16)
            self._send(
                frames.pack_audio(state.index, pcm, state.time_ms(first), end_ms), chunk.stem
            )
            state.audio_out += out.shape[0]
        state.next_index += mono.shape[0]

    def _stream_event(self, state: _Stem, chunk: Chunk, event: str) -> None:
        meta = {
            "event": event,
            "stem": chunk.stem,
            "index": state.index,
            "sample_rate": state.sample_rate,
            "n_channels": state.n_channels,
            "first_sample": chunk.first_sample,
            "time_ms": chunk.capture_time_ns / 1e6,
            "column_ms": state.columns.column_seconds * 1000,
            "n_bins": state.columns.n_bins,
            "max_hz": state.columns.max_hz,
            "n_fft": state.columns.n_fft,
        }
        with self._lock:
            state.meta = meta
        self._send(frames.json_message("stream", **meta), None)

    def _gap(self, state: _Stem, chunk: Chunk, kind: str, first: int, n: int) -> None:
        body = {
            "stem": chunk.stem,
            "index": state.index,
            "kind": kind,
            "first_sample": first,
            "n_samples": n,
            "seconds": n / state.sample_rate,
            "time_ms": state.time_ms(first),
        }
        _LOGGER.info("web feed: %s: %d samples %s at %d", chunk.topic, n, kind, first)
        self._send(frames.json_message("gap", **body), None)
