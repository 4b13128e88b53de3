"""HTTP(S) requests of an HLS source: only ``http``/``https``, a total deadline, cancellable.

:class:`HttpFetcher` is the default :data:`Fetch` seam, ``fetch(url) -> bytes``, used for
playlists, segments and Orcasound's ``latest.txt``. Every byte it reads comes from a server
that may be slow or hostile, so:

* **Only http and https.** :func:`check_url` refuses any other scheme (``file:``, ``ftp:``,
  ``data:``, a path) before anything is opened, and the opener has no handler for them at all;
  a redirect to another scheme (``file:``, ``ftp:``) is refused too. Refusals are
  ``FetchError(permanent=True)``: retrying cannot help.
* **A total deadline per request**, ``timeout_seconds`` from the start of the request to the
  last body byte (not per socket read: a server trickling one byte per second does not hold a
  request longer). The request runs on a short-lived worker thread
  (``streamsep-hls-fetch``); the caller waits for it, at most until the deadline or until the
  ``cancel`` event is set (checked every 50 ms), then shuts the socket down and raises. The
  caller is never blocked longer, not even by a DNS lookup, so a daemon's main thread probing
  a stream still answers SIGTERM.
* **A body limit**: a ``Content-Length`` over ``max_bytes`` is refused before the body is
  read; a longer body without one is cut at ``max_bytes + 1`` bytes and refused. Both are
  permanent (the follower does not fetch such a segment again).

A worker that outlives its caller (stuck in a DNS lookup, where a socket cannot be shut down)
ends by itself; while :data:`MAX_STUCK_REQUESTS` such workers are alive, new requests are
refused instead of piling up threads.
"""

from __future__ import annotations

import functools
import http.client
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

from streamsep.sources.hls.playlist import HlsError
from streamsep.version import __version__

__all__ = [
    "MAX_STUCK_REQUESTS",
    "Fetch",
    "FetchError",
    "HttpFetcher",
    "check_url",
]

SCHEMES: Final = ("http", "https")
"""The only URL schemes an HLS source fetches."""
MAX_STUCK_REQUESTS: Final = 4
"""Abandoned requests (past their deadline, thread still alive) that refuse new ones."""

_USER_AGENT: Final = f"streamsep/{__version__}"
_SLICE_SECONDS: Final = 0.05
_SHOWN_URL_CHARS: Final = 160
_MAX_REDIRECTS: Final = 5

Fetch = Callable[[str], bytes]
"""``fetch(url) -> body``; raises :class:`FetchError`. Called on one thread at a time."""


