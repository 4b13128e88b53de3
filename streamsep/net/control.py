"""Control endpoint: a REP socket on its own thread answering JSON requests.

Requests and replies are single-frame UTF-8 JSON objects:

* ``{"cmd": "status"}`` -> ``{"ok": true, "status": {...}}``, the dict returned by the
  ``status`` callable (uptime, samples in and out, drops, latency, real-time factor, queue
  depths, model: see :func:`streamsep.net.status.pipeline_status`).
* ``{"cmd": "ping"}`` -> ``{"ok": true}``.
* anything else -> ``{"ok": false, "error": "..."}``.

The bind rule of the publisher applies: a non-loopback endpoint needs CURVE or ``insecure``.
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
from streamsep.net.security import CurveClientKeys, CurveServerKeys, check_bind, load_server_keys

__all__ = ["ControlSettings", "ControlServer", "request"]

_LOGGER = logging.getLogger(__name__)

_POLL_MS: Final = 100
_START_TIMEOUT_SECONDS: Final = 10.0

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

    def _run(self) -> None:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        auth = None
        sock = None
        try:
            if self._keys is not None:
                auth = self._keys.start_authenticator(context)
            sock = context.socket(zmq.REP)
            sock.setsockopt(zmq.LINGER, 0)
            if self._keys is not None:
                self._keys.apply(sock)
            try:
                sock.bind(self.settings.endpoint)
            except zmq.ZMQError as e:
                raise StreamsepError(f"control: cannot bind {self.settings.endpoint}: {e}") from e
            self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            _LOGGER.info("control endpoint on %s", self.bound_endpoint)
            self._ready.set()
            while not self._stop.is_set():
                if sock.poll(_POLL_MS, zmq.POLLIN):
                    sock.send(json.dumps(self._answer(sock.recv())).encode())
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

    def _answer(self, raw: bytes) -> dict[str, Any]:
        try:
            request = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return {"ok": False, "error": f"request is not JSON: {e}"}
        cmd = request.get("cmd") if isinstance(request, dict) else None
        if cmd == "ping":
            return {"ok": True}
        if cmd == "status":
            try:
                status = self._status()
                json.dumps(status)
            except Exception as e:  # noqa: BLE001 - reported to the client, logged here
                _LOGGER.exception("status callback failed")
                return {"ok": False, "error": f"status failed: {e}"}
            return {"ok": True, "status": status}
        return {"ok": False, "error": f"unknown command {cmd!r}; expected 'status' or 'ping'"}


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
        reply = json.loads(sock.recv())
        if not isinstance(reply, dict):
            raise StreamsepError(f"control: expected a JSON object, got {reply!r}")
        return reply
    finally:
        sock.close()
        context.term()
