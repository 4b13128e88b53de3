"""Sample clocks: the UTC time, in nanoseconds, of a timeline sample index.

:class:`SampleClock` counts from one start time at the nominal rate (the publisher's default).
:class:`CaptureClock` follows the ADC-time anchors a live capture sends (at the stream start,
after overflows and after each reconnect), so a drifting or restarted device keeps true times.
Both are called as ``clock(index) -> utc_ns``.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from typing import Final

__all__ = ["CaptureClock", "Clock", "SampleClock"]

_MAX_ANCHORS: Final = 4096

Clock = Callable[[int], int]
"""``clock(sample_index) -> UTC ns``: the capture time of a sample index at the stream rate."""


class SampleClock:
    """Capture time of sample ``index``: ``start_ns + index * 1e9 / sample_rate`` (exact
    integer arithmetic). ``start_ns`` is the UTC time of sample 0, nanoseconds."""

    def __init__(self, sample_rate: int, start_ns: int | None = None) -> None:
        self.sample_rate = sample_rate
        self.start_ns = time.time_ns() if start_ns is None else start_ns

    def __call__(self, index: int) -> int:
        return self.start_ns + index * 1_000_000_000 // self.sample_rate


class CaptureClock:
    """UTC nanoseconds of a timeline sample index, from ``(index, utc_ns)`` anchors.

    ``clock(i) = utc_a + (i - index_a) * 1e9 / sample_rate`` with the latest anchor ``a`` at or
    before ``i`` (the first anchor for earlier indices). Thread-safe: anchors are added on the
    capture thread and read by the publisher and archive threads.
    """

    def __init__(self, sample_rate: int, start_ns: int | None = None) -> None:
        self.sample_rate = sample_rate
        self._lock = threading.Lock()
        self._indices: list[int] = []
        self._times: list[int] = []
        if start_ns is not None:
            self.add(0, start_ns)

    def add(self, index: int, utc_ns: int) -> None:
        """Anchor ``index`` at ``utc_ns``; indices must not decrease."""
        with self._lock:
            if self._indices and index < self._indices[-1]:
                return
            if self._indices and index == self._indices[-1]:
                self._times[-1] = utc_ns
                return
            self._indices.append(index)
            self._times.append(utc_ns)
            if len(self._indices) > _MAX_ANCHORS:
                del self._indices[: _MAX_ANCHORS // 2], self._times[: _MAX_ANCHORS // 2]

    @property
    def started(self) -> bool:
        """Whether an anchor exists."""
        return bool(self._indices)

    def __call__(self, index: int) -> int:
        with self._lock:
            if not self._indices:
                return time.time_ns()
            k = max(0, bisect.bisect_right(self._indices, index) - 1)
            base_index, base_ns = self._indices[k], self._times[k]
        return base_ns + (index - base_index) * 1_000_000_000 // self.sample_rate

    def scaled(self, sample_rate: int) -> Clock:
        """The same clock for indices counted at ``sample_rate`` (e.g. the model rate)."""
        if sample_rate == self.sample_rate:
            return self
        return lambda index: self(index * self.sample_rate // sample_rate)
