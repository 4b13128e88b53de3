"""Prometheus metrics: the text exposition format (version 0.0.4) over HTTP, stdlib only.

:class:`MetricsServer` serves ``GET /metrics`` on its own thread (``streamsep-metrics``); each
scrape calls a ``collect()`` function that returns :class:`Metric` objects built from the
daemon's counters at that moment, so nothing is updated on the audio path.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

from streamsep.errors import StreamsepError
from streamsep.net.security import is_local_endpoint
from streamsep.validate import check_bool, check_int, check_str

__all__ = ["MetricsSettings", "Metric", "render", "MetricsServer", "CONTENT_TYPE"]

_LOGGER = logging.getLogger(__name__)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_KINDS: Final = ("counter", "gauge")


@dataclass(frozen=True)
class MetricsSettings:
    """The ``[metrics]`` table: where the Prometheus endpoint listens."""

    enabled: bool = False
    """Serve ``/metrics``."""
    host: str = "127.0.0.1"
    """Address to bind (loopback by default; anything else is reachable from the network)."""
    port: int = 9464
    """TCP port, 0..65535 (0: any free port, logged at startup)."""

    def __post_init__(self) -> None:
        check_bool("metrics.enabled", self.enabled)
        check_str("metrics.host", self.host)
        check_int("metrics.port", self.port, minimum=0, maximum=65535)


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


class MetricsServer:
    """Serves ``render(collect())`` at ``http://HOST:PORT/metrics``.

    Parameters
    ----------
    settings : MetricsSettings
        Host and port.
    collect : callable
        Returns the metrics; called on a server thread for each scrape, must be quick.
    """

    def __init__(self, settings: MetricsSettings, collect: Callable[[], list[Metric]]) -> None:
        self.settings = settings
        self._collect = collect
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._server is None:
            raise StreamsepError("metrics server not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and start serving.

        Raises
        ------
        StreamsepError
            If the address cannot be bound.
        """
        collect = self._collect

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                try:
                    body = render(collect()).encode()
                except Exception:  # noqa: BLE001 - a scrape must not kill the server
                    _LOGGER.exception("metrics: collecting failed")
                    self.send_error(500)
                    return
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                _LOGGER.debug("metrics: " + format, *args)

        host, port = self.settings.host, self.settings.port
        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as e:
            raise StreamsepError(f"metrics: cannot bind {host}:{port}: {e.strerror or e}") from e
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="streamsep-metrics", daemon=True
        )
        self._thread.start()
        if not is_local_endpoint(f"tcp://{host}:{port}"):
            _LOGGER.warning("metrics: %s is reachable from the network", host)
        _LOGGER.info("metrics: http://%s:%d/metrics", host, self.port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)

    def close(self) -> None:
        """Same as :meth:`stop`."""
        self.stop()

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
