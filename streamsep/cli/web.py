"""Command-line layer of ``streamsep web``: flags -> :class:`WebSettings` (+ HLS output) ->
:class:`~streamsep.web.server.WebMonitor`, run until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from streamsep.errors import ConfigError
from streamsep.web.settings import HlsOutSettings, WebSettings

__all__ = ["add_parser", "cmd_web"]


def add_parser(sub: Any) -> None:
    """Add ``web`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "web",
        help="serve a live web monitor (spectrograms, audio, levels) of a published stream",
        description="Subscribe to a publisher (docs/protocol.md) and serve a web page with live "
        "spectrograms, audio, levels and status, and optionally a live HLS playlist of one stem "
        "(docs/web.md). Runs until SIGINT/SIGTERM.",
    )
    p.add_argument("--connect", required=True, metavar="ENDPOINT", help="publisher endpoint")
    p.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="HTTP address; non-loopback needs --token; port 0 = any (default: 127.0.0.1:8080)",
    )
    p.add_argument("--token", metavar="T", help="access token (>= 16 characters)")
    p.add_argument("--token-file", metavar="F", help="read the access token from F")
    p.add_argument("--curve-server-key", metavar="F", help="publisher public key (.key)")
    p.add_argument("--curve-client-key", metavar="F", help="this client's .key_secret file")
    p.add_argument(
        "--audio-rate", type=int, default=16000, metavar="HZ", help="browser audio rate (16000)"
    )
    p.add_argument(
        "--client-queue",
        type=int,
        default=512,
        metavar="N",
        help="messages queued per browser before its oldest are dropped (512)",
    )
    g = p.add_argument_group("HLS output")
    g.add_argument("--hls-dir", metavar="DIR", help="write a live HLS playlist of one stem here")
    g.add_argument("--hls-stem", default="orca_vocals", metavar="STEM", help="(orca_vocals)")
    g.add_argument(
        "--hls-segment-seconds", type=float, default=4.0, metavar="S", help="segment length (4)"
    )
    g.add_argument("--hls-window", type=int, default=6, metavar="N", help="segments listed (6)")


def cmd_web(args: argparse.Namespace) -> int:
    """``streamsep web``."""
    token = args.token
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as e:
            raise ConfigError(
                f"--token-file: cannot read {args.token_file}: {e.strerror}"
            ) from None
    settings = WebSettings(
        listen=args.listen, token=token, audio_rate=args.audio_rate, client_queue=args.client_queue
    )
    hls = None
    if args.hls_dir:
        hls = HlsOutSettings(
            directory=args.hls_dir,
            stem=args.hls_stem,
            segment_seconds=args.hls_segment_seconds,
            window_segments=args.hls_window,
        )
    from streamsep.web.server import WebMonitor  # aiohttp and PyAV only for this command

    monitor = WebMonitor(
        args.connect,
        settings,
        hls=hls,
        curve_server_key=args.curve_server_key,
        curve_client_key=args.curve_client_key,
    )
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    monitor.start()
    try:
        print(f"streamsep web: {monitor.url}", flush=True)
        while not done.wait(1.0):
            pass
    finally:
        monitor.stop()
    return 0
