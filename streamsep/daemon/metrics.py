"""Prometheus metrics: the text exposition format (version 0.0.4) over HTTP, stdlib only.

:class:`MetricsServer` serves ``GET /metrics`` on its own thread (``streamsep-metrics``); each
scrape calls a ``collect()`` function that returns :class:`Metric` objects built from the
daemon's counters at that moment, so nothing is updated on the audio path.

The server is a small asyncio one, not ``http.server.ThreadingHTTPServer``: that starts a
thread per connection with no deadline (800 half-open connections made 800 threads) and logs
a traceback for every client that disconnects early. Here connections are bounded in number
and time and counted by outcome. Like the publisher and the control endpoint, it binds a
non-loopback address only when ``metrics.insecure = true`` says so: the metrics have no
authentication.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

from streamsep.errors import ConfigError, StreamsepError
from streamsep.net.security import is_local_endpoint
from streamsep.validate import check_bool, check_int, check_str

__all__ = ["MetricsSettings", "Metric", "render", "MetricsServer", "ServerStats", "CONTENT_TYPE"]

_LOGGER = logging.getLogger(__name__)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_KINDS: Final = ("counter", "gauge")
_REQUEST_SECONDS: Final = 5.0  # one exchange: request head in, answer out
_MAX_CONNECTIONS: Final = 64
_MAX_HEAD_BYTES: Final = 8192
_BACKLOG: Final = 128
_JOIN_SECONDS: Final = 5.0
_WARNING_SECONDS: Final = 10.0


@dataclass(frozen=True)
class MetricsSettings:
    """The ``[metrics]`` table: where the Prometheus endpoint listens."""

    enabled: bool = False
    """Serve ``/metrics``."""
    host: str = "127.0.0.1"
    """Address to bind (loopback by default; anything else is reachable from the network)."""
    port: int = 9464
    """TCP port, 0..65535 (0: any free port, logged at startup)."""
    insecure: bool = False
    """Allow a ``host`` reachable from the network (anyone who reaches it reads the metrics)."""

    def __post_init__(self) -> None:
        check_bool("metrics.enabled", self.enabled)
        check_str("metrics.host", self.host)
        check_int("metrics.port", self.port, minimum=0, maximum=65535)
        check_bool("metrics.insecure", self.insecure)
        if not self.enabled or is_local_endpoint(f"tcp://{_bracketed(self.host)}:{self.port}"):
            return
        if not self.insecure:
            raise ConfigError(
                f"refusing to serve metrics on {self.host}: anyone who can reach it could read "
                "them (no authentication); set metrics.insecure = true to allow it"
            )
        _LOGGER.warning("metrics: serving on %s, reachable from the network", self.host)


def _bracketed(host: str) -> str:
    """An IPv6 literal in brackets, as in an endpoint."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass
