"""The metrics server against hostile clients, over real sockets on 127.0.0.1: half-open
connections cost no threads and time out, clients that vanish are counted and never logged
with a traceback, malformed requests get an HTTP error, and it keeps answering throughout; a
non-loopback host is refused unless ``metrics.insecure`` is set."""

from __future__ import annotations

import logging
import os
import re
import resource
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.request import urlopen

import numpy as np
import pytest
import soundfile as sf

from streamsep.daemon.config import parse_config
from streamsep.daemon.metrics import Metric, MetricsServer, MetricsSettings
from streamsep.errors import ConfigError

from ._daemon import DaemonProcess, toml_text, unexpected_tracebacks, write_params
from ._net import free_tcp_endpoint

pytestmark = pytest.mark.timeout(120)

METRICS = [Metric("streamsep_a_total", "counter", "A count.").add(3)]


def scrape(port: int) -> str:
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        return str(response.read().decode())


def half_open(port: int, n: int, stack: ExitStack) -> list[socket.socket]:
    """``n`` connections that send the start of a request and then nothing."""
    sockets = []
    for _ in range(n):
        s = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
        s.sendall(b"GET /metr")
        sockets.append(s)
    return sockets


def closed_by_server(s: socket.socket, timeout: float) -> bool:
    """Whether the server closes ``s`` within ``timeout`` seconds (EOF or reset)."""
    s.settimeout(timeout)
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def reset(s: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0): the peer's next send gets ECONNRESET / EPIPE."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


@contextmanager
def serving(**kwargs: float) -> Iterator[MetricsServer]:
    server = MetricsServer(MetricsSettings(enabled=True, port=0), lambda: METRICS, **kwargs)  # type: ignore[arg-type]
    with server:
        yield server


def test_half_open_connections_cost_no_threads_and_time_out() -> None:
    with serving(request_seconds=1.5, max_connections=64) as server, ExitStack() as stack:
        threads = threading.active_count()
        sockets = half_open(server.port, 800, stack)
        # Every connection was accepted and handled on the one server thread.
        assert threading.active_count() <= threads
        assert "streamsep_a_total 3" in scrape(server.port)  # answers during the flood
        assert server.stats.evicted >= 800 - 64
        assert server.stats.served == 1
        # The newest ones are still open; the deadline closes them.
        started = time.monotonic()
        assert all(closed_by_server(s, 10) for s in sockets[-32:])
        assert time.monotonic() - started < 1.5 + 3
        assert server.stats.timed_out >= 32
        assert "streamsep_a_total 3" in scrape(server.port)


def test_slow_client_is_cut_at_the_deadline_not_per_read() -> None:
    """One byte every 0.3 s never completes a request within the 1 s deadline."""
    with serving(request_seconds=1.0) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            started = time.monotonic()
            closed = False
            for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n":
                try:
                    s.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                if closed_by_server(s, 0.3):
                    closed = True
                    break
            assert closed and time.monotonic() - started < 3.0
        assert server.stats.timed_out == 1 and server.stats.served == 0


def test_vanishing_clients_are_counted_without_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG), serving() as server:
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            if i % 2:
                s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")  # then gone before the answer
            else:
                s.sendall(b"GET /met")  # gone mid-request
            reset(s)
        assert "streamsep_a_total 3" in scrape(server.port)
        deadline = time.monotonic() + 10
        stats = server.stats
        # Under load the connection limit evicts the oldest open connections (one that was
        # answered and is still closing counts as served and as evicted), so every connection
        # has an outcome once the counts, evictions included, cover all 201.
        while stats.served + stats.disconnected + stats.timed_out + stats.evicted < 201:
            assert time.monotonic() < deadline, stats
            time.sleep(0.05)  # polling the server's counters, bounded by the deadline
        # every mid-request reset at least, unless the limit closed it first
        assert stats.disconnected + stats.evicted >= 100, stats
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert "Traceback" not in caplog.text and "BrokenPipe" not in caplog.text


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        (b"GET /?x=1 HTTP/1.0\r\n\r\n", 200),
        (b"GET /other HTTP/1.1\r\n\r\n", 404),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"HELLO\r\n\r\n", 400),
        (b"GET /metrics SPDY/3\r\n\r\n", 400),
        (b"\xff\xfe\x00garbage\r\n\r\n", 400),
        (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n", 431),
    ],
)
def test_malformed_requests_get_an_http_error(request_bytes: bytes, status: int) -> None:
    with serving() as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(request_bytes)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:80]
        assert "streamsep_a_total 3" in scrape(server.port)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.org"])
