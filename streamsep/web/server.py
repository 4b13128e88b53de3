"""The web monitor's HTTP server (aiohttp) and :class:`WebMonitor`, which runs it with its feed.

Routes: ``/`` (the page), ``/static/*`` (its files, from the package), ``/ws`` (the live data,
:mod:`streamsep.web.frames`), ``/hls/live.m3u8`` and ``/hls/*.ts`` (the live HLS output when
one is configured), ``/player.html`` (hls.js playing it), ``/stats`` (counters as JSON).

With a token every route needs it: ``?token=...`` (which also sets a same-site cookie, so the
page's own requests carry it), an ``Authorization: Bearer`` header, or that cookie.

Threads: the server's asyncio loop runs on ``streamsep-web`` and owns the clients; the feed
runs on ``streamsep-web-feed`` and hands messages over with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import resource
import socket
import threading
import time
from pathlib import Path
from typing import Any, Final

from aiohttp import WSMsgType, web

from streamsep.errors import ConfigError, StreamsepError
from streamsep.net.security import is_local_endpoint
from streamsep.web import frames
from streamsep.web.feed import Feed
from streamsep.web.hls import HlsWriter
from streamsep.web.hub import Client, Hub
from streamsep.web.settings import HlsOutSettings, WebSettings

__all__ = ["WebMonitor", "STATIC_DIR", "daemon_monitor"]

_LOGGER = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
_COOKIE: Final = "streamsep_token"
_HLS_NAME: Final = re.compile(r"^(live\.m3u8|seg[0-9]{1,12}\.ts)$")
_START_TIMEOUT_SECONDS: Final = 10.0
_MAX_CLIENT_MESSAGE: Final = 4096
_HEARTBEAT_SECONDS: Final = 20.0


class WebMonitor:
    """Subscribes to a publisher and serves the page, its live data and the HLS output.

    Parameters
    ----------
    endpoint : str
        The publisher (``docs/protocol.md``).
    settings : WebSettings or None
        Listen address, token, spectrogram and audio parameters; None: no web server, only the
        HLS output (the daemon's ``[hls_out]`` without ``[web]``).
    hls : HlsOutSettings, optional
        Also write (and serve) a live HLS playlist of one stem.
    curve_server_key, curve_client_key : str, optional
        CURVE key files for the subscription.
    """

    def __init__(
        self,
        endpoint: str,
        settings: WebSettings | None,
        *,
        hls: HlsOutSettings | None = None,
        curve_server_key: str | None = None,
        curve_client_key: str | None = None,
    ) -> None:
        if settings is None and hls is None:
            raise ConfigError("web monitor: neither a web server nor an HLS output to run")
        self.serve = settings is not None
        self.settings = settings if settings is not None else WebSettings()
        self.hls = None if hls is None else HlsWriter(hls)
        self.hub = Hub(self.settings.client_queue)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        taps = [] if self.hls is None else [self.hls.write]
        self.feed = Feed(
            endpoint,
            self.settings,
            self._emit if self.serve else None,
            curve_server_key=curve_server_key,
            curve_client_key=curve_client_key,
            taps=taps,
        )
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.port = 0
        """The bound port (set by :meth:`start`)."""
        self._started = time.monotonic()

    @property
    def url(self) -> str:
        """``http://HOST:PORT/`` of the page."""
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the server, then start the feed (and the HLS writer).

        Raises
        ------
        StreamsepError
            If the address cannot be bound.
        """
        if self.serve:
            self._thread = threading.Thread(target=self._run, name="streamsep-web", daemon=True)
            self._thread.start()
            if not self._ready.wait(_START_TIMEOUT_SECONDS):
                raise StreamsepError("web: server not listening after 10 s")
            if self._error is not None:
                raise self._error
            _LOGGER.info("web monitor on %s", self.url)
        if self.hls is not None:
            self.hls.start()
        self.feed.start()

    def stop(self) -> None:
        """Stop the feed, the HLS writer and the server; joins the threads."""
        self.feed.stop()
        if self.hls is not None:
            self.hls.stop()
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(_START_TIMEOUT_SECONDS)

    def close(self) -> None:
        """Same as :meth:`stop`."""
        self.stop()

    def __enter__(self) -> WebMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # noqa: BLE001 - reported to start()
            self._error = e if isinstance(e, StreamsepError) else StreamsepError(f"web: {e}")
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        app = self._app()
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        s = self.settings
        site = web.TCPSite(self._runner, s.host, s.port)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            raise StreamsepError(
                f"web.listen: cannot listen on {s.listen}: {e.strerror or e}"
            ) from None
        server = site._server
        if server is not None and getattr(server, "sockets", None):
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._ready.set()
        await self._stopped.wait()
        for client in list(self.hub.clients):
            await client.ws.close()
        await self._runner.cleanup()

    def _emit(self, message: bytes | str, audio_stem: str | None) -> None:
        """Feed thread -> loop (never blocks)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.hub.publish, message, audio_stem)
            except RuntimeError:  # loop closing
                pass

    # -- the app -----------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/", self._index)
        app.router.add_get("/player.html", self._player)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/hls/{name}", self._hls_file)
        app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        token = self.settings.token
        if token is None:
            return await handler(request)
        given = request.query.get("token") or request.cookies.get(_COOKIE) or ""
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            given = bearer[len("Bearer ") :]
        if not hmac.compare_digest(given.encode(), token.encode()):
            return web.Response(status=401, text="access token required\n")
        response = await handler(request)
        if request.query.get("token") and not response.prepared:
            response.set_cookie(_COOKIE, token, httponly=True, samesite="Strict")
        return response

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def _player(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "player.html", headers={"Cache-Control": "no-cache"})

    async def _hls_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if self.hls is None or not _HLS_NAME.match(name):
            raise web.HTTPNotFound()
        path = Path(self.hls.settings.directory) / name
        if not path.is_file():
            raise web.HTTPNotFound()
        if name.endswith(".m3u8"):
            return web.Response(
                body=path.read_bytes(),
                content_type="application/vnd.apple.mpegurl",
                headers={"Cache-Control": "no-cache"},
            )
        return web.FileResponse(path, headers={"Content-Type": "video/mp2t"})

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        body = {
            **self.hub.stats(),
            "feed": {
                "messages_in": self.feed.messages_in,
                "errors": self.feed.errors,
                "latency_ms": self.feed.latency_ms,
                "stems": self.feed.stem_names,
            },
            "hls": None if self.hls is None else self.hls.stats(),
            "process": {
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "max_rss_kib": usage.ru_maxrss,
                "uptime_seconds": time.monotonic() - self._started,
            },
        }
        return web.json_response(body, headers={"Cache-Control": "no-cache"})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if len(self.hub.clients) >= self.settings.max_clients:
            raise web.HTTPServiceUnavailable(text="too many clients\n")
        ws = web.WebSocketResponse(max_msg_size=_MAX_CLIENT_MESSAGE, heartbeat=_HEARTBEAT_SECONDS)
        await ws.prepare(request)
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None and self.settings.client_sndbuf_bytes:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.settings.client_sndbuf_bytes)
        client = Client(ws, self.settings.client_queue, peer=str(request.remote))
        hello = frames.json_message(
            "hello",
            version=1,
            stems=self.feed.stem_names,
            audio_rate=self.settings.audio_rate,
            db_min=self.settings.db_min,
            db_max=self.settings.db_max,
            hls=self.hls is not None,
            server_time_ms=time.time() * 1000,
        )
        client.put(hello)
        for message in self.feed.snapshot():
            client.put(message)
        self.hub.add(client)
        sender = asyncio.create_task(self.hub.send_loop(client))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_client_message(client, msg.data)
        finally:
            self.hub.remove(client)
            sender.cancel()
        return ws

    def _on_client_message(self, client: Client, text: str) -> None:
        try:
            body = json.loads(text)
            if body.get("type") == "audio":
                stems = body.get("stems", [])
                if isinstance(stems, list) and all(isinstance(s, str) for s in stems):
                    client.audio = set(stems[:16])
        except (ValueError, AttributeError):
            _LOGGER.debug("web: ignored a malformed client message")


def daemon_monitor(
    web: WebSettings | None, hls: HlsOutSettings | None, endpoints: list[str], *, curve: bool
) -> WebMonitor | None:
    """The daemon's ``[web]`` / ``[hls_out]``: a monitor subscribed to the daemon's own
    publisher at its first loopback or ``ipc://`` endpoint (``endpoints``: as bound), or None
    when both are off.

    Raises
    ------
    ConfigError
        If the publisher uses CURVE or binds no local endpoint (run ``streamsep web`` with
        client keys instead).
    """
    if web is None and hls is None:
        return None
    local = [e for e in endpoints if is_local_endpoint(e)]
    if curve or not local:
        raise ConfigError(
            "web/hls_out: the in-process monitor subscribes to a loopback or ipc:// publish "
            "endpoint without CURVE; run `streamsep web` with client keys instead"
        )
    return WebMonitor(local[0], web, hls=hls)