class FetchError(HlsError):
    """A request failed or was refused.

    ``status`` is the HTTP status, or None for a network error, a timeout or a refusal;
    ``permanent`` is True when trying again cannot help (a refused URL or redirect, a body over
    the size limit).
    """

    def __init__(
        self, message: str, *, url: str, status: int | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.permanent = permanent


def shown(url: str) -> str:
    """``url`` shortened for a log line (a ``data:`` URL may be megabytes long)."""
    if len(url) <= _SHOWN_URL_CHARS:
        return url
    return url[:_SHOWN_URL_CHARS] + f"... ({len(url)} characters)"


def check_url(url: str) -> str:
    """``url`` if it is an absolute ``http``/``https`` URL with a host.

    Raises
    ------
    FetchError
        (permanent) for any other URL: ``file:``, ``ftp:``, ``data:``, a bare path, no host.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host, parts = None, None
    scheme = parts.scheme.lower() if parts is not None else ""
    if scheme not in SCHEMES or not host:
        if scheme in SCHEMES:
            what = "no host"
        else:
            what = f"a {scheme}: URL" if scheme else "not an absolute URL"
        raise FetchError(
            f"refused {shown(url)}: {what}; only http and https URLs are fetched",
            url=url,
            permanent=True,
        )
    return url


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed, or not connected yet


class _Flight:
    """One request: its deadline, its socket (so the caller can abort it) and its outcome."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.done = threading.Event()
        self.body: bytes | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._aborted = False

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def attach(self, sock: socket.socket) -> None:
        """The request's socket (called on the worker thread once it is connected)."""
        with self._lock:
            self._sock = sock
            aborted = self._aborted
        if aborted:
            _shutdown(sock)

    def abort(self) -> bool:
        """Shut the socket down; False if the request had already finished."""
        with self._lock:
            if self.done.is_set():
                return False
            self._aborted = True
            sock = self._sock
        if sock is not None:
            _shutdown(sock)
        return True

    def run(self, work: Callable[[], bytes]) -> None:
        """The worker thread: do ``work`` and keep its outcome."""
        try:
            body = work()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            error: BaseException | None = e
            body = None
        else:
            error = None
        with self._lock:
            if not self._aborted:
                self.body, self.error = body, error
            self.done.set()


class _HTTPConnection(http.client.HTTPConnection):
    """Hands its socket to the flight as soon as it is connected."""

    def __init__(self, *args: Any, flight: _Flight, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._flight = flight

    def connect(self) -> None:
        super().connect()
        self._flight.attach(self.sock)


class _HTTPSConnection(http.client.HTTPSConnection):
    """Hands its TLS socket to the flight before the handshake (so that a server trickling
    its handshake can be cut off too); otherwise ``HTTPSConnection.connect``."""

    def __init__(self, *args: Any, flight: _Flight, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._flight = flight

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # TCP (and a proxy tunnel)
        server_hostname = getattr(self, "_tunnel_host", None) or self.host
        sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            self.sock, server_hostname=server_hostname, do_handshake_on_connect=False
        )
        self._flight.attach(sock)
        sock.do_handshake()
        self.sock = sock


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, flight: _Flight) -> None:
        super().__init__()
        self._flight = flight

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_HTTPConnection, flight=self._flight)
        return self.do_open(connection, req)  # type: ignore[arg-type]


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, flight: _Flight) -> None:
        super().__init__()
        self._flight = flight

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_HTTPSConnection, flight=self._flight)
        context = getattr(self, "_context", None)
        return self.do_open(connection, req, context=context)  # type: ignore[arg-type]


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects to ``http``/``https`` only (urllib's own also follows ``ftp:``)."""

    max_redirections = _MAX_REDIRECTS

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        try:
            check_url(newurl)
        except FetchError as e:
            fp.close()
            raise FetchError(
                f"redirect from {shown(req.full_url)} refused: {e}", url=newurl, permanent=True
            ) from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(flight: _Flight) -> urllib.request.OpenerDirector:
    """An opener with HTTP and HTTPS handlers only: no ``file:``, ``ftp:`` or ``data:``."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        _RedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
        _HTTPHandler(flight),
        _HTTPSHandler(flight),
    ):
        opener.add_handler(handler)
    return opener


class HttpFetcher:
    """``fetch(url) -> bytes`` over HTTP(S), with a total deadline (the default :data:`Fetch`).

    Parameters
    ----------
    timeout_seconds : float
        Deadline of each request from its start to its last byte, seconds (> 0).
    max_bytes : int
        Larger bodies are refused, before download when ``Content-Length`` says so.
    cancel : threading.Event, optional
        Set: requests in flight end at once (within 50 ms) and new ones are refused.
    """

    def __init__(
        self,
        timeout_seconds: float = 10.0,
        max_bytes: int = 64 << 20,
        *,
        cancel: threading.Event | None = None,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.max_bytes = max_bytes
        self.cancel = cancel
        self._stuck: list[threading.Thread] = []

    def __call__(self, url: str) -> bytes:
        """GET ``url``.

        Raises
        ------
        FetchError
            For a refused URL or redirect, an HTTP error status, a network error, the
            deadline, a cancellation, or an oversized body.
        """
        check_url(url)
        if self.cancel is not None and self.cancel.is_set():
            raise FetchError(f"cancelled: {url}", url=url)
        self._stuck = [t for t in self._stuck if t.is_alive()]
        if len(self._stuck) >= MAX_STUCK_REQUESTS:
            raise FetchError(
                f"{len(self._stuck)} earlier requests have not ended yet; not fetching {url}",
                url=url,
            )
        flight = _Flight(time.monotonic() + self.timeout_seconds)
        worker = threading.Thread(
            target=flight.run,
            args=(functools.partial(self._get, url, flight),),
            name="streamsep-hls-fetch",
            daemon=True,
        )
        worker.start()
        while not flight.done.wait(max(0.0, min(_SLICE_SECONDS, flight.remaining()))):
            if self.cancel is not None and self.cancel.is_set():
                reason = "cancelled"
            elif flight.remaining() <= 0:
                reason = f"no complete response within {self.timeout_seconds:g} s"
            else:
                continue
            if flight.abort():
                self._stuck.append(worker)
                raise FetchError(f"{reason}: {url}", url=url)
        if flight.error is not None:
            raise flight.error
        assert flight.body is not None
        return flight.body

    def _get(self, url: str, flight: _Flight) -> bytes:
        """The request itself (on the worker thread)."""
        request = urllib.request.Request(
            url, headers={"User-Agent": _USER_AGENT, "Cache-Control": "no-cache"}
        )
        # Each socket operation waits at most the time left (the caller holds the deadline).
        timeout = max(0.001, min(self.timeout_seconds, flight.remaining()))
        try:
            with _opener(flight).open(request, timeout=timeout) as response:
                length = getattr(response, "length", None)
                if length is not None and length > self.max_bytes:
                    raise FetchError(
                        f"Content-Length {length} is over the limit of {self.max_bytes} "
                        f"bytes: {url}",
                        url=url,
                        permanent=True,
                    )
                body: bytes = response.read(self.max_bytes + 1)
        except FetchError:
            raise
        except urllib.error.HTTPError as e:
            if 300 <= e.code < 400:  # urllib refused the redirect (e.g. to file:)
                raise FetchError(
                    f"redirect refused for {url}: {shown(str(e.reason))}",
                    url=url,
                    status=e.code,
                    permanent=True,
                ) from None
            raise FetchError(f"HTTP {e.code} for {url}", url=url, status=e.code) from None
        except urllib.error.URLError as e:
            raise FetchError(f"cannot fetch {url}: {e.reason}", url=url) from None
        except TimeoutError:
            raise FetchError(f"timed out after {timeout:.3g} s: {url}", url=url) from None
        except ValueError as e:  # http.client.InvalidURL (a bad port), bad headers
            raise FetchError(f"cannot fetch {url}: {e}", url=url, permanent=True) from None
        except (OSError, http.client.HTTPException) as e:
            raise FetchError(f"cannot fetch {url}: {e or type(e).__name__}", url=url) from None
        if len(body) > self.max_bytes:
            raise FetchError(f"more than {self.max_bytes} bytes: {url}", url=url, permanent=True)
        return body
