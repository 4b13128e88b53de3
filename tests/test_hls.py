"""HLS source: real Orcasound segments served by a local HTTP server (127.0.0.1 only) through
HlsSource -> Pipeline -> Publisher -> Subscriber; gap rules, restarts and malformed input; the
playlist parser and the follower's logic through the fetch seam."""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import numpy as np
import pytest

from streamsep.engine.model import PassthroughModel
from streamsep.engine.params import ModelParams
from streamsep.engine.pipeline import Pipeline
from streamsep.engine.ringbuffer import RingBuffer
from streamsep.errors import ConfigError
from streamsep.net.publish import Publisher, PublishSettings
from streamsep.net.subscribe import Chunk, Subscriber
from streamsep.sources.hls.fetch import FetchError
from streamsep.sources.hls.follower import HlsSource
from streamsep.sources.hls.orcasound import OrcasoundResolver, OrcasoundSettings, orcasound_source
from streamsep.sources.hls.playlist import HlsError, parse_playlist, parse_program_date_time
from streamsep.sources.hls.settings import HlsSettings

from ._net import ipc_endpoint
from .conftest import FIXTURES, ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["ipc_endpoint"]  # a fixture

STREAMS = FIXTURES / "streams"
RATE = 48000
SEG = {name: (STREAMS / name).read_bytes() for name in ("live000.ts", "live001.ts", "live002.ts")}
# EXTINF as ffmpeg writes it: the decoded length (459 and 469 AAC frames of 1024 samples).
EXTINF = {"live000.ts": 9.792, "live001.ts": 10.005333, "live002.ts": 10.005333}
SEG_SAMPLES = round(10.005333 * RATE)  # 480256
T0_NS = 1_700_000_002_000_000_000  # program date-time of the first segment in the tests


def _wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)
    return value


# -- a local HTTP server -------------------------------------------------------------------


class _Server:
    """Serves ``routes`` (path -> bytes) on 127.0.0.1; other paths are 404. Counts hits."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with server._lock:
                    server.hits[self.path] = server.hits.get(self.path, 0) + 1
                server.answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one request (on its server thread): its route, else 404."""
        with self._lock:
            body = self.routes.get(handler.path)
        if body is None:
            handler.send_error(404)
            return
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def set(self, path: str, body: bytes | None) -> None:
        with self._lock:
            if body is None:
                self.routes.pop(path, None)
            else:
                self.routes[path] = body

    def count(self, path: str) -> int:
        with self._lock:
            return self.hits.get(path, 0)

    def wait_hits(self, path: str, n: int, timeout: float = 15.0) -> None:
        _wait_for(lambda: self.count(path) >= n, timeout, f"{n} request(s) of {path}")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


def _iso(ns: int) -> str:
    """ffmpeg's EXT-X-PROGRAM-DATE-TIME format (offset without a colon)."""
    stamp = datetime.fromtimestamp(ns // 10**9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ns % 10**9 // 1000:06d}+0000"


def _m3u8(
    entries: list[tuple[str, float]],
    *,
    media_sequence: int = 0,
    pdt_ns: int | None = None,
    endlist: bool = False,
) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1"]
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}")
    if pdt_ns is not None:
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_iso(pdt_ns)}")
    for name, seconds in entries:
        lines += [f"#EXTINF:{seconds:.6f},", name]
    if endlist:
        lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()


# -- reference decoding, plain PyAV ---------------------------------------------------------


def _decode(data: bytes, n_channels: int) -> np.ndarray:
    """One continuous PyAV decode of ``data`` (segments concatenated: MPEG-TS concatenates),
    frames mapped to ``n_channels`` (mono duplicated, stereo averaged); refused packets are
    skipped."""
    pieces = []
    with av.open(io.BytesIO(data), mode="r", format="mpegts") as container:
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for frame in frames:
                x = frame.to_ndarray().T.astype(np.float32)  # fltp: (channels, n) -> (n, c)
                if x.shape[1] != n_channels:
                    mono = x.mean(axis=1, keepdims=True, dtype=np.float32)
                    x = np.repeat(mono if x.shape[1] > 1 else x, n_channels, axis=1)
                pieces.append(x)
    return np.concatenate(pieces)


