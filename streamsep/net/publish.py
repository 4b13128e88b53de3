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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import zmq
from numpy.typing import NDArray

from streamsep.engine.clock import Clock, SampleClock
from streamsep.errors import ConfigError, StreamsepError
from streamsep.net import protocol as proto
from streamsep.net.levels import Calibration, LevelMeter
from streamsep.net.security import CurveServerKeys, check_bind, load_server_keys

if TYPE_CHECKING:
    from streamsep.engine.pipeline import OutputChunk

__all__ = ["PublishSettings", "Publisher"]

_LOGGER = logging.getLogger(__name__)

_POLL_SECONDS: Final = 0.05
_RETRY_SECONDS: Final = 0.01
_START_TIMEOUT_SECONDS: Final = 10.0
_JSON_QUEUE: Final = 1024  # events: queued JSON messages (send_json)


@dataclass(frozen=True)
class PublishSettings:
    """Where and how the stems are published."""

    endpoints: tuple[str, ...] = ("tcp://127.0.0.1:5556",)
    """ZeroMQ endpoints to bind (a list is accepted)."""
    hwm: int = 100
    """Messages ZeroMQ queues per subscriber before sends to it fail (``SNDHWM``), >= 1."""
    sndbuf_bytes: int = 0
    """Kernel send buffer per connection (``SO_SNDBUF``), bytes; 0 keeps the OS default."""
    queue_chunks: int = 64
    """Capacity of the hand-off queue from the pipeline, in output chunks, >= 1."""
    sample_format: str = "float32"
    """``float32`` or ``int16`` payloads."""
    publish_mix: bool = True
    """Also publish the model input as ``audio.mix``."""
    levels_seconds: float = 1.0
    """Interval of ``levels`` messages in stream seconds; 0 disables them."""
    status_seconds: float = 1.0
    """Interval of ``status`` messages in wall-clock seconds; 0 disables them."""
    end_timeout_seconds: float = 5.0
    """How long the end-of-stream messages are retried, and how long after them the socket
    stays open for subscribers still reading, seconds."""
    server_secret_key_file: str | None = None
    """Server ``.key_secret`` file; with ``authorized_keys_dir`` it turns CURVE on."""
    authorized_keys_dir: str | None = None
    """Folder of admitted client public keys (``*.key``)."""
    insecure: bool = False
    """Allow binding a non-loopback endpoint without CURVE."""
    sensitivity_db_re_1v_per_upa: float | None = None
    """Hydrophone sensitivity, dB re 1 V/µPa (e.g. -165); None: levels in dBFS only."""
    gain_db: float = 0.0
    """Gain between hydrophone and converter, dB."""
    full_scale_volts: float = 1.0
    """Converter input voltage (peak) giving sample value 1.0, volts (> 0)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoints", tuple(self.endpoints))
        if not self.endpoints:
            raise ConfigError("publish.endpoints must name at least one endpoint")
        for key in ("hwm", "queue_chunks"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"publish.{key} must be an integer >= 1, got {value!r}")
        if self.sndbuf_bytes < 0:
            raise ConfigError(f"publish.sndbuf_bytes must be >= 0, got {self.sndbuf_bytes}")
        if self.sample_format not in proto.SAMPLE_FORMATS:
            raise ConfigError(
                f"publish.sample_format must be one of {list(proto.SAMPLE_FORMATS)}, "
                f"got {self.sample_format!r}"
            )
        for key in ("levels_seconds", "status_seconds", "end_timeout_seconds"):
            if getattr(self, key) < 0:
                raise ConfigError(f"publish.{key} must be >= 0, got {getattr(self, key)}")
        if self.full_scale_volts <= 0:
            raise ConfigError(f"publish.full_scale_volts must be > 0, got {self.full_scale_volts}")
        if (self.server_secret_key_file is None) != (self.authorized_keys_dir is None):
            raise ConfigError(
                "publish.server_secret_key_file and publish.authorized_keys_dir go together"
            )
        for endpoint in self.endpoints:
            check_bind(endpoint, curve=self.curve, insecure=self.insecure, section="publish")

    @property
    def curve(self) -> bool:
        """Whether CURVE encryption and client authentication are on."""
        return self.server_secret_key_file is not None


@dataclass
class _Topic:
    name: str
    sequence: int = 0  # of the next message sent; also messages sent so far
    next_index: int = 0  # first_sample the next message would have without loss
    samples_sent: int = 0
    messages_dropped: int = 0
    samples_dropped: int = 0  # refused by ZeroMQ (high-water mark)
    filled_pending: int = 0
    ended: bool = False


@dataclass
class _Counters:
    chunks_in: int = 0
    chunks_dropped: int = 0
    samples_dropped: int = 0
    orphan_fills: list[tuple[int, int]] = field(default_factory=list)


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
        Rate of the chunks (the model rate), Hz.
    n_channels : int
        Channels of the chunks.
    clock : callable, optional
        ``clock(sample_index) -> UTC ns`` of capture. Default: a :class:`SampleClock` whose
        sample 0 is the construction time, until :meth:`set_capture_start` moves it.
    status : callable, optional
        Returns a JSON-able dict merged into each ``status`` message (called on the publisher
        thread).

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
        self._format = proto.SAMPLE_FORMATS[settings.sample_format]
        self._keys: CurveServerKeys | None = None
        if settings.server_secret_key_file and settings.authorized_keys_dir:
            self._keys = load_server_keys(
                settings.server_secret_key_file, settings.authorized_keys_dir
            )
        self._sample_clock = SampleClock(sample_rate)
        self._clock: Clock = clock or self._sample_clock
        self._status = status
        names = [proto.audio_topic(s) for s in self.stems]
        if settings.publish_mix:
            names.append(proto.MIX_TOPIC)
        self._topics = [_Topic(name) for name in names]
        self._queue: queue.Queue[OutputChunk | None] = queue.Queue(settings.queue_chunks)
        self._lock = threading.Lock()
        self._counters = _Counters()
        self._subscribed = threading.Condition()
        self._subscriptions = 0  # subscribe messages seen
        self._active_subscriptions = 0  # minus unsubscriptions (a subscriber leaving sends them)
        self._open_at_end: int | None = None  # active subscriptions when the end was first sent
        self._withdrawn_since_end = 0  # unsubscriptions since then
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        calibration = None
        if settings.sensitivity_db_re_1v_per_upa is not None:
            calibration = Calibration(
                settings.sensitivity_db_re_1v_per_upa, settings.gain_db, settings.full_scale_volts
            )
        self._meter = None
        if settings.levels_seconds:
            window = round(settings.levels_seconds * sample_rate)
            stem_names = [name[len(proto.AUDIO_PREFIX) :] for name in names]
            self._meter = LevelMeter(stem_names, window, calibration)
        self._fills: list[tuple[int, int]] = []  # (index, n) of silence-filled input, pending
        # events: JSON messages of other components (the ``events`` topic), sent in order
        # before the audio queued after them; bounded, never blocks the caller.
        self._json: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(_JSON_QUEUE)
        self.bound_endpoints: list[str] = []
        """Endpoints actually bound (wildcard ports resolved), set by :meth:`start`."""

    @property
    def topics(self) -> list[str]:
        """The audio topics, in stem order, then ``audio.mix``."""
        return [t.name for t in self._topics]

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called."""
        return self._thread is not None

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
        with self._lock:
            self._counters.chunks_in += 1
        self._put(chunk)

    def close(self) -> None:
        """End of stream (:class:`~streamsep.engine.pipeline.Sink`): the thread sends what is
        queued,
        end-of-stream messages on every topic that has not had one, then exits. Never blocks;
        see :meth:`wait`."""
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
            with self._lock:
                self._counters.chunks_dropped += 1
                self._counters.samples_dropped += old.n_samples
                self._counters.orphan_fills.extend(old.gaps)

    # -- events: JSON messages of other topics ------------------------------------------------

    def send_json(self, topic: str, body: dict[str, Any]) -> bool:
        """Queue a JSON message (``version`` added) on ``topic``; never blocks. It is sent
        before any audio chunk queued after it, and retried like the end of stream when a
        subscriber's queue is full. Returns False (logged) if 1024 messages are waiting."""
        try:
            self._json.put_nowait((topic, body))
        except queue.Full:
            _LOGGER.error("publisher: %s message dropped (queue full)", topic)
            return False
        return True

    def _send_json_queued(self, sock: zmq.Socket[bytes]) -> None:
        while True:
            try:
                topic, body = self._json.get_nowait()
            except queue.Empty:
                return
            try:
                frames = proto.encode_json(topic, body)
            except (TypeError, ValueError) as e:
                _LOGGER.error("publisher: %s message not JSON-able: %s", topic, e)
                continue
            if not self._send(sock, frames, retry=True):
                _LOGGER.error("publisher: %s message not sent (subscriber queue full)", topic)

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
        ZeroMQ sends them). Returns False on timeout."""
        with self._subscribed:
            return self._subscribed.wait_for(lambda: self._subscriptions >= n, timeout)

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
        """Counters (JSON-able), safe from any thread."""
        with self._lock:
            c = self._counters
            topics = {
                t.name: {
                    "messages_sent": t.sequence,
                    "samples_sent": t.samples_sent,
                    "messages_dropped": t.messages_dropped,
                    "samples_dropped": t.samples_dropped,
                }
                for t in self._topics
            }
            return {
                "chunks_in": c.chunks_in,
                "queue_depth": self._queue.qsize(),
                "queue_capacity": self.settings.queue_chunks,
                "queue_dropped_chunks": c.chunks_dropped,
                "queue_dropped_samples": c.samples_dropped,
                "subscriptions": self._subscriptions,
                "active_subscriptions": self._active_subscriptions,
                "topics": topics,
            }

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
            sock.setsockopt(zmq.XPUB_VERBOSER, 1)  # every subscribe and unsubscribe
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
            self._read_subscriptions(sock)
            if self.settings.status_seconds and time.monotonic() >= status_due:
                status_due = time.monotonic() + self.settings.status_seconds
                self._send_status(sock, "running")
            try:
                item = self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                self._send_json_queued(sock)  # events
                continue
            self._send_json_queued(sock)  # events: before the audio queued after them
            if item is None:
                self._finish(sock)
                self._drain(sock)
                return
            self._publish(sock, item)

    def _read_subscriptions(self, sock: zmq.Socket[bytes]) -> None:
        while True:
            try:
                message = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if message[:1] == b"\x01":
                _LOGGER.debug("subscription to %r", message[1:])
                with self._subscribed:
                    self._subscriptions += 1
                    self._active_subscriptions += 1
                    self._subscribed.notify_all()
            elif message[:1] == b"\x00":
                _LOGGER.debug("unsubscription from %r", message[1:])
                with self._subscribed:
                    self._active_subscriptions -= 1
                    self._withdrawn_since_end += 1

    def _drain(self, sock: zmq.Socket[bytes]) -> None:
        """Keep the socket open until every subscription open at the end is withdrawn, at
        most ``end_timeout_seconds``, so that slow subscribers get what was sent (module doc)."""
        deadline = time.monotonic() + self.settings.end_timeout_seconds
        self._mark_end()
        while not self._stop.is_set():
            self._read_subscriptions(sock)
            remaining = deadline - time.monotonic()
            if self._unacknowledged() <= 0 or remaining <= 0:
                break
            sock.poll(int(min(remaining, _POLL_SECONDS) * 1000) + 1, zmq.POLLIN)
        if (left := self._unacknowledged()) > 0:
            _LOGGER.info("closing with %d subscriptions that did not acknowledge the end", left)

    def _mark_end(self) -> None:
        """Count the subscriptions open now, once: each owes an unsubscription."""
        with self._subscribed:
            if self._open_at_end is None:
                self._open_at_end = self._active_subscriptions
                self._withdrawn_since_end = 0

    def _unacknowledged(self) -> int:
        with self._subscribed:
            return (self._open_at_end or 0) - self._withdrawn_since_end

    def _publish(self, sock: zmq.Socket[bytes], chunk: OutputChunk) -> None:
        # Silence-filled input is reported on the message holding its first sample.
        with self._lock:
            self._fills += self._counters.orphan_fills
            self._counters.orphan_fills = []
        self._fills += chunk.gaps
        end = chunk.start_index + chunk.n_samples
        filled = sum(n for i, n in self._fills if i < end or chunk.end_of_stream)
        self._fills = [(i, n) for i, n in self._fills if not (i < end or chunk.end_of_stream)]
        payloads = [*chunk.stems] + ([chunk.mix] if self.settings.publish_mix else [])
        # Levels first, so that a subscriber that stops at the end of stream has them all.
        self._measure(sock, chunk.start_index, payloads, chunk.end_of_stream)
        for topic, samples in zip(self._topics, payloads, strict=True):
            topic.filled_pending += filled
            self._send_audio(sock, topic, chunk.start_index, samples, chunk.end_of_stream)

    def _send_audio(
        self,
        sock: zmq.Socket[bytes],
        topic: _Topic,
        first_sample: int,
        samples: NDArray[np.float32],
        end: bool,
    ) -> None:
        if topic.ended:
            return
        if end:
            self._mark_end()
        n = samples.shape[0]
        lost = max(0, first_sample - topic.next_index)
        flags = proto.FLAG_STREAM_START if topic.sequence == 0 else 0
        if end:
            flags |= proto.FLAG_END_OF_STREAM
        if lost or topic.filled_pending:
            flags |= proto.FLAG_GAP
        if n and float(np.max(np.abs(samples))) >= 1.0:
            flags |= proto.FLAG_CLIPPED
        header = proto.AudioHeader(
            flags=flags,
            n_frames=n,
            sequence=topic.sequence,
            first_sample=first_sample,
            capture_time_ns=self._clock(first_sample),
            lost_samples=lost,
            filled_samples=topic.filled_pending,
            sample_rate=self.sample_rate,
            n_channels=self.n_channels,
            sample_format=self._format,
        )
        frames = proto.pack_audio(topic.name, header, samples)
        sent = self._send(sock, frames, retry=end)
        with self._lock:
            if sent:
                topic.sequence += 1
                topic.next_index = first_sample + n
                topic.samples_sent += n
                topic.filled_pending = 0
                topic.ended = end
            else:
                topic.messages_dropped += 1
                topic.samples_dropped += n
        if not sent:
            _LOGGER.debug("%s: dropped %d samples at %d (queue full)", topic.name, n, first_sample)

    def _send(self, sock: zmq.Socket[bytes], frames: list[bytes], *, retry: bool) -> bool:
        deadline = time.monotonic() + self.settings.end_timeout_seconds
        while True:
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
                return True
            except zmq.Again:
                if not retry or time.monotonic() >= deadline or self._stop.is_set():
                    return False
            self._read_subscriptions(sock)
            self._stop.wait(_RETRY_SECONDS)

    def _finish(self, sock: zmq.Socket[bytes]) -> None:
        empty = np.zeros((0, self.n_channels), np.float32)
        for topic in self._topics:
            if not topic.ended:
                self._send_audio(sock, topic, topic.next_index, empty, True)
        if self.settings.status_seconds:
            self._send_status(sock, "ended")

    def _measure(
        self, sock: zmq.Socket[bytes], first: int, payloads: list[NDArray[np.float32]], end: bool
    ) -> None:
        if self._meter is None:
            return
        window = self._meter.add(first, payloads, end)
        if window is None:
            return
        first_sample, n_samples, levels = window
        body = {
            "first_sample": first_sample,
            "n_samples": n_samples,
            "sample_rate": self.sample_rate,
            "capture_time_ns": self._clock(first_sample),
            "calibrated": self._meter.calibration is not None,
            "levels": levels,
        }
        self._send(sock, proto.encode_json(proto.LEVELS_TOPIC, body), retry=False)

    def _send_status(self, sock: zmq.Socket[bytes], state: str) -> None:
        body: dict[str, Any] = {"time_ns": time.time_ns(), "state": state}
        body["publisher"] = self.stats()
        if self._status is not None:
            try:
                body.update(self._status())
            except Exception:  # noqa: BLE001 - a status callback must not kill publishing
                _LOGGER.exception("status callback failed")
        try:
            frames = proto.encode_json(proto.STATUS_TOPIC, body)
        except (TypeError, ValueError) as e:
            _LOGGER.warning("status not JSON-able: %s", e)
            return
        self._send(sock, frames, retry=state == "ended")
