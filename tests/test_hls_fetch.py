"""HLS against a hostile server (127.0.0.1 only): the fetch deadline, cancellation, refused
schemes and redirects, size limits (``streamsep.sources.hls.fetch``), the retry policy
(``retry``), and an :class:`HlsSource` fed file:, FIFO, ftp: and data: URIs, oversized segments
and a zero target duration."""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamsep.engine.ringbuffer import RingBuffer
from streamsep.sources.hls.fetch import MAX_STUCK_REQUESTS, FetchError, HttpFetcher, check_url
from streamsep.sources.hls.follower import HlsSource
from streamsep.sources.hls.playlist import HlsError
from streamsep.sources.hls.retry import SegmentFetcher
from streamsep.sources.hls.settings import MAX_POLL_SECONDS, MIN_POLL_SECONDS, HlsSettings

from .test_hls import RATE, SEG, SEG_SAMPLES, _decode, _FakeWeb, _m3u8, _run_to_end, _Server

pytestmark = pytest.mark.timeout(60)

TLS = Path(__file__).parent / "fixtures" / "tls"
TRICKLE_SECONDS = 0.2  # between two bytes: every socket read gets data well within its timeout


class HostileServer(_Server):
    """The test server (``routes``, ``hits``) with hostile paths besides; every request sets
    ``requested``.

    * ``/trickle/...``: 200 and ``Content-Length: 100000``, then one body byte every 0.2 s;
    * ``/trickle-small/...``: the same with ``Content-Length: 1000`` (under every body limit,
      Orcasound's 4 KiB ``latest.txt`` one included; 200 s to send);
    * ``/slow-headers/...``: the status line and headers one byte every 0.2 s;
    * ``/silent/...``: reads the request and never answers;
    * ``/declared-huge``: ``Content-Length: 10**12`` and a few bytes, then nothing;
    * ``/chunked/<n>``: ``n`` bytes with chunked encoding (no ``Content-Length``);
    * ``/redirect/<url>``: 302 to ``<url>``.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.stopped = threading.Event()
        super().__init__()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        self.requested.set()
        handler.close_connection = True
        try:
            self._answer(handler, handler.path)
        except OSError:
            pass  # the client gave up: expected here

    def _trickle(self, handler: BaseHTTPRequestHandler, data: bytes) -> None:
        for k in range(len(data)):
            if self.stopped.wait(TRICKLE_SECONDS):
                return
            handler.wfile.write(data[k : k + 1])
            handler.wfile.flush()

    def _answer(self, h: BaseHTTPRequestHandler, path: str) -> None:
        if path.startswith(("/trickle/", "/trickle-small/")):
            n = 100000 if path.startswith("/trickle/") else 1000
            h.send_response(200)
            h.send_header("Content-Length", str(n))
            h.end_headers()
            self._trickle(h, b"#" * n)
        elif path.startswith("/slow-headers/"):
            self._trickle(h, b"HTTP/1.1 200 OK\r\nX-Padding: " + b"x" * 1000 + b"\r\n\r\n")
        elif path.startswith("/silent/"):
            self.stopped.wait(60)
        elif path == "/declared-huge":
            h.send_response(200)
            h.send_header("Content-Length", str(10**12))
            h.end_headers()
            h.wfile.write(b"\0" * 1000)
            self.stopped.wait(60)
        elif path.startswith("/chunked/"):
            n = int(path.rsplit("/", 1)[1])
            h.send_response(200)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for start in range(0, n, 65536):
                piece = b"\0" * min(65536, n - start)
                h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            h.wfile.write(b"0\r\n\r\n")
        elif path.startswith("/redirect/"):
            h.send_response(302)
            h.send_header("Location", path[len("/redirect/") :])
            h.send_header("Content-Length", "0")
            h.end_headers()
        else:
            super().answer(h)

    def close(self) -> None:
        self.stopped.set()
        super().close()


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    s = HostileServer()
    yield s
    s.close()


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO; at the end, asserts that nobody opened it for reading (a non-blocking writer
    gets ENXIO when there is no reader)."""
    path = tmp_path / "segment.fifo"
    os.mkfifo(path)
    yield path
    with pytest.raises(OSError) as e:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    assert e.value.errno == errno.ENXIO, "someone holds the FIFO open"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening TCP socket on 127.0.0.1 that nobody should connect to (an ftp: target)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        yield s
        readable, _, _ = select.select([s], [], [], 0)
        assert not readable, "something connected to the ftp: target"


def _timed_fetch(fetcher: HttpFetcher, url: str) -> tuple[FetchError, float]:
    started = time.monotonic()
    with pytest.raises(FetchError) as e:
        fetcher(url)
    return e.value, time.monotonic() - started


# -- the total deadline and cancellation ---------------------------------------------------