# -- HlsSource -> Pipeline -> Publisher -> Subscriber ---------------------------------------


class _Chain:
    """The acceptance chain: a passthrough model at the source's rate and channels, so that
    the published ``mix`` is exactly what the source wrote into the ring."""

    def __init__(self, source: HlsSource, endpoint: str) -> None:
        self.source = source
        self.info = source.probe()
        params = ModelParams(
            instrument_list=("orca_vocals", "noise"),
            sample_rate=self.info.sample_rate,
            frame_length=1024,
            frame_step=256,
            T=16,
            F=128,
            n_channels=self.info.n_channels,
            mask_extension="average",
        )
        rate = self.info.sample_rate
        settings = PublishSettings(
            endpoints=(endpoint,), hwm=1_000_000, queue_chunks=100_000,
            levels_seconds=0, status_seconds=0,
        )  # fmt: skip
        self.publisher = Publisher(
            settings,
            stems=params.instrument_list,
            sample_rate=rate,
            n_channels=params.n_channels,
            clock=lambda i: (source.start_utc_ns or 0) + i * 1_000_000_000 // rate,
        )
        self.pipeline = Pipeline(
            PassthroughModel(params),
            source_rate=rate,
            source_channels=self.info.n_channels,
            sinks=[self.publisher],
        )
        self.subscriber = Subscriber(endpoint, ["mix", "orca_vocals"], hwm=1_000_000)
        self.chunks: dict[str, list[Chunk]] = {"mix": [], "orca_vocals": []}
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        while not self._stop.is_set() and not self.subscriber.ended:
            message = self.subscriber.recv(0.1)
            if isinstance(message, Chunk):
                self.chunks[message.stem].append(message)

    def start(self) -> None:
        self.publisher.start()
        assert self.publisher.wait_for_subscribers(2, 10)
        self.pipeline.start()
        self.source.start(self.pipeline.ring)
        self._reader.start()

    def wait_ended(self, timeout: float) -> None:
        self._reader.join(timeout)
        assert not self._reader.is_alive(), "no end of stream"
        assert self.pipeline.wait(5)

    def stream(self, stem: str) -> tuple[np.ndarray, list[Chunk]]:
        """The stem's samples (contiguous: nothing may be missing) and its chunks."""
        return _contiguous(self.chunks[stem]), self.chunks[stem]

    def close(self) -> None:
        self._stop.set()
        self.source.stop()
        self.source.join(5)
        self.pipeline.stop()
        self.pipeline.join(5)
        self.publisher.close()
        self.publisher.stop()
        self._reader.join(5)
        self.subscriber.close()


def _contiguous(chunks: list[Chunk]) -> np.ndarray:
    """Samples of a finished topic whose messages follow each other with nothing missing."""
    assert chunks and chunks[-1].end_of_stream
    assert all(c.missing == 0 and c.missing_messages == 0 for c in chunks)
    assert [c.first_sample for c in chunks[1:]] == [c.end_sample for c in chunks[:-1]]
    return np.concatenate([c.samples for c in chunks])


def _filled_at(chunks: list[Chunk], index: int, n: int) -> int:
    """``filled_samples`` announced by the messages that hold samples ``index .. index + n``
    (a long gap is filled in pieces, each announced by the message where it starts)."""
    holding = [c for c in chunks if c.first_sample < index + n and c.end_sample > index]
    assert holding and holding[0].header.filled_samples > 0  # announced where it starts
    return sum(c.header.filled_samples for c in holding)


def _check_stream(
    chunks: list[Chunk], audio: np.ndarray, expected: list[np.ndarray | int]
) -> list[tuple[int, int]]:
    """``audio`` is ``expected`` (arrays of audio, ints for gaps of silence), each gap is
    announced by the message holding its first sample; returns the gaps ``(index, n)``."""
    index, gaps = 0, []
    for part in expected:
        if isinstance(part, int):
            gaps.append((index, part))
            np.testing.assert_array_equal(audio[index : index + part], 0)
            index += part
        else:
            np.testing.assert_array_equal(audio[index : index + part.shape[0]], part)
            index += part.shape[0]
    assert audio.shape[0] == index
    for at, n in gaps:
        assert _filled_at(chunks, at, n) == n
    assert sum(c.header.filled_samples for c in chunks) == sum(n for _, n in gaps)
    return gaps


