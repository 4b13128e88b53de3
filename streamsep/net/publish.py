"""ZeroMQ publisher of the separated stems: a pipeline :class:`~streamsep.engine.pipeline.Sink` that
never blocks the pipeline (wire format: ``docs/protocol.md``).

Threads: :meth:`Publisher.write` and :meth:`Publisher.close` run on the pipeline's synthesis
thread and only touch a bounded queue. The socket lives on the publisher's own thread
(``streamsep-publisher``), which encodes, sends, and reads subscriptions.

Loss policy, in the order samples meet it:

1. **Hand-off queue** (``queue_chunks`` chunks): when full, the *oldest* queued chunk is
   dropped to make room (live audio: the newest is worth most). Its samples are lost on every
   topic.
2. **ZeroMQ**: the socket is an XPUB with ``XPUB_NODROP``, so a send to a subscriber whose
   queue (``hwm`` messages) is full fails at once (``zmq.Again``) instead of being discarded
   silently; that message is dropped for every subscriber of the topic, and counted.

Either way the next message sent on the topic has ``FLAG_GAP`` and ``lost_samples`` = the
samples absent before it, and its ``first_sample`` jumps by the same amount. The end-of-stream
messages are the exception: they are retried for up to ``end_timeout_seconds``.

After the end of stream the socket stays open, for at most ``end_timeout_seconds``, until every
subscription that was open at the end has been withdrawn: by a disconnect, or by the
acknowledgement a :class:`~streamsep.net.subscribe.Subscriber` sends when it has read the end of
stream (it unsubscribes and resubscribes each topic; ``docs/protocol.md``). Closing at once is not
safe: libzmq's ``LINGER`` does not hold back a close whose messages still sit in a slow
subscriber's full receive queue, and those messages (the end of stream among them) are lost
without trace (libzmq issue 4660).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import zmq
from numpy.typing import NDArray

from streamsep.engine.clock import Clock, SampleClock
from streamsep.errors import ConfigError, StreamsepError
from streamsep.net import protocol as proto
from streamsep.net.accounting import StreamAccounting, TopicAccount
from streamsep.net.levels import Calibration, LevelMeter
from streamsep.net.outbox import JsonOutbox
from streamsep.net.publish_settings import PublishSettings
from streamsep.net.security import CurveServerKeys, load_server_keys
from streamsep.net.subscriptions import SubscriptionGate, max_inbound_bytes
from streamsep.net.throttle import LogThrottle
from streamsep.version import __version__

if TYPE_CHECKING:
    from streamsep.engine.pipeline import OutputChunk

__all__ = ["PublishSettings", "Publisher"]

_LOGGER = logging.getLogger(__name__)

_POLL_SECONDS: Final = 0.05
_RETRY_SECONDS: Final = 0.01
_START_TIMEOUT_SECONDS: Final = 10.0
_DROP_LOG_SECONDS: Final = 10.0  # least time between two log lines about dropped samples


class Publisher:
    """Publishes output chunks on ZeroMQ topics ``audio.<stem>``, ``audio.mix``, ``levels``
    and ``status``.

    Parameters
    ----------
    settings : PublishSettings
        Endpoints, formats, security (checked, and key files read, here: before any socket).
    stems : sequence of str
        Stem names in ``OutputChunk.stems`` order (the model's ``instrument_list``).
    sample_rate : int
        Rate of the chunks (the model rate, or the capture rate behind an output resampler), Hz.
    n_channels : int
        Channels of the chunks.
    clock : callable, optional
        ``clock(sample_index) -> UTC ns`` of capture. Default: a :class:`SampleClock` whose
        sample 0 is the construction time, until :meth:`set_capture_start` moves it.
    status : callable, optional
        Returns a JSON-able dict merged into each ``status`` message (called on the publisher
        thread); its keys ``version``, ``time_ns``, ``state``, ``publisher`` and
        ``package_version`` are the publisher's own and are not overwritten.

    Raises
    ------
    ConfigError
        On a bad stem list or unreadable key files.
    """

    def __init__(
        self,
        settings: PublishSettings,
        *,
        stems: Sequence[str],
        sample_rate: int,
        n_channels: int,
        clock: Clock | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.stems = tuple(stems)
        if not self.stems or len(set(self.stems)) != len(self.stems):
            raise ConfigError(f"publisher: stems must be distinct and non-empty, got {stems}")
        if settings.publish_mix and "mix" in self.stems:
            raise ConfigError("publisher: a stem named 'mix' collides with audio.mix")
        self.sample_rate = sample_rate
        self.n_channels = n_channels
        self._keys: CurveServerKeys | None = None
        if settings.server_secret_key_file and settings.authorized_keys_dir:
            self._keys = load_server_keys(
                settings.server_secret_key_file, settings.authorized_keys_dir
            )
        self._sample_clock = SampleClock(sample_rate)
        self._status = status
        names = [proto.audio_topic(s) for s in self.stems]
        if settings.publish_mix:
            names.append(proto.MIX_TOPIC)
        meter = None
        if settings.levels_seconds:
            calibration = None
            if settings.sensitivity_db_re_1v_per_upa is not None:
                calibration = Calibration(
                    settings.sensitivity_db_re_1v_per_upa,
                    settings.gain_db,
                    settings.full_scale_volts,
                )
            window = round(settings.levels_seconds * sample_rate)
            meter = LevelMeter([n[len(proto.AUDIO_PREFIX) :] for n in names], window, calibration)
        self._accounting = StreamAccounting(
            names,
            sample_rate=sample_rate,
            n_channels=n_channels,
            sample_format=proto.SAMPLE_FORMATS[settings.sample_format],
            clock=clock or self._sample_clock,
            meter=meter,
        )
        all_topics = [*names, proto.LEVELS_TOPIC, proto.STATUS_TOPIC, proto.EVENTS_TOPIC]
        self._gate = SubscriptionGate(all_topics)
        self._max_inbound_bytes = max_inbound_bytes(all_topics, curve=self._keys is not None)
        self._drop_log = LogThrottle(_DROP_LOG_SECONDS)  # refused by ZeroMQ
        self._queue_log = LogThrottle(_DROP_LOG_SECONDS)  # dropped from the hand-off queue
        self._queue_drops_logged = 0
        self._queue: queue.Queue[OutputChunk | None] = queue.Queue(settings.queue_chunks)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._outbox = JsonOutbox()  # events: JSON messages of other components
        self.bound_endpoints: list[str] = []
        """Endpoints actually bound (wildcard ports resolved), set by :meth:`start`."""

    @property
    def topics(self) -> list[str]:
        """The audio topics, in stem order, then ``audio.mix``."""
        return [t.name for t in self._accounting.topics]

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called."""
        return self._thread is not None

    @property
    def max_inbound_bytes(self) -> int:
        """``ZMQ_MAXMSGSIZE`` of the socket: a subscriber sending a longer message is
        disconnected, bytes."""
        return self._max_inbound_bytes

    def set_capture_start(self, time_ns: int) -> None:
        """Set the capture time of sample 0 (UTC ns) for the default clock; call before the
        stream starts."""
        self._sample_clock.start_ns = time_ns

    def start(self) -> None:
        """Start the publisher thread and wait until every endpoint is bound.

        Raises
        ------
        StreamsepError
            If an endpoint cannot be bound.
        """
        if self._thread is not None:
            raise StreamsepError("publisher already started")
        self._thread = threading.Thread(target=self._run, name="streamsep-publisher", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_SECONDS):
            raise StreamsepError("publisher: sockets not bound after 10 s")
        if self._error is not None:
            raise self._error

    def write(self, chunk: OutputChunk) -> None:
        """Queue ``chunk``; never blocks. Called from the synthesis thread.

        When the queue is full the oldest queued chunk is dropped (counted, and reported as a
        gap on every topic).
        """
        self._accounting.chunk_in()
        self._put(chunk)

    def close(self) -> None:
        """End of stream (:class:`~streamsep.engine.pipeline.Sink`): the thread sends what is
        queued, end-of-stream messages on every topic that has not had one, then exits. Never
        blocks; see :meth:`wait`."""
        self._put(None)

    def _put(self, item: OutputChunk | None) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                pass
            try:
                old = self._queue.get_nowait()
            except queue.Empty:
                continue
            if old is None:  # keep the end marker; the stream already ended
                self._queue.put_nowait(old)
                return
            self._accounting.chunk_dropped(old)

    def send_json(self, topic: str, body: dict[str, Any]) -> bool:
        """Queue a JSON message on ``topic`` (e.g. ``events``); never blocks. It is sent before
        any audio chunk queued after it, retried like the end of stream when a subscriber's
        queue is full. False (logged) if 1024 messages are waiting."""
        return self._outbox.put(topic, body)

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the publisher thread, if any."""
        return self._error

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the thread has sent the end of stream and closed its socket (or failed).
        Returns False on timeout."""
        return self._done.wait(timeout)

    def wait_for_subscribers(self, n: int, timeout: float | None = None) -> bool:
        """Wait until ``n`` subscriptions arrived (one per topic prefix per subscriber, as
        ZeroMQ sends them; prefixes of no published topic do not count). Returns False on
        timeout."""
        return self._gate.wait_for(n, timeout)

    def stop(self) -> None:
        """Stop now, dropping whatever is queued; joins the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.settings.end_timeout_seconds + _START_TIMEOUT_SECONDS)

    def __enter__(self) -> Publisher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self.wait(self.settings.end_timeout_seconds + _START_TIMEOUT_SECONDS)
        self.stop()

    def stats(self) -> dict[str, Any]:
        """Counters (JSON-able), safe from any thread: ``chunks_in``, ``queue_depth``,
        ``queue_capacity``, ``queue_dropped_chunks``, ``queue_dropped_samples``,
        ``subscriptions``, ``active_subscriptions``, ``subscriptions_rejected``, ``topics``."""
        out = self._accounting.stats()
        topics = out.pop("topics")
        out["queue_depth"] = self._queue.qsize()
        out["queue_capacity"] = self.settings.queue_chunks
        out.update(self._gate.stats())
        out["topics"] = topics
        return out

    # -- publisher thread ------------------------------------------------------------------

    def _run(self) -> None:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        auth = None
        sock: zmq.Socket[bytes] | None = None
        try:
            if self._keys is not None:
                auth = self._keys.start_authenticator(context)
            sock = context.socket(zmq.XPUB)
            sock.setsockopt(zmq.XPUB_NODROP, 1)
            sock.setsockopt(zmq.XPUB_MANUAL, 1)  # only valid subscriptions are applied
            sock.setsockopt(zmq.MAXMSGSIZE, self._max_inbound_bytes)
            sock.setsockopt(zmq.SNDHWM, self.settings.hwm)
            sock.setsockopt(zmq.LINGER, int(self.settings.end_timeout_seconds * 1000))
            if self.settings.sndbuf_bytes:
                sock.setsockopt(zmq.SNDBUF, self.settings.sndbuf_bytes)
            if self._keys is not None:
                self._keys.apply(sock)
            for endpoint in self.settings.endpoints:
                try:
                    sock.bind(endpoint)
                except zmq.ZMQError as e:
                    raise StreamsepError(f"publisher: cannot bind {endpoint}: {e}") from e
                self.bound_endpoints.append(sock.getsockopt_string(zmq.LAST_ENDPOINT))
            curve = "on" if self._keys else "off"
            _LOGGER.info("publishing %s on %s, curve %s", self.topics, self.bound_endpoints, curve)
            self._ready.set()
            self._loop(sock)
        except BaseException as e:  # noqa: BLE001 - surfaced through start() and the log
            if self._ready.is_set():
                _LOGGER.exception("publisher failed")
            self._error = e
        finally:
            self._ready.set()
            if sock is not None:
                if self._stop.is_set():
                    sock.setsockopt(zmq.LINGER, 0)
                sock.close()
            if auth is not None:
                auth.stop()
            context.term()
            self._done.set()

    def _loop(self, sock: zmq.Socket[bytes]) -> None:
        status_due = time.monotonic()
        while not self._stop.is_set():
            self._gate.read(sock)
            if self.settings.status_seconds and time.monotonic() >= status_due:
                status_due = time.monotonic() + self.settings.status_seconds
                self._send_status(sock, "running")
            try:
                item = self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                self._outbox.drain(lambda frames: self._send(sock, frames, retry=True))
                continue
            # events: messages queued before this chunk go out before it
            self._outbox.drain(lambda frames: self._send(sock, frames, retry=True))
            if item is None:
                self._finish(sock)
                self._drain(sock)
                return
            self._publish(sock, item)

    def _drain(self, sock: zmq.Socket[bytes]) -> None:
        """Keep the socket open until every subscription open at the end is withdrawn, at
        most ``end_timeout_seconds``, so that slow subscribers get what was sent (module doc)."""
        deadline = time.monotonic() + self.settings.end_timeout_seconds
        self._gate.mark_end()
        while not self._stop.is_set():
            self._gate.read(sock)
            remaining = deadline - time.monotonic()
            if self._gate.unacknowledged() <= 0 or remaining <= 0:
                break
            sock.poll(int(min(remaining, _POLL_SECONDS) * 1000) + 1, zmq.POLLIN)
        if (left := self._gate.unacknowledged()) > 0:
            _LOGGER.info("closing with %d subscriptions that did not acknowledge the end", left)

    def _publish(self, sock: zmq.Socket[bytes], chunk: OutputChunk) -> None:
        acc = self._accounting
        self._log_queue_drops()
        # Silence-filled input is reported on the message holding its first sample.
        filled = acc.take_fills(chunk)
        payloads = [*chunk.stems] + ([chunk.mix] if self.settings.publish_mix else [])
        # Levels first, so that a subscriber that stops at the end of stream has them all.
        body = acc.levels(chunk.start_index, payloads, chunk.end_of_stream)
        if body is not None:
            self._send(sock, proto.encode_json(proto.LEVELS_TOPIC, body), retry=False)
        for topic, samples in zip(acc.topics, payloads, strict=True):
            topic.filled_pending += filled
            self._send_audio(sock, topic, chunk.start_index, samples, chunk.end_of_stream)

    def _send_audio(
        self,
        sock: zmq.Socket[bytes],
        topic: TopicAccount,
        first_sample: int,
        samples: NDArray[np.float32],
        end: bool,
    ) -> None:
        if topic.ended:
            return
        if end:
            self._gate.mark_end()
        header = self._accounting.header(topic, first_sample, samples, end)
        frames = proto.pack_audio(topic.name, header, samples)
        if self._send(sock, frames, retry=end):
            self._accounting.sent(topic, header)
            return
        self._accounting.dropped(topic, header)
        if (suppressed := self._drop_log.hit()) is not None:
            _LOGGER.warning(
                "publisher: %s: dropped %d samples at %d: a subscriber's queue is full "
                "(hwm %d messages); %d samples dropped in all, %d drops not logged since the "
                "last report",
                *(topic.name, header.n_frames, first_sample, self.settings.hwm),
                *(self._accounting.samples_dropped(), suppressed),
            )

    def _log_queue_drops(self) -> None:
        """Log chunks dropped from the hand-off queue since the last look (rate-limited)."""
        dropped = self._accounting.queue_dropped_chunks
        if dropped == self._queue_drops_logged:
            return
        new, self._queue_drops_logged = dropped - self._queue_drops_logged, dropped
        if (suppressed := self._queue_log.hit()) is not None:
            _LOGGER.warning(
                "publisher: hand-off queue full (%d chunks): dropped the %d oldest chunks; "
                "%d samples dropped in all, %d drops not logged since the last report",
                *(self.settings.queue_chunks, new, self._accounting.samples_dropped(), suppressed),
            )

    def _send(self, sock: zmq.Socket[bytes], frames: list[bytes], *, retry: bool) -> bool:
        deadline = time.monotonic() + self.settings.end_timeout_seconds
        while True:
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
                return True
            except zmq.Again:
                if not retry or time.monotonic() >= deadline or self._stop.is_set():
                    return False
            self._gate.read(sock)
            self._stop.wait(_RETRY_SECONDS)

    def _finish(self, sock: zmq.Socket[bytes]) -> None:
        empty = np.zeros((0, self.n_channels), np.float32)
        for topic in self._accounting.topics:
            if not topic.ended:
                self._send_audio(sock, topic, topic.next_index, empty, True)
        if self.settings.status_seconds:
            self._send_status(sock, "ended")

    def _send_status(self, sock: zmq.Socket[bytes], state: str) -> None:
        body: dict[str, Any] = {}
        if self._status is not None:
            try:
                body.update(self._status())
            except Exception:  # noqa: BLE001 - a status callback must not kill publishing
                _LOGGER.exception("status callback failed")
        # The publisher's keys win; encode_json sets the protocol "version" last.
        body.update(
            time_ns=time.time_ns(),
            state=state,
            package_version=__version__,
            publisher=self.stats(),
        )
        try:
            frames = proto.encode_json(proto.STATUS_TOPIC, body)
        except (TypeError, ValueError) as e:
            _LOGGER.warning("status not JSON-able: %s", e)
            return
        self._send(sock, frames, retry=state == "ended")
