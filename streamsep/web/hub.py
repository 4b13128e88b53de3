"""Fan-out of browser messages: one bounded queue per client, drop-oldest, counted.

Runs on the server's asyncio loop. :meth:`Hub.publish` never waits: a client whose queue is
full loses its oldest message (counted in ``dropped``, and told to it in a ``client`` message
at most once a second); its sender task is the only thing a slow client slows down. Every
message a client is given gets the next number of that client's ``seq``, so holes in ``seq``
are exactly the messages dropped for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from streamsep.web import frames

__all__ = ["Hub", "Client"]

_LOGGER = logging.getLogger(__name__)

_REPORT_SECONDS: Final = 1.0


@dataclass(eq=False)
class Client:
    """One WebSocket client and its queue."""

    ws: web.WebSocketResponse
    capacity: int
    peer: str = ""
    audio: set[str] = field(default_factory=set)
    """Stems whose audio this client asked for."""
    queue: deque[tuple[int, bytes | str]] = field(init=False)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    seq: int = 0
    sent: int = 0
    dropped: int = 0
    reported_dropped: int = 0
    reported_at: float = 0.0

    def __post_init__(self) -> None:
        self.queue = deque(maxlen=self.capacity)

    def put(self, message: bytes | str) -> None:
        """Queue ``message`` (the oldest goes if full); loop thread only."""
        if len(self.queue) == self.capacity:
            self.dropped += 1
        self.seq += 1
        self.queue.append((self.seq, message))
        self.ready.set()


class Hub:
    """The set of connected clients; every method runs on the event loop."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.clients: set[Client] = set()
        self.published = 0
        self.dropped_total = 0  # of clients that left

    def add(self, client: Client) -> None:
        self.clients.add(client)

    def remove(self, client: Client) -> None:
        self.clients.discard(client)
        self.dropped_total += client.dropped

    def publish(self, message: bytes | str, audio_stem: str | None) -> None:
        """Give ``message`` to every client (audio: those that asked for ``audio_stem``)."""
        self.published += 1
        now = time.monotonic()
        for client in self.clients:
            if audio_stem is not None and audio_stem not in client.audio:
                continue
            client.put(message)
            if client.dropped != client.reported_dropped and now - client.reported_at > (
                _REPORT_SECONDS
            ):
                client.reported_dropped, client.reported_at = client.dropped, now
                client.put(frames.json_message("client", dropped=client.dropped))

    async def send_loop(self, client: Client) -> None:
        """Send ``client``'s queue until its socket closes (one task per client)."""
        ws = client.ws
        try:
            while not ws.closed:
                await client.ready.wait()
                client.ready.clear()
                while client.queue and not ws.closed:
                    seq, message = client.queue.popleft()
                    out = frames.with_seq(message, seq)
                    if isinstance(out, str):
                        await ws.send_str(out)
                    else:
                        await ws.send_bytes(out)
                    client.sent += 1
        except (ConnectionError, RuntimeError) as e:  # the client went away mid-send
            _LOGGER.debug("web: client %s: %s", client.peer, e)

    def stats(self) -> dict[str, Any]:
        """Counters, JSON-able."""
        return {
            "clients": len(self.clients),
            "published": self.published,
            "per_client": [
                {
                    "peer": c.peer,
                    "sent": c.sent,
                    "dropped": c.dropped,
                    "queued": len(c.queue),
                    "seq": c.seq,
                }  # fmt: skip
                for c in self.clients
            ],
            "dropped_total": self.dropped_total + sum(c.dropped for c in self.clients),
        }
