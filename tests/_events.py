"""Helpers of the events tests: tone-burst signals and a local HTTP server that records POSTs."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

NOISE_RMS = 1e-3  # -60 dBFS background
BURST_AMPLITUDE = 0.1  # -20 dBFS peak


def bursts(
    rate: int,
    seconds: float,
    spans: list[tuple[float, float]],
    *,
    seed: int = 0,
    freq_hz: float = 2000.0,
    amplitude: float = BURST_AMPLITUDE,
    channels: int = 1,
) -> np.ndarray:
    """White noise at -60 dBFS with sine bursts at ``freq_hz`` over ``spans`` (seconds),
    shape (n_samples, channels), float32."""  # fmt: skip
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    x = rng.normal(0.0, NOISE_RMS, (n, channels))
    t = np.arange(n) / rate
    for a, b in spans:
        i, j = round(a * rate), round(b * rate)
        x[i:j] += amplitude * np.sin(2 * np.pi * freq_hz * t[i:j])[:, None]
    return x.astype(np.float32)


class HookServer:
    """A threading HTTP server on 127.0.0.1 answering POSTs with ``status`` (recorded), or not
    answering until released (``hang``)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.posts: list[dict[str, Any]] = []
        self.received = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with owner.received:
                    owner.posts.append(body)
                    owner.received.notify_all()
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_posts(self, n: int, timeout: float) -> bool:
        with self.received:
            return self.received.wait_for(lambda: len(self.posts) >= n, timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
