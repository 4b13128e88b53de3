"""Rate limiting of repeated log lines (drops, rejected subscriptions): the first event logs at
once, later ones at most once per interval, each with the count of events not logged."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["LogThrottle"]


class LogThrottle:
    """Decides when a repeated event may be logged again.

    Parameters
    ----------
    interval_seconds : float
        Least time between two log lines, seconds (monotonic clock).
    clock : callable, optional
        Returns seconds; default :func:`time.monotonic` (tests pass their own).

    Thread-safe.
    """

    def __init__(
        self, interval_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._next: float | None = None
        self._suppressed = 0

    def hit(self) -> int | None:
        """Count one event. Returns None when it must not be logged, else the number of events
        suppressed since the last log line (0 for the first)."""
        now = self._clock()
        with self._lock:
            if self._next is not None and now < self._next:
                self._suppressed += 1
                return None
            suppressed, self._suppressed = self._suppressed, 0
            self._next = now + self.interval_seconds
            return suppressed
