"""ZeroMQ subscriber of published stems: decodes messages and accounts for every missing sample.

Gap detection per topic, from two independent counters in each header:

* ``first_sample`` (index arithmetic): ``missing = first_sample - end of the previous chunk``
  is the number of samples absent before the chunk, whatever lost them. It is authoritative.
* ``sequence`` (one per message sent): ``missing_messages = sequence - previous - 1`` counts
  messages the publisher sent that never arrived (e.g. lost on a reconnect). Messages the
  publisher dropped itself consume no sequence number; those are in ``lost_samples``.

So ``missing == lost_samples`` unless messages were lost after sending. Slow joiner: the first
chunk received on a topic starts the accounting (``missing = 0``, ``new_stream = True``);
nothing before it is reported. A chunk whose index goes backwards or whose sequence is 0 again
means the publisher restarted: it is also a ``new_stream``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from numpy.typing import NDArray

from streamsep.errors import ConfigError
from streamsep.net import protocol as proto
from streamsep.net.security import load_client_keys

__all__ = ["Chunk", "JsonMessage", "Subscriber"]

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    """One decoded audio message and what is missing before it."""

    topic: str
    """``audio.<stem>``."""
    stem: str
    """The stem name (``mix`` for the model input)."""
    header: proto.AudioHeader
    """All header fields as sent."""
    samples: NDArray[np.float32]
    """Shape (n_samples, n_channels), full scale 1.0."""
    missing: int
    """Samples absent just before this chunk, by index arithmetic (0 on a ``new_stream``)."""
    missing_messages: int
    """Messages sent but not received just before this chunk, by sequence arithmetic."""
    new_stream: bool
    """First chunk received on the topic, or the publisher restarted its stream."""

    @property
    def n_samples(self) -> int:
        """Samples per channel."""
        return int(self.samples.shape[0])

    @property
    def first_sample(self) -> int:
        """Index of the first sample since the stream start."""
        return self.header.first_sample

    @property
    def end_sample(self) -> int:
        """Index one past the last sample."""
        return self.header.end_sample

    @property
    def sample_rate(self) -> int:
        """Hz."""
        return self.header.sample_rate

    @property
    def capture_time_ns(self) -> int:
        """Capture time of the first sample, UTC ns."""
        return self.header.capture_time_ns

    @property
    def end_of_stream(self) -> bool:
        """Last chunk of the stream on this topic."""
        return self.header.has(proto.FLAG_END_OF_STREAM)

    @property
    def gap(self) -> bool:
        """Samples are absent before this chunk or silence-filled in it."""
        return self.header.has(proto.FLAG_GAP) or self.missing > 0

    @property
    def clipped(self) -> bool:
        """Some sample reached full scale."""
        return self.header.has(proto.FLAG_CLIPPED)


@dataclass(frozen=True)
class JsonMessage:
    """A ``levels``, ``status`` or ``events`` message."""

    topic: str
    body: dict[str, Any]


@dataclass
class _TopicState:
    next_index: int
    next_sequence: int
    ended: bool = False
    received_samples: int = 0
    missing_samples: int = 0


class Subscriber:
    """Connects to a publisher and yields :class:`Chunk` and :class:`JsonMessage` objects.

    Not thread-safe: use it from one thread.

    Parameters
    ----------
    endpoint : str
        Publisher endpoint, e.g. ``tcp://127.0.0.1:5556``.
    stems : sequence of str, optional
        Stems to receive (``mix`` for the input); None: every audio topic.
    levels, status, events : bool
        Also receive ``levels`` / ``status`` / ``events`` messages.
    curve_server_key : path, optional
        The publisher's public key file (``.key``); with ``curve_client_key`` turns CURVE on.
    curve_client_key : path, optional
        This client's secret key file (``.key_secret``).
    hwm : int
        Messages ZeroMQ buffers here (``RCVHWM``).
    rcvbuf_bytes : int
        Kernel receive buffer (``SO_RCVBUF``), bytes; 0 keeps the OS default.

    Raises
    ------
    ConfigError
        If only one CURVE key is given or a key file is unreadable.
    """

    def __init__(
        self,
        endpoint: str,
        stems: Sequence[str] | None = None,
        *,
        levels: bool = False,
        status: bool = False,
        events: bool = False,
        curve_server_key: str | Path | None = None,
        curve_client_key: str | Path | None = None,
        hwm: int = 1000,
        rcvbuf_bytes: int = 0,
    ) -> None:
        if (curve_server_key is None) != (curve_client_key is None):
            raise ConfigError("curve_server_key and curve_client_key go together")
        keys = None
        if curve_server_key is not None and curve_client_key is not None:
            keys = load_client_keys(curve_server_key, curve_client_key)
        self.endpoint = endpoint
        self.stems = None if stems is None else tuple(stems)
        self._wanted = None if stems is None else {proto.audio_topic(s) for s in stems}
        self._json_topics = {proto.LEVELS_TOPIC} if levels else set()
        if status:
            self._json_topics.add(proto.STATUS_TOPIC)
        if events:  # orca activity events (docs/protocol.md, section 12)
            self._json_topics.add(proto.EVENTS_TOPIC)
        self._topics: dict[str, _TopicState] = {}
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, hwm)
        if rcvbuf_bytes:
            self._socket.setsockopt(zmq.RCVBUF, rcvbuf_bytes)
        if keys is not None:
            keys.apply(self._socket)
        prefixes = [proto.AUDIO_PREFIX] if self._wanted is None else sorted(self._wanted)
        self._prefixes = [p.encode() for p in [*prefixes, *sorted(self._json_topics)]]
        for prefix in self._prefixes:
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix)
        self._acknowledged = False  # this stream's end
        self._socket.connect(endpoint)

    @property
    def socket(self) -> zmq.Socket[bytes]:
        """The SUB socket (e.g. to attach a monitor)."""
        return self._socket

    @property
    def ended(self) -> bool:
        """Every wanted topic has delivered its end of stream (stems=None: every topic seen,
        and at least one)."""
        if self._wanted is None:
            return bool(self._topics) and all(s.ended for s in self._topics.values())
        return all(t in self._topics and self._topics[t].ended for t in self._wanted)

    def received_samples(self, stem: str) -> int:
        """Samples per channel received on ``stem`` since its first chunk."""
        state = self._topics.get(proto.audio_topic(stem))
        return 0 if state is None else state.received_samples

    def missing_samples(self, stem: str) -> int:
        """Samples reported missing on ``stem`` since its first chunk."""
        state = self._topics.get(proto.audio_topic(stem))
        return 0 if state is None else state.missing_samples

    def recv(self, timeout: float | None = None) -> Chunk | JsonMessage | None:
        """The next message, or None after ``timeout`` seconds (None waits forever).

        Raises
        ------
        ProtocolError
            On a malformed message on a subscribed topic.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait_ms = None if remaining is None else int(remaining * 1000)
            if not self._socket.poll(wait_ms, zmq.POLLIN):
                return None
            frames = self._socket.recv_multipart(zmq.NOBLOCK)
            topic = bytes(frames[0]).decode("utf-8", errors="replace")
            if topic in self._json_topics:
                return JsonMessage(*proto.decode_json(frames))
            if topic.startswith(proto.AUDIO_PREFIX) and (
                self._wanted is None or topic in self._wanted
            ):
                chunk = self._account(*proto.unpack_audio(frames))
                if chunk.end_of_stream and not self._acknowledged and self.ended:
                    self._acknowledge_end()
                return chunk

    def _acknowledge_end(self) -> None:
        """Tell the publisher this subscriber has read the end of stream, so that it may close
        (it waits for that, ``docs/protocol.md``): unsubscribe and resubscribe every topic,
        which keeps the subscription for a restarted stream."""
        self._acknowledged = True
        for prefix in self._prefixes:
            self._socket.setsockopt(zmq.UNSUBSCRIBE, prefix)
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix)

    def __iter__(self) -> Iterator[Chunk | JsonMessage]:
        """Messages until :attr:`ended` (blocks while none come)."""
        while not self.ended:
            message = self.recv(None)
            if message is not None:
                yield message

    def _account(
        self, topic: str, header: proto.AudioHeader, samples: NDArray[np.float32]
    ) -> Chunk:
        state = self._topics.get(topic)
        restarted = state is not None and (
            header.sequence == 0 or header.first_sample < state.next_index
        )
        if state is None or restarted:
            if restarted:
                _LOGGER.warning("%s: the publisher restarted its stream", topic)
            self._acknowledged = False
            state = self._topics[topic] = _TopicState(header.first_sample, header.sequence)
            missing = missing_messages = 0
            new_stream = True
        else:
            missing = header.first_sample - state.next_index
            missing_messages = header.sequence - state.next_sequence
            new_stream = False
            if missing != header.lost_samples:
                _LOGGER.info(
                    "%s: %d samples missing before sample %d, publisher reported %d "
                    "(%d messages lost in transport)",
                    *(topic, missing, header.first_sample, header.lost_samples, missing_messages),
                )
        state.next_index = header.end_sample
        state.next_sequence = header.sequence + 1
        state.received_samples += header.n_frames
        state.missing_samples += missing
        state.ended = header.has(proto.FLAG_END_OF_STREAM)
        stem = topic[len(proto.AUDIO_PREFIX) :]
        return Chunk(topic, stem, header, samples, missing, missing_messages, new_stream)

    def close(self) -> None:
        """Close the socket (pending messages are discarded)."""
        self._socket.close()
        self._context.term()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
