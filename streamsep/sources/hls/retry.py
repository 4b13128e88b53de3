"""The retry policy of an HLS source: back-off after failures, each failure logged once, and
segments tried a bounded number of times, never again once refused.

:class:`Backoff` spaces the tries of a failing playlist (or resolver): ``reconnect_seconds``
doubling up to ``reconnect_max_seconds``; each distinct failure is logged once, not at every
retry, and the recovery once. :class:`SegmentFetcher` fetches a listed segment up to
``segment_retries`` times with the same back-off; a permanent failure (a URI that is not
http/https, a redirect to one, a body over the size limit: :class:`FetchError` with
``permanent``) is not retried, and its URI is remembered so that it is never requested again
(a restarted or re-listed stream does not download an oversized segment a second time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from streamsep.sources.hls.fetch import Fetch, FetchError
from streamsep.sources.hls.playlist import HlsError

__all__ = ["Backoff", "SegmentFetcher"]

_LOGGER = logging.getLogger(__name__)

_REMEMBERED_REFUSALS: Final = 256


class Backoff:
    """Waits between tries after consecutive failures.

    Parameters
    ----------
    first_seconds : float
        Wait after the first failure, seconds; doubles after each further one.
    max_seconds : float
        Longest wait, seconds.
    """

    def __init__(self, first_seconds: float, max_seconds: float) -> None:
        self.first_seconds = first_seconds
        self.max_seconds = max_seconds
        self.failure: str | None = None
        """The last failure's message (None after a success)."""
        self.failures = 0
        """Consecutive failures."""
        self._delay = first_seconds

    def failed(self, message: str, *, logged: bool = False) -> float:
        """Count a failure (logged unless it repeats the last one, or ``logged``); returns the
        wait before the next try, seconds."""
        if message != self.failure and not logged:
            _LOGGER.warning("hls: %s (retrying, back-off up to %g s)", message, self.max_seconds)
        self.failure = message
        self.failures += 1
        delay = self._delay
        self._delay = min(delay * 2, self.max_seconds)
        return delay

    def recovered(self, what: str) -> None:
        """A try succeeded: log the recovery (once) and reset the waits."""
        if self.failure is not None:
            _LOGGER.info("hls: %s reachable again after %d failure(s)", what, self.failures)
        self.failure, self.failures = None, 0
        self._delay = self.first_seconds


class SegmentFetcher:
    """``fetch_segment(uri) -> bytes``: tries, back-off and remembered refusals.

    Parameters
    ----------
    fetch : Fetch
        The request (:class:`~streamsep.sources.hls.fetch.HttpFetcher` or a test seam).
    tries : int
        Attempts for transient failures (HTTP errors, network errors, deadlines).
    first_seconds, max_seconds : float
        Back-off between attempts, seconds (doubling).
    wait : callable
        ``wait(seconds)``; returns early when the source stops.
    stopped : callable
        True once the source stops (no further attempt).
    """

    def __init__(
        self,
        fetch: Fetch,
        tries: int,
        first_seconds: float,
        max_seconds: float,
        *,
        wait: Callable[[float], None],
        stopped: Callable[[], bool],
    ) -> None:
        self._fetch = fetch
        self.tries = tries
        self.first_seconds = first_seconds
        self.max_seconds = max_seconds
        self._wait = wait
        self._stopped = stopped
        self._refused: dict[str, str] = {}

    def __call__(self, uri: str, *, tries: int | None = None) -> bytes:
        """The segment's body.

        Raises
        ------
        FetchError
            ``permanent``: refused now or before (not requested again).
        HlsError
            After ``tries`` failed attempts.
        """
        reason = self._refused.get(uri)
        if reason is not None:
            raise FetchError(f"{reason} (refused before: not requested again)", url=uri,
                             permanent=True)  # fmt: skip
        tries = tries or self.tries
        delay = self.first_seconds
        for attempt in range(1, tries + 1):
            try:
                return self._fetch(uri)
            except FetchError as e:
                if e.permanent:
                    self._refused[uri] = str(e)
                    if len(self._refused) > _REMEMBERED_REFUSALS:
                        del self._refused[next(iter(self._refused))]
                    raise
                if attempt == tries or self._stopped():
                    raise HlsError(f"{e} ({attempt} tries)") from e
            self._wait(delay)
            delay = min(delay * 2, self.max_seconds)
        raise AssertionError("unreachable")
