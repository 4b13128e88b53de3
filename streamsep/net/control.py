"""Control endpoint: a REP socket on its own thread answering JSON requests (``docs/protocol.md``
section 9).

Requests and replies are single-frame UTF-8 JSON objects; every reply has ``ok`` and
``version`` (the protocol version):

* ``{"cmd": "status"}`` -> ``{"ok": true, "version": 1, "status": {...}}``, the dict returned
  by the ``status`` callable (see :func:`streamsep.net.status.pipeline_status`).
* ``{"cmd": "ping"}`` -> ``{"ok": true, "version": 1}``.
* anything else -> ``{"ok": false, "version": 1, "error": "..."}``: one error reply per
  request, whatever it holds (several frames, more than :data:`MAX_REQUEST_BYTES`, not UTF-8,
  not JSON, nested too deeply, an integer too long to convert, not an object, an unknown or
  missing ``cmd``). The thread catches per request and keeps serving. A frame over
  :data:`MAX_MESSAGE_BYTES` never reaches it: libzmq disconnects that peer, with no reply.

The bind rule of the publisher applies: a non-loopback endpoint needs CURVE or ``insecure``.
:meth:`ControlServer.health` reports whether the thread is alive and what it served.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import zmq

from streamsep.errors import ConfigError, StreamsepError
from streamsep.net import protocol as proto
from streamsep.net.security import CurveClientKeys, CurveServerKeys, check_bind, load_server_keys
from streamsep.net.throttle import LogThrottle
from streamsep.validate import JsonTextError, decode_json

__all__ = ["MAX_REQUEST_BYTES", "MAX_MESSAGE_BYTES", "ControlSettings", "ControlServer", "request"]

_LOGGER = logging.getLogger(__name__)

_POLL_MS: Final = 100
_START_TIMEOUT_SECONDS: Final = 10.0
_LOG_INTERVAL_SECONDS: Final = 10.0  # least time between two log lines about bad requests
_SHOWN_CHARS: Final = 80  # of a client's text quoted in an error reply

MAX_REQUEST_BYTES: Final = 16384
"""Longest request answered; a longer one (up to :data:`MAX_MESSAGE_BYTES`) gets an error."""
MAX_MESSAGE_BYTES: Final = 65536
"""``ZMQ_MAXMSGSIZE`` of the socket: a peer sending a longer frame is disconnected, bytes."""
_JSON_TYPES: Final = {list: "an array", str: "a string", int: "a number", float: "a number",
                      bool: "a boolean", type(None): "null"}  # fmt: skip

StatusFunction = Callable[[], dict[str, Any]]
"""Returns a JSON-able status dict; called on the control thread."""


@dataclass(frozen=True)
class ControlSettings:
    """Where the control endpoint listens and who may use it."""

    endpoint: str = "tcp://127.0.0.1:5557"
    """ZeroMQ endpoint to bind."""
    server_secret_key_file: str | None = None
    """Server ``.key_secret`` file; with ``authorized_keys_dir`` it turns CURVE on."""
    authorized_keys_dir: str | None = None
    """Folder of admitted client public keys (``*.key``)."""
    insecure: bool = False
    """Allow binding a non-loopback endpoint without CURVE."""

    def __post_init__(self) -> None:
        if (self.server_secret_key_file is None) != (self.authorized_keys_dir is None):
            raise ConfigError(
                "control.server_secret_key_file and control.authorized_keys_dir go together"
            )
        check_bind(self.endpoint, curve=self.curve, insecure=self.insecure, section="control")

    @property
    def curve(self) -> bool:
        """Whether CURVE encryption and client authentication are on."""
        return self.server_secret_key_file is not None


class _BadRequest(Exception):
    """A request that gets an error reply (the message is the reply's ``error``)."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


class ControlServer:
    """Answers control requests on its own thread (``streamsep-control``).

    Parameters
    ----------
    settings : ControlSettings
        Endpoint and security (key files are read here, before any socket).
    status : callable
        ``status() -> dict``, called on the control thread; must be quick.
    """

    def __init__(self, settings: ControlSettings, status: StatusFunction) -> None:
        self.settings = settings
        self._status = status
        self._keys: CurveServerKeys | None = None
        if settings.server_secret_key_file and settings.authorized_keys_dir:
            self._keys = load_server_keys(
                settings.server_secret_key_file, settings.authorized_keys_dir
            )
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests = 0
        self._errors = 0
        self._last_error: str | None = None
        self._log = LogThrottle(_LOG_INTERVAL_SECONDS)
        self.bound_endpoint: str | None = None
        """The endpoint actually bound (wildcard port resolved), set by :meth:`start`."""

    def start(self) -> None:
        """Start the thread and wait until the endpoint is bound.

        Raises
        ------
        StreamsepError
            If the endpoint cannot be bound.
        """
        if self._thread is not None:
            raise StreamsepError("control server already started")
        self._thread = threading.Thread(target=self._run, name="streamsep-control", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_SECONDS):
            raise StreamsepError("control: endpoint not bound after 10 s")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Stop the thread and close the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_START_TIMEOUT_SECONDS)

    def close(self) -> None:
        """Same as :meth:`stop`."""
        self.stop()

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        """Whether the thread is serving (started, bound, not failed, not stopped)."""
        return (
            self._thread is not None
            and self._thread.is_alive()
            and self._ready.is_set()
            and self._error is None
            and not self._stop.is_set()
        )

    def health(self) -> dict[str, Any]:
        """The endpoint's own health, safe from any thread: ``alive`` (bool), ``requests``
        (answered, errors included), ``errors`` (error replies and failed sends), and
        ``last_error`` (its text, or None)."""
        with self._lock:
            return {
                "alive": self.alive,
                "requests": self._requests,
                "errors": self._errors,
                "last_error": self._last_error,
            }

    def _run(self) -> None:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        auth = None
        sock = None
        try:
            if self._keys is not None:
                auth = self._keys.start_authenticator(context)
            sock = self._open(context)
            _LOGGER.info("control endpoint on %s", self.bound_endpoint)
            self._ready.set()
            while not self._stop.is_set():
                if sock.poll(_POLL_MS, zmq.POLLIN):
                    if not self._serve_one(sock):  # the socket is unusable: open a fresh one
                        sock.close()
                        sock = None
                        sock = self._open(context)
        except BaseException as e:  # noqa: BLE001 - surfaced through start() and the log
            if self._ready.is_set():
                _LOGGER.exception("control server failed")
            self._error = e
        finally:
            self._ready.set()
            if sock is not None:
                sock.close()
            if auth is not None:
                auth.stop()
            context.term()

    def _open(self, context: zmq.Context[zmq.Socket[bytes]]) -> zmq.Socket[bytes]:
        sock = context.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        if self._keys is not None:
            self._keys.apply(sock)
        endpoint = self.bound_endpoint or self.settings.endpoint
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as e:
            sock.close()
            raise StreamsepError(f"control: cannot bind {endpoint}: {e}") from e
        self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return sock

    def _serve_one(self, sock: zmq.Socket[bytes]) -> bool:
        """Receive one request and send its one reply. Returns False if the socket failed
        (then nothing more can be sent on it)."""
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return True
        except zmq.ZMQError as e:
            self._count_error(f"receive failed: {e}")
            _LOGGER.warning("control: receive failed: %s; reopening the socket", e)
            return False
        try:
            reply = self._answer(frames)
        except _BadRequest as e:
            reply = {"ok": False, "error": str(e)}
            self._count_error(str(e))
            if (suppressed := self._log.hit()) is not None:
                _LOGGER.warning("control: bad request: %s (%d more since)", e, suppressed)
        except Exception as e:  # noqa: BLE001 - one request must never end the thread
            reply = {"ok": False, "error": f"internal error: {type(e).__name__}: {e}"}
            self._count_error(reply["error"])
            _LOGGER.exception("control: request failed")
        with self._lock:
            self._requests += 1
        try:
            sock.send(json.dumps({**reply, "version": proto.VERSION}, allow_nan=False).encode())
        except zmq.ZMQError as e:
            self._count_error(f"reply failed: {e}")
            _LOGGER.warning("control: reply failed: %s; reopening the socket", e)
            return False
        return True

    def _count_error(self, text: str) -> None:
        with self._lock:
            self._errors += 1
            self._last_error = text[:200]

    def _answer(self, frames: list[bytes]) -> dict[str, Any]:
        """The reply to one request. Raises _BadRequest for anything malformed."""
        if len(frames) != 1:
            raise _BadRequest(f"expected a request of 1 frame, got {len(frames)}")
        raw = frames[0]
        if len(raw) > MAX_REQUEST_BYTES:
            raise _BadRequest(f"request too large: {len(raw)} bytes, at most {MAX_REQUEST_BYTES}")
        try:
            request = decode_json(raw)
        except JsonTextError as e:
            raise _BadRequest(f"request is {str(e)[:_SHOWN_CHARS]}") from e
        if not isinstance(request, dict):
            kind = _JSON_TYPES.get(type(request), type(request).__name__)
            raise _BadRequest(f"request must be a JSON object, got {kind}")
        cmd = request.get("cmd")
        if cmd == "ping":
            return {"ok": True}
        if cmd == "status":
            return {"ok": True, "status": self._status_snapshot()}
        raise _BadRequest(f"unknown command {_shown(cmd)}; expected 'status' or 'ping'")

    def _status_snapshot(self) -> dict[str, Any]:
        try:
            status = self._status()
            json.dumps(status, allow_nan=False)
        except Exception as e:  # noqa: BLE001 - reported to the client, logged here
            _LOGGER.exception("status callback failed")
            raise _BadRequest(f"status failed: {e}") from e
        return status


def request(
    endpoint: str,
    body: dict[str, Any],
    *,
    timeout: float = 5.0,
    curve: CurveClientKeys | None = None,
) -> dict[str, Any]:
    """Send one control request and return the reply (a small client for tools and tests).

    Parameters
    ----------
    endpoint : str
        Control endpoint.
    body : dict
        The request, e.g. ``{"cmd": "status"}``.
    timeout : float
        Seconds to wait for the reply.
    curve : CurveClientKeys, optional
        Client keys when the server uses CURVE.

    Raises
    ------
    StreamsepError
        If no reply comes within ``timeout``.
    """
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        if curve is not None:
            curve.apply(sock)
        sock.connect(endpoint)
        sock.send(json.dumps(body).encode())
        if not sock.poll(int(timeout * 1000), zmq.POLLIN):
            raise StreamsepError(f"control: no reply from {endpoint} within {timeout} s")
        try:
            reply = json.loads(sock.recv())
        except (ValueError, RecursionError) as e:
            raise StreamsepError(f"control: reply from {endpoint} is not JSON: {e}") from e
        if not isinstance(reply, dict):
            raise StreamsepError(f"control: expected a JSON object, got {reply!r}")
        return reply
    finally:
        sock.close()
        context.term()
