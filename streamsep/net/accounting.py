"""The publisher's chunk accounting: per-topic sequence numbers and sample indices, lost and
filled counts, and the headers, levels bodies and counters they give (``docs/protocol.md``
sections 3, 4, 6 and 7).

The hand-off counters (:meth:`StreamAccounting.chunk_in`, :meth:`StreamAccounting.chunk_dropped`)
are updated on the pipeline's synthesis thread; everything else on the publisher thread. All
counters change under one lock, so :meth:`StreamAccounting.stats` is safe from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.clock import Clock
from streamsep.net import protocol as proto
from streamsep.net.levels import LevelMeter

if TYPE_CHECKING:
    from streamsep.engine.pipeline import OutputChunk

__all__ = ["TopicAccount", "StreamAccounting"]


@dataclass
class TopicAccount:
    """What has been sent on one audio topic."""

    name: str
    """``audio.<stem>`` or ``audio.mix``."""
    sequence: int = 0
    """Sequence number of the next message sent; also the messages sent so far."""
    next_index: int = 0
    """``first_sample`` the next message would have without loss."""
    samples_sent: int = 0
    messages_dropped: int = 0
    samples_dropped: int = 0
    """Refused by ZeroMQ (a subscriber's queue was full)."""
    filled_pending: int = 0
    """Silence-filled samples to report on the next message sent."""
    ended: bool = False
    """The end of stream was sent."""


class StreamAccounting:
    """Numbers every message of one stream: builds the audio headers from the loss so far and
    records what was sent or dropped.

    Parameters
    ----------
    topics : sequence of str
        The audio topics, in the order of :meth:`payloads`.
    sample_rate : int
        Of the published samples, Hz.
    n_channels : int
        Channels of the chunks.
    sample_format : int
        ``proto.FORMAT_FLOAT32`` or ``proto.FORMAT_INT16``.
    clock : callable
        ``clock(sample_index) -> UTC ns`` of capture.
    meter : LevelMeter, optional
        Measures the ``levels`` windows (None: no levels).
    """

    def __init__(
        self,
        topics: Sequence[str],
        *,
        sample_rate: int,
        n_channels: int,
        sample_format: int,
        clock: Clock,
        meter: LevelMeter | None,
    ) -> None:
        self.topics = [TopicAccount(name) for name in topics]
        self.sample_rate = sample_rate
        self.n_channels = n_channels
        self.sample_format = sample_format
        self.clock = clock
        self.meter = meter
        self._lock = threading.Lock()
        self.chunks_in = 0
        self.queue_dropped_chunks = 0
        self.queue_dropped_samples = 0
        self._orphan_fills: list[tuple[int, int]] = []  # of chunks dropped from the queue
        self._fills: list[tuple[int, int]] = []  # (index, n) of silence-filled input, pending

    # -- synthesis thread ------------------------------------------------------------------

    def chunk_in(self) -> None:
        """Count a chunk handed to the publisher."""
        with self._lock:
            self.chunks_in += 1

    def chunk_dropped(self, chunk: OutputChunk) -> None:
        """Count a chunk dropped from the hand-off queue; its filled samples move on."""
        with self._lock:
            self.queue_dropped_chunks += 1
            self.queue_dropped_samples += chunk.n_samples
            self._orphan_fills.extend(chunk.gaps)

    # -- publisher thread ------------------------------------------------------------------

    def take_fills(self, chunk: OutputChunk) -> int:
        """Silence-filled samples to report with ``chunk``: those starting before its end (all
        at the end of stream), including those of chunks dropped before it."""
        with self._lock:
            self._fills += self._orphan_fills
            self._orphan_fills = []
        self._fills += chunk.gaps
        end = chunk.start_index + chunk.n_samples
        due = [(i, n) for i, n in self._fills if i < end or chunk.end_of_stream]
        self._fills = [(i, n) for i, n in self._fills if not (i < end or chunk.end_of_stream)]
        return sum(n for _, n in due)

    def header(
        self, topic: TopicAccount, first_sample: int, samples: NDArray[np.float32], end: bool
    ) -> proto.AudioHeader:
        """The header of the next message on ``topic``: gap and loss since the last one sent,
        clipping of ``samples`` (n_samples, n_channels)."""
        n = samples.shape[0]
        lost = max(0, first_sample - topic.next_index)
        flags = proto.FLAG_STREAM_START if topic.sequence == 0 else 0
        if end:
            flags |= proto.FLAG_END_OF_STREAM
        if lost or topic.filled_pending:
            flags |= proto.FLAG_GAP
        if n and float(np.max(np.abs(samples))) >= 1.0:
            flags |= proto.FLAG_CLIPPED
        return proto.AudioHeader(
            flags=flags,
            n_frames=n,
            sequence=topic.sequence,
            first_sample=first_sample,
            capture_time_ns=self.clock(first_sample),
            lost_samples=lost,
            filled_samples=topic.filled_pending,
            sample_rate=self.sample_rate,
            n_channels=self.n_channels,
            sample_format=self.sample_format,
        )

    def sent(self, topic: TopicAccount, header: proto.AudioHeader) -> None:
        """Record that the message of ``header`` went out."""
        with self._lock:
            topic.sequence += 1
            topic.next_index = header.end_sample
            topic.samples_sent += header.n_frames
            topic.filled_pending = 0
            topic.ended = header.has(proto.FLAG_END_OF_STREAM)

    def dropped(self, topic: TopicAccount, header: proto.AudioHeader) -> None:
        """Record that ZeroMQ refused the message of ``header`` (the next one reports it)."""
        with self._lock:
            topic.messages_dropped += 1
            topic.samples_dropped += header.n_frames

    def levels(
        self, first_sample: int, payloads: Sequence[NDArray[np.float32]], end: bool
    ) -> dict[str, Any] | None:
        """Feed the level meter; the body of a ``levels`` message when a window is complete.

        Windows end at chunk boundaries: one covers whole chunks, at least ``levels_seconds``
        (or what is left at the end of stream), measured on the float samples before any int16
        quantisation."""
        if self.meter is None:
            return None
        window = self.meter.add(first_sample, payloads, end)
        if window is None:
            return None
        first, n_samples, levels = window
        return {
            "first_sample": first,
            "n_samples": n_samples,
            "sample_rate": self.sample_rate,
            "capture_time_ns": self.clock(first),
            "calibrated": self.meter.calibration is not None,
            "levels": levels,
        }

    def samples_dropped(self) -> int:
        """Samples dropped so far, hand-off queue and ZeroMQ together (all topics)."""
        with self._lock:
            return self.queue_dropped_samples + sum(t.samples_dropped for t in self.topics)

    def stats(self) -> dict[str, Any]:
        """``chunks_in``, ``queue_dropped_chunks``, ``queue_dropped_samples`` and per topic
        ``messages_sent``, ``samples_sent``, ``messages_dropped``, ``samples_dropped``."""
        with self._lock:
            return {
                "chunks_in": self.chunks_in,
                "queue_dropped_chunks": self.queue_dropped_chunks,
                "queue_dropped_samples": self.queue_dropped_samples,
                "topics": {
                    t.name: {
                        "messages_sent": t.sequence,
                        "samples_sent": t.samples_sent,
                        "messages_dropped": t.messages_dropped,
                        "samples_dropped": t.samples_dropped,
                    }
                    for t in self.topics
                },
            }
