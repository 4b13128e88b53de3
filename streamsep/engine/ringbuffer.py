"""Preallocated float32 ring buffer between a capture callback and the analysis thread.

Single producer, single consumer. :meth:`RingBuffer.write` never blocks and never grows the
buffer: when it is full the newest samples are dropped, counted in :attr:`overrun_samples`, and
recorded as a gap at their place in the timeline, so the reader learns exactly where samples are
missing and how many (nothing is lost silently).

Timeline: every sample offered to :meth:`write` has an index from 0, dropped ones included.
:meth:`read` returns ``(samples, start_index, lost_before)``: ``lost_before`` samples were
dropped just before ``samples[0]``, whose index is ``start_index``.
"""

from __future__ import annotations

import threading
from typing import Final, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = ["ReadResult", "RingBuffer", "RingLike"]

_GAP_SLOTS: Final = 1024


class RingLike(Protocol):
    """What a source needs of the pipeline ring: a :class:`RingBuffer`, or a wrapper of one."""

    n_channels: int

    def write(self, block: NDArray[np.float32]) -> int: ...

    def mark_gap(self, n_lost: int) -> None: ...

    def wait_for_space(self, n: int, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...


class ReadResult(NamedTuple):
    """One read from the ring."""

    samples: NDArray[np.float32]
    """Shape (n_samples, n_channels); empty at end of stream or on timeout."""
    start_index: int
    """Timeline index of ``samples[0]`` (dropped samples counted)."""
    lost_before: int
    """Samples dropped immediately before ``samples[0]``."""


class RingBuffer:
    """Fixed-capacity SPSC ring of ``(n_samples, n_channels)`` float32 audio.

    Parameters
    ----------
    capacity : int
        Samples (per channel) it holds.
    n_channels : int
        Channels per sample.
    """

    def __init__(self, capacity: int, n_channels: int) -> None:
        if capacity < 1 or n_channels < 1:
            raise ValueError(f"capacity and n_channels must be >= 1, got {capacity}, {n_channels}")
        self.capacity = capacity
        self.n_channels = n_channels
        self._buf = np.zeros((capacity, n_channels), dtype=np.float32)
        self._lock = threading.Lock()
        self._data_ready = threading.Event()
        self._space_ready = threading.Event()
        self._written = 0  # samples accepted (absolute count)
        self._read = 0  # samples consumed (absolute count)
        self._offered = 0  # samples offered, dropped ones included
        self._read_index = 0  # timeline index of the next sample to read
        # Gap log: accepted-sample position -> samples dropped there (preallocated, circular).
        self._gap_pos = np.zeros(_GAP_SLOTS, dtype=np.int64)
        self._gap_len = np.zeros(_GAP_SLOTS, dtype=np.int64)
        self._gap_head = 0
        self._gap_tail = 0
        self._closed = False
        self.overrun_samples = 0
        """Samples dropped because the ring was full (per channel)."""

    @property
    def available(self) -> int:
        """Samples waiting to be read."""
        with self._lock:
            return self._written - self._read

    @property
    def free(self) -> int:
        """Samples that can be written without dropping."""
        with self._lock:
            return self.capacity - (self._written - self._read)

    @property
    def closed(self) -> bool:
        """Whether the writer has closed the stream."""
        return self._closed

    def write(self, block: NDArray[np.float32]) -> int:
        """Copy ``block`` (n_samples, n_channels) in; drop what does not fit.

        Safe to call from the PortAudio thread: never blocks on the reader, never allocates
        a buffer. Returns the samples accepted.
        """
        n = block.shape[0]
        with self._lock:
            free = self.capacity - (self._written - self._read)
            accepted = min(n, free)
            if accepted:
                start = self._written % self.capacity
                first = min(accepted, self.capacity - start)
                self._buf[start : start + first] = block[:first]
                if accepted > first:
                    self._buf[: accepted - first] = block[first:accepted]
                self._written += accepted
            dropped = n - accepted
            if dropped:
                self._record_gap(self._written, dropped)
                self.overrun_samples += dropped
            self._offered += n
        if accepted:
            self._data_ready.set()
        return accepted

    def mark_gap(self, n_lost: int) -> None:
        """Record ``n_lost`` samples lost upstream (e.g. a device overflow) at the current point."""
        if n_lost <= 0:
            return
        with self._lock:
            self._record_gap(self._written, n_lost)
            self._offered += n_lost
        self._data_ready.set()

    def _record_gap(self, position: int, n_lost: int) -> None:
        """Add to the gap log (lock held). A full log merges into its newest entry."""
        last = (self._gap_tail - 1) % _GAP_SLOTS
        if self._gap_tail != self._gap_head and self._gap_pos[last] == position:
            self._gap_len[last] += n_lost
        elif self._gap_tail - self._gap_head >= _GAP_SLOTS:
            self._gap_len[last] += n_lost
        else:
            slot = self._gap_tail % _GAP_SLOTS
            self._gap_pos[slot] = position
            self._gap_len[slot] = n_lost
            self._gap_tail += 1

    def close(self) -> None:
        """End of stream: the reader drains what is left, then gets empty reads."""
        self._closed = True
        self._data_ready.set()

    def wait_for_space(self, n: int, timeout: float | None = None) -> bool:
        """Block until ``n`` samples fit (for sources that may wait, e.g. files)."""
        n = min(n, self.capacity)
        while True:
            self._space_ready.clear()
            if self.free >= n:
                return True
            if not self._space_ready.wait(timeout):
                return False

    def read(self, max_samples: int, timeout: float | None = None) -> ReadResult:
        """Take up to ``max_samples`` samples, waiting up to ``timeout`` seconds for some.

        A read never spans a gap: samples after a gap come in the next read with its
        ``lost_before``. Returns an empty read on timeout or at the end of a closed stream.
        """
        while True:
            self._data_ready.clear()
            with self._lock:
                lost = 0
                gap_at = None
                while self._gap_head != self._gap_tail:
                    slot = self._gap_head % _GAP_SLOTS
                    if self._gap_pos[slot] == self._read:
                        lost += int(self._gap_len[slot])
                        self._gap_head += 1
                    else:
                        gap_at = int(self._gap_pos[slot])
                        break
                self._read_index += lost
                limit = self._written if gap_at is None else min(self._written, gap_at)
                n = min(max_samples, limit - self._read)
                if n > 0 or lost:
                    start = self._read % self.capacity
                    first = min(n, self.capacity - start)
                    out = np.empty((n, self.n_channels), dtype=np.float32)
                    out[:first] = self._buf[start : start + first]
                    if n > first:
                        out[first:] = self._buf[: n - first]
                    self._read += n
                    index = self._read_index
                    self._read_index += n
                    self._space_ready.set()
                    return ReadResult(out, index, lost)
                if self._closed:
                    return ReadResult(
                        np.zeros((0, self.n_channels), np.float32), self._read_index, 0
                    )
            if not self._data_ready.wait(timeout):
                return ReadResult(np.zeros((0, self.n_channels), np.float32), self._read_index, 0)