def test_non_loopback_host_is_refused_unless_insecure(host: str) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.insecure = true"):
        MetricsSettings(enabled=True, host=host)
    MetricsSettings(enabled=True, host=host, insecure=True)  # said explicitly: allowed
    MetricsSettings(enabled=False, host=host)  # not served: nothing to refuse
    with pytest.raises(ConfigError) as error:
        parse_config({"metrics": {"enabled": True, "host": host}}, name="c.toml", base_dir=Path())
    assert str(error.value).startswith("c.toml: refusing to serve metrics on")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_hosts_are_served(host: str) -> None:
    try:
        socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
    except OSError:
        pytest.skip(f"{host} does not resolve here")
    settings = MetricsSettings(enabled=True, host=host, port=0)
    server = MetricsServer(settings, lambda: METRICS)
    try:
        server.start()
    except Exception as e:  # noqa: BLE001 - e.g. no IPv6 on this machine
        pytest.skip(f"cannot bind {host}: {e}")
    try:
        assert server._socket is not None
        bound = server._socket.getsockname()[0]
        with socket.socket(server._socket.family, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect((bound, server.port))
            s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200 ")
    finally:
        server.stop()


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count in /proc")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_daemon_metrics_under_800_half_open_connections(tmp_path: Path) -> None:
    """The real daemon: 800 half-open connections add no thread, a scrape is answered during
    the flood, 800 resets leave no traceback in the log, SIGTERM still exits 0."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048 and hard >= 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
    rate = 16000
    sf.write(tmp_path / "in.wav", np.zeros((rate, 1), np.float32), rate, subtype="PCM_16")
    params = write_params(tmp_path, rate)
    config = tmp_path / "daemon.toml"
    config.write_text(
        toml_text(
            {
                "source": {"kind": "file", "path": "in.wav", "realtime": True, "loops": 0},
                "model": {"params": params.name, "model": "passthrough"},
                "publish": {"endpoints": [free_tcp_endpoint()], "end_timeout_seconds": 1},
                "metrics": {"enabled": True, "port": 0},
            }
        )
    )
    daemon = DaemonProcess(config, dict(os.environ), tmp_path / "daemon.log")
    try:
        port = int(daemon.wait_log(r"metrics: http://127\.0\.0\.1:(\d+)/metrics").group(1))
        daemon.wait_log(r"running: ")
        before = _threads(daemon.process.pid)
        with ExitStack() as stack:
            sockets = half_open(port, 800, stack)
            assert _threads(daemon.process.pid) <= before
            text = scrape(port)
            evicted = re.search(
                r'streamsep_metrics_connections_total\{outcome="evicted"\} (\d+)', text
            )
            assert evicted and int(evicted.group(1)) >= 800 - 64, text
            for s in sockets:
                reset(s)
        assert "streamsep_samples_captured_total" in scrape(port)
        assert _threads(daemon.process.pid) <= before
        code, seconds = daemon.terminate()
        assert code == 0 and seconds < 10, daemon.log()
    finally:
        daemon.close()
    log = daemon.log()
    assert unexpected_tracebacks(log) == [] and "Traceback" not in log, log
    assert "BrokenPipe" not in log and "ConnectionReset" not in log, log