@pytest.mark.parametrize("path", ["/trickle/seg.ts", "/slow-headers/p.m3u8", "/silent/x"])
def test_a_request_has_a_total_deadline_not_one_per_read(hostile: HostileServer, path: str) -> None:
    # Each read gets a byte every 0.2 s, well within a 1 s socket timeout: only a total
    # deadline ends these requests.
    error, elapsed = _timed_fetch(HttpFetcher(timeout_seconds=1.0), hostile.url(path))
    print(f"\n{path}: {error} after {elapsed:.3f} s")
    assert "no complete response within 1 s" in str(error) or "timed out" in str(error)
    assert 0.9 <= elapsed < 1.6, elapsed
    assert not error.permanent  # a slow server may be fast next time


def test_cancel_ends_a_request_in_flight_at_once(hostile: HostileServer) -> None:
    cancel = threading.Event()
    fetcher = HttpFetcher(timeout_seconds=60, cancel=cancel)
    outcome: list[Any] = []

    def fetch() -> None:
        try:
            fetcher(hostile.url("/trickle/seg.ts"))
        except FetchError as e:
            outcome.append((e, time.monotonic()))

    thread = threading.Thread(target=fetch)
    thread.start()
    assert hostile.requested.wait(10)
    cancelled_at = time.monotonic()
    cancel.set()
    thread.join(5)
    assert not thread.is_alive()
    error, ended_at = outcome[0]
    assert "cancelled" in str(error) and ended_at - cancelled_at < 0.5
    with pytest.raises(FetchError, match="cancelled"):  # and nothing new starts
        fetcher(hostile.url("/p.m3u8"))


def test_cancel_cuts_off_a_tls_handshake_that_never_ends(listener: socket.socket) -> None:
    # The listener accepts TCP (the kernel does) but never answers the TLS ClientHello.
    cancel = threading.Event()
    fetcher = HttpFetcher(timeout_seconds=30, cancel=cancel)
    before = {t for t in threading.enumerate() if t.name == "streamsep-hls-fetch"}
    errors: list[FetchError] = []

    def fetch() -> None:
        try:
            fetcher(f"https://127.0.0.1:{listener.getsockname()[1]}/live.m3u8")
        except FetchError as e:
            errors.append(e)

    thread = threading.Thread(target=fetch)
    thread.start()
    readable, _, _ = select.select([listener], [], [], 10)
    assert readable, "no connection"
    connection, _ = listener.accept()
    with connection:
        connection.settimeout(10)
        assert connection.recv(1)  # the ClientHello: the worker is in the handshake now
        cancel.set()
        thread.join(2)
        assert not thread.is_alive() and "cancelled" in str(errors[0])
        workers = {t for t in threading.enumerate() if t.name == "streamsep-hls-fetch"}
        for worker in workers - before:  # its socket was shut down: it ends too
            worker.join(2)
            assert not worker.is_alive(), "the worker is still in the handshake"


@pytest.fixture
def https(hostile: HostileServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The hostile server's paths over HTTPS (a second listener, the fixture certificate,
    trusted through ``SSL_CERT_FILE``); yields its base URL."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "cert.pem", TLS / "key.pem")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), hostile.httpd.RequestHandlerClass)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(TLS / "cert.pem"))
    yield f"https://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_https_is_fetched_with_the_same_deadline(hostile: HostileServer, https: str) -> None:
    hostile.routes["/p.m3u8"] = b"#EXTM3U\n"
    fetcher = HttpFetcher(timeout_seconds=1.0)
    assert fetcher(f"{https}/p.m3u8") == b"#EXTM3U\n"
    assert fetcher(f"{https}/redirect/{https}/p.m3u8") == b"#EXTM3U\n"
    error, elapsed = _timed_fetch(fetcher, f"{https}/trickle/seg.ts")
    assert "no complete response within 1 s" in str(error) and 0.9 <= elapsed < 1.6


# -- refused URLs, redirects and sizes -----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "file:///dev/zero",
        "FILE:///etc/shadow",
        "ftp://127.0.0.1/live.m3u8",
        "data:application/octet-stream;base64,R0lG",
        "/etc/passwd",
        "../../etc/shadow",
        "http:///no-host",
        "gopher://127.0.0.1:70/",
    ],
)
def test_only_http_and_https_urls_are_fetched(url: str) -> None:
    with pytest.raises(FetchError, match="only http and https URLs are fetched") as e:
        HttpFetcher(timeout_seconds=1)(url)
    assert e.value.permanent
    assert check_url("https://example.org/live.m3u8") == "https://example.org/live.m3u8"


