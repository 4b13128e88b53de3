"""Which subscriptions the publisher accepts, and the counts the end-of-stream wait needs.

The publisher's XPUB socket runs with ``ZMQ_XPUB_MANUAL``: libzmq hands every subscribe
(``\\x01prefix``) and unsubscribe (``\\x00prefix``) message to the publisher thread and filters
its sends only by the subscriptions that thread applies (``setsockopt(SUBSCRIBE)``, which acts
on the connection the message just read came from). A prefix of some published topic (``""``,
``audio.``, ``audio.orca_vocals``, ``levels`` ...) is applied and counted; anything else is
junk: counted, logged at most once per :data:`LOG_INTERVAL_SECONDS`, and never applied, so it
neither enters the send-side filter nor the end-of-stream accounting.

``ZMQ_MAXMSGSIZE`` (:func:`max_inbound_bytes`) bounds every message a subscriber sends: libzmq
disconnects a peer whose subscription is longer than any valid one before storing anything.
What is left: libzmq keeps its own copy of each manual subscription per connection (to
unsubscribe it when the connection closes), at most that many bytes each, freed at disconnect.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, Final

import zmq

from streamsep.net.throttle import LogThrottle

__all__ = [
    "LOG_INTERVAL_SECONDS",
    "NULL_HANDSHAKE_BYTES",
    "CURVE_HANDSHAKE_BYTES",
    "SubscriptionGate",
    "max_inbound_bytes",
]

_LOGGER = logging.getLogger(__name__)

LOG_INTERVAL_SECONDS: Final = 10.0
"""Least time between two log lines about rejected subscriptions, seconds."""
NULL_HANDSHAKE_BYTES: Final = 64
"""Inbound message limit without CURVE: room for the ZMTP ``READY`` command (libzmq 4.3.5's SUB
needs a limit of at least 27) and any valid subscription of a short topic, bytes."""
CURVE_HANDSHAKE_BYTES: Final = 512
"""Inbound message limit with CURVE: its ``INITIATE`` command needs a limit of at least 278
with libzmq 4.3.5, bytes."""
_CURVE_MESSAGE_OVERHEAD: Final = 33  # MESSAGE command: name, nonce, MAC, flags
_SHOWN_BYTES: Final = 40  # of a rejected prefix in the log


def max_inbound_bytes(topics: Iterable[str], *, curve: bool) -> int:
    """``ZMQ_MAXMSGSIZE`` for the publisher: the longest valid subscription message (one flag
    byte and a topic; encrypted with CURVE) or the handshake, whichever is larger, bytes."""
    longest = 1 + max((len(t.encode()) for t in topics), default=0)
    if curve:
        return max(CURVE_HANDSHAKE_BYTES, longest + _CURVE_MESSAGE_OVERHEAD)
    return max(NULL_HANDSHAKE_BYTES, longest)


class SubscriptionGate:
    """Reads subscription messages from a manual XPUB socket, applies the valid ones and keeps
    the counts (accepted, active, rejected; withdrawn since the end of stream).

    Parameters
    ----------
    topics : iterable of str
        Every topic the publisher may send; their prefixes (and ``""``) are the valid
        subscriptions.

    :meth:`read` runs on the publisher thread (it owns the socket); the counts and
    :meth:`wait_for` are safe from any thread.
    """

    def __init__(self, topics: Iterable[str]) -> None:
        self._valid: frozenset[bytes] = frozenset(
            t.encode()[:n] for t in topics for n in range(len(t.encode()) + 1)
        )
        self._changed = threading.Condition()
        self.accepted = 0
        """Valid subscribe messages seen (one per topic prefix per subscriber)."""
        self.active = 0
        """Valid subscriptions minus valid unsubscriptions (a subscriber leaving sends them)."""
        self.rejected = 0
        """Subscriptions to prefixes of no published topic, and messages that are neither a
        subscription nor an unsubscription (their unsubscriptions are ignored)."""
        self._open_at_end: int | None = None  # active subscriptions when the end was first sent
        self._withdrawn_since_end = 0
        self._throttle = LogThrottle(LOG_INTERVAL_SECONDS)

    def accepts(self, prefix: bytes) -> bool:
        """Whether ``prefix`` is a prefix of some published topic."""
        return prefix in self._valid

    def read(self, sock: zmq.Socket[bytes]) -> None:
        """Handle every subscription message waiting on ``sock`` (never blocks)."""
        while True:
            try:
                message = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._handle(sock, message)

    def _handle(self, sock: zmq.Socket[bytes], message: bytes) -> None:
        kind, prefix = message[:1], message[1:]
        if kind == b"\x00" and not self.accepts(prefix):
            return  # withdraws what was never applied (libzmq sends these at a disconnect)
        if kind not in (b"\x00", b"\x01") or not self.accepts(prefix):
            self._reject(message)
            return
        # Manual mode: applies to the connection the message came from (libzmq's "last pipe");
        # after a disconnect libzmq sends its unsubscriptions with no pipe, and this is a no-op.
        try:
            sock.setsockopt(zmq.SUBSCRIBE if kind == b"\x01" else zmq.UNSUBSCRIBE, prefix)
        except zmq.ZMQError as e:  # not expected; one message must not end the thread
            _LOGGER.warning("publisher: cannot apply %r: %s", message[:_SHOWN_BYTES], e)
            return
        if kind == b"\x01":
            _LOGGER.debug("subscription to %r", prefix)
            with self._changed:
                self.accepted += 1
                self.active += 1
                self._changed.notify_all()
        else:
            _LOGGER.debug("unsubscription from %r", prefix)
            with self._changed:
                self.active -= 1
                self._withdrawn_since_end += 1
                self._changed.notify_all()

    def _reject(self, message: bytes) -> None:
        with self._changed:
            self.rejected += 1
            total = self.rejected
        suppressed = self._throttle.hit()
        if suppressed is None:
            return
        if message[:1] == b"\x01":
            what, body = "subscription to", message[1:]
        else:
            what, body = "message", message
        cut = "..." if len(body) > _SHOWN_BYTES else ""
        _LOGGER.warning(
            "publisher: ignored %s %r%s: not a prefix of a published topic "
            "(%d ignored in all, %d not logged since the last report)",
            *(what, body[:_SHOWN_BYTES], cut, total, suppressed),
        )

    def wait_for(self, n: int, timeout: float | None) -> bool:
        """Wait until ``n`` valid subscriptions arrived. Returns False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.accepted >= n, timeout)

    def mark_end(self) -> None:
        """Count the subscriptions open now, once: each owes an unsubscription."""
        with self._changed:
            if self._open_at_end is None:
                self._open_at_end = self.active
                self._withdrawn_since_end = 0

    def unacknowledged(self) -> int:
        """Subscriptions open at the end of stream and not withdrawn since."""
        with self._changed:
            return (self._open_at_end or 0) - self._withdrawn_since_end

    def stats(self) -> dict[str, Any]:
        """``subscriptions``, ``active_subscriptions``, ``subscriptions_rejected``."""
        with self._changed:
            return {
                "subscriptions": self.accepted,
                "active_subscriptions": self.active,
                "subscriptions_rejected": self.rejected,
            }