class Metric:
    """One metric family: a name, a type, a help text and labelled samples."""

    name: str
    """``streamsep_...``; counters end in ``_total``."""
    kind: str
    """``counter`` or ``gauge``."""
    help: str
    """One line."""
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)
    """``(labels, value)`` pairs."""

    def add(self, value: float | None, **labels: str) -> Metric:
        """Append a sample (None: skipped, the value is unknown); returns self."""
        if value is not None:
            self.samples.append((labels, float(value)))
        return self


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def render(metrics: Iterable[Metric]) -> str:
    """The text exposition of ``metrics``."""
    lines: list[str] = []
    for metric in metrics:
        if metric.kind not in _KINDS:
            raise ValueError(f"metric kind must be one of {list(_KINDS)}, got {metric.kind!r}")
        lines.append(f"# HELP {metric.name} {_escape(metric.help)}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        for labels, value in metric.samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            name = f"{metric.name}{{{label_text}}}" if labels else metric.name
            lines.append(f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


@dataclass
class ServerStats:
    """Connections of a :class:`MetricsServer`, by outcome (read from any thread)."""

    served: int = 0
    """Answered 200 with the metrics."""
    refused: int = 0
    """Answered with an HTTP error: malformed or oversized request, unknown path or method."""
    failed: int = 0
    """Answered 500: collecting the metrics failed."""
    timed_out: int = 0
    """Closed for not completing the exchange within the deadline (slow or idle clients)."""
    evicted: int = 0
    """Closed to make room at the connection limit (the oldest open one goes)."""
    disconnected: int = 0
    """The client went away first (closed, reset, broken pipe)."""

    def as_dict(self) -> dict[str, int]:
        """``{outcome: count}``."""
        return dict(vars(self))


class MetricsServer:
    """Serves ``render(collect())`` at ``http://HOST:PORT/metrics``.

    One thread (``streamsep-metrics``) runs an asyncio loop for every connection, so that idle
    or slow clients cost a socket, not a thread: at most ``max_connections`` are open (a new
    one closes the oldest), each must send its request and take the answer within
    ``request_seconds`` in all (a deadline per exchange, not per read), the request head is
    at most 8 KiB, and one answer closes the connection. Clients that go away are counted in
    :attr:`stats`, never logged with a traceback.

    Parameters
    ----------
    settings : MetricsSettings
        Host and port.
    collect : callable
        Returns the metrics; called on the server thread for each scrape, must be quick.
    request_seconds : float
        Deadline of one exchange, seconds.
    max_connections : int
        Connections open at once.
    """

    def __init__(
        self,
        settings: MetricsSettings,
        collect: Callable[[], list[Metric]],
        *,
        request_seconds: float = _REQUEST_SECONDS,
        max_connections: int = _MAX_CONNECTIONS,
    ) -> None:
        self.settings = settings
        self._collect = collect
        self._request_seconds = request_seconds
        self._max_connections = max_connections
        self.stats = ServerStats()
        self._socket: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._thread: threading.Thread | None = None
        self._open: dict[asyncio.Task[None], asyncio.StreamWriter] = {}  # oldest first
        self._last_loop_warning = 0.0

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._socket is None:
            raise StreamsepError("metrics server not started")
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        """Bind and start serving.

        Raises
        ------
        StreamsepError
            If the address cannot be bound.
        """
        host, port = self.settings.host, self.settings.port
        try:
            family, _, _, _, address = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            self._socket = socket.create_server(address, family=family, backlog=_BACKLOG)
        except (OSError, UnicodeError) as e:
            message = getattr(e, "strerror", None) or str(e)
            raise StreamsepError(f"metrics: cannot bind {host}:{port}: {message}") from None
        self._socket.setblocking(False)
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._on_loop_error)
        self._loop = loop
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(loop, started), name="streamsep-metrics", daemon=True
        )
        self._thread.start()
        started.wait(_JOIN_SECONDS)
        _LOGGER.info("metrics: http://%s:%d/metrics", host, self.port)

    def stop(self) -> None:
        """Stop serving, close every connection and the socket, join the thread."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(_finish, stopping)
            except RuntimeError:  # the loop has ended already
                pass
        if self._thread is not None:
            self._thread.join(_JOIN_SECONDS)
            self._thread = None
        if self._socket is not None:
            self._socket.close()

    def close(self) -> None:
        """Same as :meth:`stop`."""
        self.stop()

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- server thread ----------------------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(started))
        except Exception:  # noqa: BLE001 - the daemon keeps running without metrics
            _LOGGER.exception("metrics: server failed")
        finally:
            started.set()
            loop.close()

    async def _serve(self, started: threading.Event) -> None:
        assert self._socket is not None
        loop = asyncio.get_running_loop()
        self._stopping = loop.create_future()
        server = await asyncio.start_server(
            self._connection, sock=self._socket, limit=_MAX_HEAD_BYTES
        )
        started.set()
        try:
            await self._stopping
        finally:
            server.close()
            for task in list(self._open):
                task.cancel()
            if self._open:
                await asyncio.wait(list(self._open), timeout=_JOIN_SECONDS)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._open[task] = writer
        if len(self._open) > self._max_connections:
            oldest = next(iter(self._open))
            self._open.pop(oldest).transport.abort()
            oldest.cancel()
            self.stats.evicted += 1
        graceful = False
        try:
            await asyncio.wait_for(self._exchange(reader, writer), self._request_seconds)
            graceful = True
        except asyncio.TimeoutError:
            self.stats.timed_out += 1
        except asyncio.IncompleteReadError:  # closed before the end of its request head
            self.stats.disconnected += 1
        except (ConnectionError, OSError):
            self.stats.disconnected += 1
        except asyncio.CancelledError:  # evicted (counted there) or the server stops
            pass
        finally:
            self._open.pop(task, None)
            if graceful:
                writer.close()
            else:
                writer.transport.abort()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read one request head, write one answer."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            code, body = 431, b"request head too large\n"
        else:
            code, body = self._answer(head)
        if code == 200:
            self.stats.served += 1
        elif code == 500:
            self.stats.failed += 1
        else:
            self.stats.refused += 1
        reason = HTTPStatus(code).phrase
        content_type = CONTENT_TYPE if code == 200 else "text/plain; charset=utf-8"
        header = (
            f"HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(header.encode("ascii") + body)
        await writer.drain()

    def _answer(self, head: bytes) -> tuple[int, bytes]:
        """``(status, body)`` for a request head."""
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return 400, b"bad request\n"
        method, target = parts[0], parts[1]
        if method != b"GET":
            return 405, b"only GET\n"
        if target.split(b"?", 1)[0] not in (b"/metrics", b"/"):
            return 404, b"not found; the metrics are at /metrics\n"
        try:
            body = render(self._collect()).encode()
        except Exception:  # noqa: BLE001 - a scrape must not kill the server
            _LOGGER.exception("metrics: collecting failed")
            return 500, b"collecting the metrics failed\n"
        return 200, body

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's own reports (a transport error, ``accept()`` out of file descriptors):
        one line, at most every few seconds, never a traceback."""
        now = time.monotonic()
        if now - self._last_loop_warning >= _WARNING_SECONDS:
            self._last_loop_warning = now
            error = context.get("exception")
            detail = f": {error}" if error is not None else ""
            _LOGGER.warning("metrics: %s%s", context.get("message", "server error"), detail)


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
