"""JSON messages that other components hand to the publisher (the ``events`` topic).

A bounded queue, filled from any thread without blocking and drained on the publisher thread
before the audio queued after each message, so a subscriber sees an event before the audio that
ended it.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from typing import Any, Final

from streamsep.net import protocol as proto

__all__ = ["JsonOutbox"]

_LOGGER = logging.getLogger(__name__)

OUTBOX_MESSAGES: Final = 1024
"""Messages that may wait; more are refused (logged)."""


class JsonOutbox:
    """Queued ``(topic, body)`` JSON messages; :meth:`put` from any thread, :meth:`drain` on
    the publisher thread."""

    def __init__(self, capacity: int = OUTBOX_MESSAGES) -> None:
        self._queue: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(capacity)

    def put(self, topic: str, body: dict[str, Any]) -> bool:
        """Queue a message; never blocks. False (logged) when the queue is full."""
        try:
            self._queue.put_nowait((topic, body))
        except queue.Full:
            _LOGGER.error("publisher: %s message dropped (queue full)", topic)
            return False
        return True

    def drain(self, send: Callable[[list[bytes]], bool]) -> None:
        """Encode and send every waiting message (``version`` added by the protocol layer);
        ``send(frames)`` returns False when the message could not be delivered (logged)."""
        while True:
            try:
                topic, body = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                frames = proto.encode_json(topic, body)
            except (TypeError, ValueError) as e:
                _LOGGER.error("publisher: %s message not JSON-able: %s", topic, e)
                continue
            if not send(frames):
                _LOGGER.error("publisher: %s message not sent (subscriber queue full)", topic)