def test_redirects_to_other_schemes_are_refused_unopened(
    hostile: HostileServer, fifo: Path, listener: socket.socket
) -> None:
    fetcher = HttpFetcher(timeout_seconds=5)
    ftp = f"ftp://127.0.0.1:{listener.getsockname()[1]}/x.ts"
    for target in (f"file://{fifo}", "file:///etc/passwd", ftp, "data:,hello"):
        error, elapsed = _timed_fetch(fetcher, hostile.url(f"/redirect/{target}"))
        assert error.permanent and "redirect" in str(error), str(error)
        assert "root:" not in str(error) and elapsed < 2
    hostile.routes["/p.m3u8"] = b"#EXTM3U\n"  # a redirect within http is followed
    assert fetcher(hostile.url("/redirect/" + hostile.url("/p.m3u8"))) == b"#EXTM3U\n"


def test_bodies_over_the_limit_are_refused_and_a_declared_one_is_not_downloaded(
    hostile: HostileServer,
) -> None:
    fetcher = HttpFetcher(timeout_seconds=30, max_bytes=100_000)
    error, elapsed = _timed_fetch(fetcher, hostile.url("/declared-huge"))
    assert error.permanent and "Content-Length 1000000000000 is over the limit" in str(error)
    assert elapsed < 2  # refused at the headers, not after reading (or waiting for) the body
    error, _ = _timed_fetch(fetcher, hostile.url("/chunked/300000"))
    assert error.permanent and "more than 100000 bytes" in str(error)
    assert len(fetcher(hostile.url("/chunked/100000"))) == 100_000


def test_a_permanent_failure_is_neither_retried_nor_fetched_again() -> None:
    web = _FakeWeb()
    big = FetchError("Content-Length 1e9 over the limit", url="http://h/big.ts", permanent=True)
    web.routes["http://h/big.ts"] = big
    waits: list[float] = []
    segments = SegmentFetcher(web, 3, 0.1, 0.4, wait=waits.append, stopped=lambda: False)
    for _ in range(3):
        with pytest.raises(FetchError) as e:
            segments("http://h/big.ts")
        assert e.value.permanent
    assert web.calls == ["http://h/big.ts"] and waits == []  # one request, no back-off
    assert "not requested again" in str(e.value)
    with pytest.raises(HlsError, match=r"HTTP 404 .*\(3 tries\)"):  # transient: retried
        segments("http://h/missing.ts")
    assert web.calls.count("http://h/missing.ts") == 3 and waits == [0.1, 0.2]


def test_requests_stuck_past_their_deadline_are_bounded() -> None:
    """A worker that cannot be interrupted (a hung DNS lookup) is left behind at the deadline;
    while MAX_STUCK_REQUESTS of them live, new requests are refused instead of adding threads."""
    release = threading.Event()
    fetcher = HttpFetcher(timeout_seconds=0.2)
    fetcher._get = lambda url, flight: release.wait(30) and b""  # type: ignore[method-assign]
    try:
        for _ in range(MAX_STUCK_REQUESTS):
            error, elapsed = _timed_fetch(fetcher, "http://stuck.invalid/p.m3u8")
            assert "no complete response within 0.2 s" in str(error) and elapsed < 0.6
        error, elapsed = _timed_fetch(fetcher, "http://stuck.invalid/p.m3u8")
        assert f"{MAX_STUCK_REQUESTS} earlier requests have not ended yet" in str(error)
        assert elapsed < 0.1
    finally:
        release.set()
    alive = [t for t in threading.enumerate() if t.name == "streamsep-hls-fetch"]
    for thread in alive:
        thread.join(5)
    fetcher._get = lambda url, flight: b"ok"  # type: ignore[method-assign]
    assert fetcher("http://stuck.invalid/p.m3u8") == b"ok"  # the ended ones no longer count


# -- an HlsSource fed hostile playlists ----------------------------------------------------