# -- acceptance 1: a growing live playlist, decoded continuously ----------------------------


def test_live_playlist_is_followed_and_published_continuously(
    server: _Server, ipc_endpoint: str
) -> None:
    names = ["live000.ts", "live001.ts", "live002.ts"]
    for name in names:
        server.set(f"/live/{name}", SEG[name])
    entries = [(name, EXTINF[name]) for name in names]
    server.set("/live/live.m3u8", _m3u8(entries[:1]))
    settings = HlsSettings(reconnect_seconds=0.05, reconnect_max_seconds=0.2)
    source = HlsSource(server.url("/live/live.m3u8"), None, settings)
    chain = _Chain(source, ipc_endpoint)
    try:
        # live000 is mono, the two others stereo: the probed first segment decides.
        assert (chain.info.sample_rate, chain.info.n_channels) == (RATE, 1)
        chain.start()
        started = time.monotonic()
        for k in (1, 2):  # the playlist grows as the source consumes it
            server.wait_hits(f"/live/{names[k - 1]}", 1)
            server.set("/live/live.m3u8", _m3u8(entries[: k + 1]))
        server.wait_hits("/live/live002.ts", 1)
        server.set("/live/live.m3u8", _m3u8(entries, endlist=True))
        chain.wait_ended(30)
        elapsed = time.monotonic() - started
        mix, chunks = chain.stream("mix")
        vocals, _ = chain.stream("orca_vocals")
    finally:
        chain.close()
    reference = _decode(b"".join(SEG[name] for name in names), 1)
    print(
        f"\n{mix.shape[0]} samples ({mix.shape[0] / RATE:.3f} s) in {len(chunks)} chunks, "
        f"{elapsed:.2f} s; orca_vocals max error {np.abs(vocals - reference).max():.2e}"
    )
    assert reference.shape[0] == 470016 + 2 * 480256
    np.testing.assert_array_equal(mix, reference)  # bit-exact: one decoder across segments
    np.testing.assert_allclose(vocals, reference, atol=2e-6)  # through the STFT and back
    assert all(not c.gap for c in chunks)
    assert source.stats.segments == 3 and source.stats.samples_lost == 0
    assert source.stats.samples_written == source.stats.timeline_samples == mix.shape[0]
    assert source.done.is_set() and source.error is None  # the ENDLIST ended the stream
    # Each playlist was fetched at the target duration (1 s) or half of it, not hammered.
    assert server.count("/live/live.m3u8") <= 4 * elapsed + 4


# -- acceptance 2: a 404, a stall, and a node restart (Orcasound) ---------------------------


