"""HTTP webhook notifications of events: a JSON POST per notified event, rate-limited per
node, sent with retries and back-off on its own thread (``streamsep-webhook``).

:meth:`WebhookNotifier.notify` never blocks: it applies the rate limit (at most one
notification per ``min_interval_seconds``; the events in between are counted and reported in
the next notification's ``suppressed``) and puts the notification on a bounded queue (full:
the oldest waiting one is dropped, counted and logged). The thread POSTs
``{"version": 1, "node": ..., "suppressed": n, "event": {...}}`` with a deadline of
``timeout_seconds`` and retries a failure (no answer, or a status other than 2xx) up to
``retries`` times, waiting ``backoff_seconds``, then twice as long each time (at most 300 s).
A notification that never got through is logged; the event itself is in the event log.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Final

from streamsep.events.settings import WebhookSettings
from streamsep.version import __version__

__all__ = ["WebhookNotifier", "WebhookStats"]

_LOGGER = logging.getLogger(__name__)

_MAX_BACKOFF_SECONDS: Final = 300.0
_JOIN_SECONDS: Final = 5.0


@dataclass
class WebhookStats:
    """Counters (read from any thread)."""

    sent: int = 0
    """Notifications the server accepted (2xx)."""
    failed: int = 0
    """Notifications given up after every retry, or left unsent at shutdown."""
    suppressed: int = 0
    """Events not notified because of the rate limit."""
    dropped: int = 0
    """Notifications dropped from a full queue."""
    attempts: int = 0


class WebhookNotifier:
    """Sends events to ``settings.url``; see the module docstring.

    Parameters
    ----------
    settings : WebhookSettings
    node : str
        This hydrophone's name (in every notification).
    """

    def __init__(self, settings: WebhookSettings, node: str) -> None:
        self.settings = settings
        self.node = node
        self.stats = WebhookStats()
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(settings.queue_events)
        self._stop = threading.Event()
        self._last_notified: float | None = None
        self._suppressed_since = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._busy = False

    def start(self) -> None:
        """Start the sender thread."""
        self._thread = threading.Thread(target=self._run, name="streamsep-webhook", daemon=True)
        self._thread.start()

    def notify(self, event: dict[str, Any]) -> bool:
        """Rate limit and queue one event; never blocks (called on the synthesis thread).
        Returns whether a notification was queued."""
        now = time.monotonic()
        with self._lock:
            interval = self.settings.min_interval_seconds
            if self._last_notified is not None and now - self._last_notified < interval:
                self._suppressed_since += 1
                self.stats.suppressed += 1
                return False
            self._last_notified = now
            body = {"node": self.node, "suppressed": self._suppressed_since, "event": event}
            self._suppressed_since = 0
        while True:
            try:
                self._queue.put_nowait(body)
                return True
            except queue.Full:
                try:
                    old = self._queue.get_nowait()
                except queue.Empty:
                    continue
                with self._lock:
                    self.stats.dropped += 1
                _LOGGER.warning(
                    "webhook: queue full, notification of %s dropped", old["event"].get("id")
                )

    @property
    def pending(self) -> int:
        """Notifications queued or being sent."""
        return self._queue.qsize() + (1 if self._busy else 0)

    def close(self, drain_seconds: float = 2.0) -> None:
        """Stop: wait up to ``drain_seconds`` for the queue to empty while no POST has failed,
        then the notification in flight gets its current attempt, the rest are given up
        (counted as failed; the events are in the log). Joins the thread."""
        deadline = time.monotonic() + drain_seconds
        failures = self.stats.attempts - self.stats.sent
        while self.pending and time.monotonic() < deadline:
            if self.stats.attempts - self.stats.sent > failures:
                break  # the server is failing: do not hold the shutdown for it
            self._stop.wait(0.02)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.settings.timeout_seconds + _JOIN_SECONDS)
        left = self._queue.qsize()
        if left:
            with self._lock:
                self.stats.failed += left
            _LOGGER.warning(
                "webhook: %d notification(s) not sent at shutdown (events are in the log)", left
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                body = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._busy = True
            try:
                self._deliver(body)
            except Exception:  # noqa: BLE001 - a bad notification must not end the thread
                _LOGGER.exception("webhook: notification failed")
            finally:
                self._busy = False

    def _deliver(self, body: dict[str, Any]) -> None:
        data = json.dumps({"version": 1, **body}, allow_nan=False).encode()
        wait = self.settings.backoff_seconds
        event_id = body["event"].get("id")
        for attempt in range(self.settings.retries + 1):
            with self._lock:
                self.stats.attempts += 1
            error = self._post(data)
            if error is None:
                with self._lock:
                    self.stats.sent += 1
                _LOGGER.info("webhook: notified %s", event_id)
                return
            if attempt == self.settings.retries or self._stop.is_set():
                break
            _LOGGER.warning("webhook: %s: %s; retrying in %g s", event_id, error, wait)
            if self._stop.wait(wait):
                break
            wait = min(wait * 2, _MAX_BACKOFF_SECONDS)
        with self._lock:
            self.stats.failed += 1
        _LOGGER.error("webhook: gave up on %s: %s (the event is in the log)", event_id, error)

    def _post(self, data: bytes) -> str | None:
        request = urllib.request.Request(
            self.settings.url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": f"streamsep/{__version__}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_seconds) as response:
                response.read(65536)
                status = int(response.status)
        except urllib.error.HTTPError as e:
            return f"HTTP {e.code}"
        except (urllib.error.URLError, OSError, ValueError) as e:
            return str(getattr(e, "reason", e))
        return None if 200 <= status < 300 else f"HTTP {status}"