def test_non_http_segments_are_gaps_and_never_opened(
    hostile: HostileServer,
    fifo: Path,
    listener: socket.socket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="streamsep.sources.hls")
    hostile.routes["/s/a.ts"] = SEG["live001.ts"]
    hostile.routes["/s/b.ts"] = SEG["live002.ts"]
    redirect = hostile.url(f"/redirect/file://{fifo}")
    logged = {  # URI -> how its refusal is logged
        "file:///etc/passwd": "refused file:///etc/passwd: a file: URL",
        f"file://{fifo}": f"refused file://{fifo}: a file: URL",
        "file:///dev/zero": "refused file:///dev/zero: a file: URL",
        f"ftp://127.0.0.1:{listener.getsockname()[1]}/c.ts": "a ftp: URL",
        "data:video/mp2t;base64,RxAREQ==": "refused data:video/mp2t;base64,RxAREQ==: a data:",
        redirect: f"redirect refused for {redirect}",
    }
    refused = list(logged)
    entries = [("a.ts", 10.005333)] + [(uri, 10.005333) for uri in refused] + [("b.ts", 10.005333)]
    hostile.routes["/s/live.m3u8"] = _m3u8(entries, endlist=True)
    settings = HlsSettings(reconnect_seconds=0.05, reconnect_max_seconds=0.2, segment_retries=3)
    source = HlsSource(hostile.url("/s/live.m3u8"), None, settings)
    audio, gaps = _run_to_end(source)
    n = len(refused)
    assert gaps == [(SEG_SAMPLES, n * SEG_SAMPLES)]  # counted as missing segments
    np.testing.assert_array_equal(audio[:SEG_SAMPLES], _decode(SEG["live001.ts"], 2))
    np.testing.assert_array_equal(audio[-SEG_SAMPLES:], _decode(SEG["live002.ts"], 2))
    assert source.stats.refused == n and source.stats.segment_failures == n
    assert source.error is None and source.done.is_set()
    assert hostile.count("/s/a.ts") == hostile.count("/s/b.ts") == 1
    messages = [r.getMessage() for r in caplog.records]
    for uri in refused:  # each logged once (no retries), never with the file's contents
        assert sum(logged[uri] in m and "lost" in m for m in messages) == 1, uri
    assert not any("root:" in m for m in messages)


def test_an_oversized_segment_is_a_gap_and_requested_once(hostile: HostileServer) -> None:
    hostile.routes["/o/a.ts"] = SEG["live000.ts"]  # 103 964 bytes: under the limit
    hostile.routes["/o/big.ts"] = SEG["live001.ts"]  # 199 092 bytes, with Content-Length
    chunked = hostile.url("/chunked/300000")  # no Content-Length: cut at the limit
    entries = [("a.ts", 9.792), ("big.ts", 10.005333), (chunked, 10.005333), ("a.ts", 9.792)]
    hostile.routes["/o/live.m3u8"] = _m3u8(entries, endlist=True)
    settings = HlsSettings(segment_retries=3, reconnect_seconds=0.05, reconnect_max_seconds=0.1)
    fetcher = HttpFetcher(timeout_seconds=10, max_bytes=150_000)
    source = HlsSource(hostile.url("/o/live.m3u8"), None, settings, fetch=fetcher)
    _, gaps = _run_to_end(source, n_channels=1)
    assert gaps == [(470016, 2 * SEG_SAMPLES)]
    assert hostile.count("/o/big.ts") == hostile.count("/chunked/300000") == 1  # not retried
    assert source.stats.refused == 2 and source.stats.segment_failures == 2


def test_a_non_http_variant_is_a_refused_playlist_and_the_source_keeps_running(
    hostile: HostileServer, fifo: Path
) -> None:
    hostile.routes["/m.m3u8"] = f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nfile://{fifo}\n".encode()
    web_settings = HlsSettings(sample_rate=RATE, channels=2, reconnect_seconds=0.05,
                               reconnect_max_seconds=0.1)  # fmt: skip
    source = HlsSource(hostile.url("/m.m3u8"), None, web_settings)
    ring = RingBuffer(RATE, 2)
    source.start(ring)
    try:
        deadline = time.monotonic() + 10
        while source.stats.playlist_failures < 3:
            assert time.monotonic() < deadline, "no retries"
            source.done.wait(0.02)
        assert not source.done.is_set() and source.stats.refused >= 3
        assert "only http and https" in (source.stats.last_error or "")
    finally:
        source.stop()
        assert source.join(2)


@pytest.mark.parametrize(
    ("target", "first", "then"),
    [
        ("0.0001", MIN_POLL_SECONDS, MIN_POLL_SECONDS),  # not thousands of polls a second
        ("1", 1.0, MIN_POLL_SECONDS),  # half of it after a poll with nothing new
        ("1e9", MAX_POLL_SECONDS, MAX_POLL_SECONDS / 2),  # not never
    ],
)
def test_the_poll_interval_from_the_playlist_is_bounded(
    target: str, first: float, then: float
) -> None:
    web = _FakeWeb()
    web.routes["http://h/a.ts"] = SEG["live001.ts"]
    text = f"#EXTM3U\n#EXT-X-TARGETDURATION:{target}\n#EXTINF:10.005333,\na.ts\n"
    web.routes["http://h/p.m3u8"] = text.encode()
    source = HlsSource("http://h/p.m3u8", None, HlsSettings(), fetch=web, monotonic=lambda: 0.0)
    waits: list[float] = []

    def wait(seconds: float) -> None:  # record instead of sleeping; stop after 5 polls
        waits.append(seconds)
        if len(waits) == 5:
            source.stop()

    source._wait = wait  # type: ignore[method-assign]
    _run_to_end(source)
    assert waits == [first] + [then] * 4  # a.ts was new at the first poll only
    assert web.calls.count("http://h/p.m3u8") == 5  # the probe's and four reloads