def test_orcasound_node_404_stall_and_restart_become_counted_gaps(
    server: _Server, ipc_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamsep.sources.hls")
    node, ts_a, ts_b = "rpi_orcasound_lab", 1_700_000_000, 1_700_000_100
    base = f"/bucket/{node}"
    content_a = ["live001.ts", "live002.ts", None, "live001.ts"]  # live002.ts of A: 404
    for k, name in enumerate(content_a):
        server.set(f"{base}/hls/{ts_a}/live{k:03d}.ts", None if name is None else SEG[name])
    entries_a = [(f"live{k:03d}.ts", 10.005333) for k in range(4)]
    server.set(f"{base}/latest.txt", f"{ts_a}\n".encode())
    server.set(f"{base}/hls/{ts_a}/live.m3u8", _m3u8(entries_a[:2], pdt_ns=T0_NS))
    settings = HlsSettings(
        live_edge_segments=2, stall_target_durations=2, segment_retries=2,
        reconnect_seconds=0.05, reconnect_max_seconds=0.2,
    )  # fmt: skip
    anchors: list[tuple[int, int]] = []
    node_settings = OrcasoundSettings(node, server.url("/bucket"))
    source = orcasound_source(
        node_settings, settings, on_anchor=lambda i, t: anchors.append((i, t))
    )
    chain = _Chain(source, ipc_endpoint)
    outage_ns = 30 * 10**9
    t_b = T0_NS + 4 * 10_005_333_000 + outage_ns  # the new stream starts 30 s after A ended
    try:
        assert (chain.info.sample_rate, chain.info.n_channels) == (RATE, 2)
        chain.start()
        server.wait_hits(f"{base}/hls/{ts_a}/live001.ts", 1)
        server.set(f"{base}/hls/{ts_a}/live.m3u8", _m3u8(entries_a, pdt_ns=T0_NS))
        server.wait_hits(f"{base}/hls/{ts_a}/live003.ts", 1)
        assert server.count(f"{base}/hls/{ts_a}/live002.ts") == 2  # tried twice, then a gap
        _wait_for(lambda: source.stats.stalls, 10, "a stall")
        latest_reads = server.count(f"{base}/latest.txt")
        server.wait_hits(f"{base}/latest.txt", latest_reads + 2)  # asked again while stalled
        # The node restarts: a new folder, then latest.txt names it.
        server.set(f"{base}/hls/{ts_b}/live000.ts", SEG["live002.ts"])
        server.set(f"{base}/hls/{ts_b}/live001.ts", SEG["live001.ts"])
        entries_b = [("live000.ts", 10.005333), ("live001.ts", 10.005333)]
        server.set(f"{base}/hls/{ts_b}/live.m3u8", _m3u8(entries_b, pdt_ns=t_b))
        server.set(f"{base}/latest.txt", f"{ts_b}\n".encode())
        server.wait_hits(f"{base}/hls/{ts_b}/live001.ts", 1)
        _wait_for(lambda: source.stats.segments == 5, 10, "the new stream's segments")
        assert not source.done.is_set() and source.error is None  # it stays up
        chain.source.stop()  # ends the stream: the ring closes and the pipeline drains
        chain.wait_ended(30)
        mix, chunks = chain.stream("mix")
    finally:
        chain.close()
    first = _decode(SEG["live001.ts"] + SEG["live002.ts"], 2)
    after_404 = _decode(SEG["live001.ts"], 2)  # a fresh decoder after a gap
    restarted = _decode(SEG["live002.ts"] + SEG["live001.ts"], 2)
    outage = outage_ns * RATE // 10**9
    gaps = _check_stream(chunks, mix, [first, SEG_SAMPLES, after_404, outage, restarted])
    print(f"\ngaps (index, samples): {gaps}; anchors {anchors}; stats {source.stats}")
    assert gaps == [(960512, 480256), (1921024, 1440000)]
    assert all(chunks[i].gap for i in range(len(chunks)) if chunks[i].header.filled_samples)
    stats = source.stats
    assert (stats.gaps, stats.samples_lost, stats.segment_failures) == (2, 1920256, 1)
    assert (stats.restarts, stats.segments, stats.segments_lost) == (1, 5, 1)
    # The clock: sample 0 at the first program date-time, re-anchored at the restart.
    assert anchors == [(0, T0_NS), (gaps[1][0] + gaps[1][1], t_b)]
    assert chunks[0].capture_time_ns == T0_NS == source.start_utc_ns
    # Each failure is logged once, not at every retry or poll.
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("live002.ts" in m for m in messages) == 1
    assert sum("stalled" in m for m in messages) == 1
    assert sum("new stream" in m for m in messages) == 1


# -- acceptance 3: a malformed playlist, garbage and truncated segments ---------------------


class _RingReader:
    """Reads a ring on a thread until it is closed; returns the timeline with gaps."""

    def __init__(self, ring: RingBuffer) -> None:
        self.ring = ring
        self.pieces: list[np.ndarray] = []
        self.gaps: list[tuple[int, int]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        index = 0
        while True:
            r = self.ring.read(1 << 16, timeout=0.1)
            if r.lost_before:  # gaps with no sample between them are one gap
                if self.gaps and sum(self.gaps[-1]) == index:
                    self.gaps[-1] = (self.gaps[-1][0], self.gaps[-1][1] + r.lost_before)
                else:
                    self.gaps.append((index, r.lost_before))
                self.pieces.append(np.zeros((r.lost_before, self.ring.n_channels), np.float32))
            self.pieces.append(r.samples)
            index += r.lost_before + r.samples.shape[0]
            if not r.samples.shape[0] and not r.lost_before and self.ring.closed:
                return

    def result(self, timeout: float) -> tuple[np.ndarray, list[tuple[int, int]]]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the ring was not closed"
        return np.concatenate(self.pieces), self.gaps


def test_malformed_playlist_and_corrupt_segments_become_logged_gaps(
    server: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamsep.sources.hls")
    rng = np.random.default_rng(7)
    garbage = b"GARBAGE!" + rng.integers(0, 256, 150_000, dtype=np.uint8).tobytes()
    truncated = SEG["live001.ts"][: len(SEG["live001.ts"]) * 6 // 10]
    for k, body in enumerate(
        [SEG["live001.ts"], SEG["live002.ts"], SEG["live001.ts"], garbage, truncated,
         SEG["live002.ts"]]
    ):  # fmt: skip
        server.set(f"/w/seg{k}.ts", body)
    entries = [(f"seg{k}.ts", 10.005333) for k in range(6)]
    server.set("/w/live.m3u8", _m3u8(entries[:2]))  # a sliding window of 2 segments
    settings = HlsSettings(live_edge_segments=2, reconnect_seconds=0.05, reconnect_max_seconds=0.2)
    source = HlsSource(server.url("/w/live.m3u8"), None, settings)
    info = source.probe()
    ring = RingBuffer(30 * RATE, info.n_channels)
    reader = _RingReader(ring)
    try:
        source.start(ring)
        server.wait_hits("/w/seg1.ts", 1)
        # The server answers an HTML error page with status 200 for a while...
        server.set("/w/live.m3u8", b"<html><body>503 Service Unavailable</body></html>")
        # (wait on the source's own count: the server counts a poll before the source has read it)
        _wait_for(lambda: source.stats.playlist_failures >= 4, 15, "4 failed playlist polls")
        assert not source.done.is_set()
        # ...meanwhile the window slid past seg2; seg3 is garbage, seg4 truncated.
        server.set("/w/live.m3u8", _m3u8(entries[3:], media_sequence=3, endlist=True))
        audio, gaps = reader.result(20)
    finally:
        source.stop()
        source.join(5)
    partial = _decode(truncated, 2)
    expected = [
        _decode(SEG["live001.ts"] + SEG["live002.ts"], 2),
        np.zeros((2 * SEG_SAMPLES, 2), np.float32),  # seg2 unseen + seg3 garbage
        partial,
        np.zeros((SEG_SAMPLES - partial.shape[0], 2), np.float32),  # seg4's missing end
        _decode(SEG["live002.ts"], 2),
    ]
    np.testing.assert_array_equal(audio, np.concatenate(expected))
    assert gaps == [(960512, 960512), (1921024 + partial.shape[0], 480256 - partial.shape[0])]
    assert partial.shape[0] == 280 * 1024  # the complete AAC frames of the first 60 %
    assert source.error is None and source.stats.segment_failures == 1
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("not an m3u8 playlist" in m for m in messages) == 1  # once, not per poll
    assert sum("seg2" in m or "left the playlist" in m for m in messages) == 1
    assert sum("seg3.ts" in m and "neither MPEG-TS" in m for m in messages) == 1
    assert sum("seg4.ts" in m and "decoded 286720 of 480256" in m for m in messages) == 1


# -- the follower's logic through the fetch seam --------------------------------------------


class _FakeWeb:
    """A ``fetch`` seam: routes are bytes, exceptions, or callables returning either."""

    def __init__(self) -> None:
        self.routes: dict[str, Any] = {}
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        body = self.routes.get(url)
        if callable(body):
            body = body()
        if isinstance(body, Exception):
            raise body
        if body is None:
            raise FetchError(f"HTTP 404 for {url}", url=url, status=404)
        return bytes(body)


def _scripted(*bodies: Any) -> Callable[[], Any]:
    """Returns the bodies in turn, the last one for ever."""
    queue = list(bodies)
    return lambda: queue.pop(0) if len(queue) > 1 else queue[0]


def _run_to_end(source: HlsSource, n_channels: int = 2) -> tuple[np.ndarray, list[tuple[int, int]]]:
    ring = RingBuffer(60 * RATE, n_channels)
    reader = _RingReader(ring)
    source.start(ring)
    try:
        return reader.result(20)
    finally:
        source.stop()
        source.join(5)


def test_falling_behind_the_live_edge_skips_ahead_and_marks_the_gap() -> None:
    web = _FakeWeb()
    for k in range(6):
        web.routes[f"http://h/s{k}.ts"] = SEG["live001.ts"]
    entries = [(f"s{k}.ts", 10.005333) for k in range(6)]
    web.routes["http://h/p.m3u8"] = _scripted(
        _m3u8(entries[:1]), _m3u8(entries), _m3u8(entries, endlist=True)
    )
    settings = HlsSettings(live_edge_segments=1, max_behind_segments=2, poll_seconds=0.01)
    source = HlsSource("http://h/p.m3u8", None, settings, fetch=web)
    audio, gaps = _run_to_end(source)
    assert gaps == [(SEG_SAMPLES, 4 * SEG_SAMPLES)]  # s1..s4 skipped, their EXTINF sum
    assert "http://h/s3.ts" not in web.calls and web.calls.count("http://h/s5.ts") == 1
    assert source.stats.segments == 2 and source.stats.segments_lost == 4
    assert audio.shape[0] == 6 * SEG_SAMPLES


def test_restart_without_date_times_counts_the_wall_clock_outage() -> None:
    now = [100.0]
    web = _FakeWeb()
    web.routes["http://h/a.ts"] = SEG["live001.ts"]
    web.routes["http://h/b.ts"] = SEG["live002.ts"]
    web.routes["http://h/c.ts"] = SEG["live001.ts"]

    calls = [0]

    def playlist() -> bytes:
        calls[0] += 1
        if calls[0] == 1:  # the probe, at t = 100: sequence 10 ends now
            return _m3u8([("a.ts", 10.005333)], media_sequence=10)
        now[0] = 125.0  # the encoder restarted: the sequence begins again at 0
        entries = [("b.ts", 10.005333), ("c.ts", 10.005333)]
        return _m3u8(entries, endlist=calls[0] > 2)

    web.routes["http://h/p.m3u8"] = playlist
    settings = HlsSettings(poll_seconds=0.01)
    source = HlsSource("http://h/p.m3u8", None, settings, fetch=web, monotonic=lambda: now[0])
    audio, gaps = _run_to_end(source)
    # b.ts started 2 segment durations before t = 125; a.ts ended at t = 100.
    outage = round((125.0 - 2 * 10.005333 - 100.0) * RATE)
    assert gaps == [(SEG_SAMPLES, outage)]
    assert source.stats.restarts == 1
    np.testing.assert_array_equal(
        audio[SEG_SAMPLES + outage :], _decode(SEG["live002.ts"] + SEG["live001.ts"], 2)
    )


@pytest.mark.parametrize("dated", [True, False])
def test_discontinuity_is_a_gap_only_when_date_times_show_one(dated: bool) -> None:
    web = _FakeWeb()
    web.routes["http://h/a.ts"] = SEG["live001.ts"]
    web.routes["http://h/b.ts"] = SEG["live002.ts"]
    t_b = T0_NS + 10_005_333_000 + 120 * 10**9  # 120 s missing: over max_gap_seconds
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:1"]
    lines += [f"#EXT-X-PROGRAM-DATE-TIME:{_iso(T0_NS)}"] if dated else []
    lines += ["#EXTINF:10.005333,", "a.ts", "#EXT-X-DISCONTINUITY"]
    lines += [f"#EXT-X-PROGRAM-DATE-TIME:{_iso(t_b)}"] if dated else []
    lines += ["#EXTINF:10.005333,", "b.ts", "#EXT-X-ENDLIST", ""]
    web.routes["http://h/p.m3u8"] = "\n".join(lines).encode()
    anchors: list[tuple[int, int]] = []
    settings = HlsSettings(max_gap_seconds=60)
    source = HlsSource(
        "http://h/p.m3u8", None, settings, fetch=web, on_anchor=lambda i, t: anchors.append((i, t))
    )
    audio, gaps = _run_to_end(source)
    np.testing.assert_array_equal(audio[-SEG_SAMPLES:], _decode(SEG["live002.ts"], 2))
    if dated:  # capped at 60 s, and the clock re-anchored at the real date-time
        assert gaps == [(SEG_SAMPLES, 60 * RATE)]
        assert anchors == [(0, T0_NS), (SEG_SAMPLES + 60 * RATE, t_b)]
    else:  # nothing is known to be lost
        assert gaps == [] and len(anchors) == 1 and audio.shape[0] == 2 * SEG_SAMPLES


def test_failures_back_off_exponentially_and_are_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="streamsep.sources.hls")
    web = _FakeWeb()
    web.routes["http://h/a.ts"] = SEG["live001.ts"]
    error = FetchError("HTTP 500 for http://h/p.m3u8", url="http://h/p.m3u8", status=500)
    ok = _m3u8([("a.ts", 10.005333)])
    web.routes["http://h/p.m3u8"] = _scripted(
        ok, RuntimeError("boom"), *[error] * 5, _m3u8([("a.ts", 10.005333)], endlist=True)
    )
    settings = HlsSettings(reconnect_seconds=0.1, reconnect_max_seconds=0.4, poll_seconds=0.01)
    source = HlsSource("http://h/p.m3u8", None, settings, fetch=web)
    waits: list[float] = []
    monkeypatch.setattr(source, "_wait", waits.append)  # record the waits instead of sleeping
    audio, gaps = _run_to_end(source)
    assert audio.shape[0] == SEG_SAMPLES and gaps == []
    backoff = [w for w in waits if w >= 0.1]
    assert backoff == [0.1, 0.2, 0.4, 0.4, 0.4, 0.4]  # the bug counts as a failure too
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("HTTP 500" in m for m in warnings) == 1
    assert sum("unexpected error" in m for m in warnings) == 1
    assert any("reachable again after 6 failure(s)" in r.getMessage() for r in caplog.records)
    assert source.stats.playlist_failures == 6 and source.error is None


def test_probe_falls_back_to_configured_format_only_when_both_are_set() -> None:
    web = _FakeWeb()  # nothing reachable
    with pytest.raises(HlsError, match="cannot probe"):
        HlsSource("http://h/p.m3u8", None, HlsSettings(sample_rate=RATE), fetch=web).probe()
    settings = HlsSettings(sample_rate=RATE, channels=2)
    info = HlsSource("http://h/p.m3u8", None, settings, fetch=web).probe()
    assert (info.sample_rate, info.n_channels, info.playlist_url) == (RATE, 2, None)
    web.routes["http://h/p.m3u8"] = _m3u8([("a.ts", 10.005333)])
    web.routes["http://h/a.ts"] = SEG["live000.ts"]
    source = HlsSource("http://h/p.m3u8", None, HlsSettings(channels=2), fetch=web)
    info = source.probe()  # the stream is mono; the ring gets it duplicated
    assert (info.n_channels, info.stream_n_channels, info.stream_sample_rate) == (2, 1, RATE)
    with pytest.raises(HlsError, match="ring has 1 channels, source delivers 2"):
        source.start(RingBuffer(RATE, 1))


# -- Orcasound resolution, settings, config -------------------------------------------------


def test_orcasound_resolver_reads_latest_txt() -> None:
    web = _FakeWeb()
    resolver = OrcasoundResolver("rpi_bush_point", "https://b.example/x/", fetch=web)
    assert resolver.latest_url == "https://b.example/x/rpi_bush_point/latest.txt"
    web.routes[resolver.latest_url] = b"1712345678\n"
    assert resolver.resolve() == "https://b.example/x/rpi_bush_point/hls/1712345678/live.m3u8"
    assert resolver.timestamp == 1712345678
    web.routes[resolver.latest_url] = b"<Error><Code>NoSuchKey</Code></Error>"
    with pytest.raises(HlsError, match="expected a Unix timestamp"):
        resolver.resolve()
    with pytest.raises(FetchError):
        OrcasoundResolver("rpi_sunset_bay", fetch=web).resolve()
    with pytest.raises(ConfigError, match="source.node must be a node name"):
        OrcasoundSettings("../etc")


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="source.max_behind_segments must be an integer >= 3"):
        HlsSettings(live_edge_segments=3, max_behind_segments=2)
    with pytest.raises(ConfigError, match="source.url must be an http or https URL"):
        HlsSettings(url="ftp://x/p.m3u8")
    with pytest.raises(ConfigError, match="source.reconnect_max_seconds must be >="):
        HlsSettings(reconnect_seconds=5, reconnect_max_seconds=1)
    with pytest.raises(ConfigError, match="source.url must name a playlist URL"):
        HlsSource(None)


def test_orcasound_config_matches_the_settings_classes() -> None:
    table = tomllib.loads((ROOT / "configs" / "orcasound.toml").read_text())["source"]
    assert table.pop("kind") == "orcasound"
    node = OrcasoundSettings(table.pop("node"), table.pop("base_url"))
    hls = HlsSettings(**table)
    assert node.node == "rpi_orcasound_lab"
    assert node.base_url == "https://s3-us-west-2.amazonaws.com/audio-orcasound-net"
    assert hls.live_edge_segments >= 1


# -- playlist parsing -----------------------------------------------------------------------


def test_parse_playlist_sequences_durations_date_times() -> None:
    text = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:10
#EXT-X-MEDIA-SEQUENCE:41
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.500-0700
#EXTINF:10.005333,
live041.ts
#EXTINF:9.5,
sub/live042.ts
#EXT-X-DISCONTINUITY
#EXTINF:10,
http://other.example/live043.ts
#EXT-X-ENDLIST
"""
    p = parse_playlist(text, "https://h.example/node/hls/1/live.m3u8")
    assert (p.target_duration_seconds, p.media_sequence, p.endlist) == (10, 41, True)
    assert [s.sequence for s in p.segments] == [41, 42, 43] and p.last_sequence == 43
    assert [s.uri for s in p.segments] == [
        "https://h.example/node/hls/1/live041.ts",
        "https://h.example/node/hls/1/sub/live042.ts",
        "http://other.example/live043.ts",
    ]
    t = parse_program_date_time("2024-05-01T19:00:00.5Z")
    assert p.segments[0].program_date_time_ns == t
    assert p.segments[1].program_date_time_ns == t + 10_005_333_000  # carried forward
    assert p.segments[2].discontinuity and p.segments[2].program_date_time_ns is None
    assert p.segments[0].name == "live041.ts"
    assert p.mean_duration_seconds == pytest.approx((10.005333 + 9.5 + 10) / 3)


@pytest.mark.parametrize(
    ("text", "iso_utc"),
    [
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00+00:00"),
        ("2024-05-01T12:00:00.123456789+02:00", "2024-05-01T10:00:00.123456+00:00"),
        ("2024-05-01T12:00:00.1-0830", "2024-05-01T20:30:00.100000+00:00"),
        ("2024-05-01T12:00:00", "2024-05-01T12:00:00+00:00"),
    ],
)
def test_parse_program_date_time(text: str, iso_utc: str) -> None:
    ns = parse_program_date_time(text)
    assert ns // 1000 == int(datetime.fromisoformat(iso_utc).timestamp() * 1e6 + 0.5)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<html>oops</html>", "not an m3u8 playlist"),
        ("", "not an m3u8 playlist"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:abc,\na.ts\n", "bad #EXTINF"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:10\na.ts\n", "has no EXTINF"),
        ("#EXTM3U\n#EXTINF:10,\na.ts\n", "no EXT-X-TARGETDURATION"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n", "truncated"),
        ("#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=k\n", "encrypted"),
        ("#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:yesterday\n", "bad EXT-X-PROGRAM-DATE-TIME"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://[::1/a.ts\n", "bad URI"),
    ],
)
def test_parse_playlist_rejects_malformed_input(text: str, error: str) -> None:
    with pytest.raises(HlsError, match=error):
        parse_playlist(text, "http://h/p.m3u8")


def test_master_playlist_lists_its_variants() -> None:
    text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=64000\naudio/live.m3u8\n"
    p = parse_playlist(text, "http://h/master.m3u8")
    assert p.variants == ("http://h/audio/live.m3u8",) and not p.segments


def test_fixture_sources_are_documented() -> None:
    sources = (STREAMS / "SOURCES.md").read_text()
    assert all(name in sources for name in SEG)
