"""The long-running daemon: source -> pipeline -> (output resampler) -> publisher, supervised.

Threads (all named): ``streamsep-capture`` (device frames into the ring; or
``streamsep-file-source``, or ``streamsep-hls-source`` for ``hls`` and ``orcasound``), the
pipeline's ``analysis``/``worker``/``synthesis``, ``streamsep-publisher``, and optionally
``streamsep-archive``, ``streamsep-control``, ``streamsep-metrics``. The main thread only
supervises: it handles SIGTERM/SIGINT, checks that the pipeline makes progress before each
systemd ``WATCHDOG=1``, and updates rates for the metrics.

Lifecycle (:class:`State`): ``starting`` -> ``running`` (``reconnecting`` while the device is
lost or the HLS playlist cannot be fetched) -> ``stopping`` -> ``stopped``. A transient capture
or HLS fault never ends the daemon; a configuration error at startup or a failed pipeline or
publisher thread does (exit 1, so that systemd restarts it). SIGTERM/SIGINT drain: everything
captured before the signal is processed and published, the end-of-stream messages are sent,
and :meth:`Daemon.run` returns 0. A file source, or an ``hls`` URL at its ``EXT-X-ENDLIST``,
ends the stream the same way; a file that ends before its header's length (truncated or
corrupt) sends the missing samples as a final gap and returns 1.

Building the components from the settings is :mod:`streamsep.daemon.wiring`; the status and
the metrics are :mod:`streamsep.daemon.report`.
"""

from __future__ import annotations

import enum
import logging
import os
import signal
import threading
import time
from typing import Any, Final

from streamsep.daemon.config import DaemonSettings
from streamsep.daemon.metrics import Metric
from streamsep.daemon.report import daemon_metrics, daemon_status
from streamsep.daemon.sdnotify import Notifier
from streamsep.daemon.wiring import Components, build
from streamsep.engine.pipeline import OutputChunk, Pipeline
from streamsep.errors import StreamsepError
from streamsep.net.publish import Publisher

__all__ = ["State", "Daemon"]

_LOGGER = logging.getLogger(__name__)

_TICK_SECONDS: Final = 0.25
_RATE_WINDOW_SECONDS: Final = 5.0
_DRAIN_SECONDS: Final = 4.0
_HLS_JOIN_SECONDS: Final = 2.0  # stop() cancels a request in flight at once


class State(enum.Enum):
    """Where the daemon is in its lifecycle."""

    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Daemon:
    """Runs the configured source through the model and publishes the stems until stopped.

    Parameters
    ----------
    settings : DaemonSettings
        The validated configuration.
    notifier : Notifier, optional
        systemd notifications (default: from the environment).

    Raises
    ------
    ConfigError, ModelError, CaptureError
        From :meth:`start`, before anything is published, when the configuration, the model
        or the device is unusable.
    """

    def __init__(self, settings: DaemonSettings, *, notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.notifier = notifier or Notifier()
        self.components = Components()
        """The source, pipeline and sinks (built by :meth:`start`)."""
        self._state = State.STARTING
        self._stop_requested = threading.Event()
        self.started = time.monotonic()
        """``time.monotonic()`` when the stream started."""
        self.e2e_latency: float | None = None
        """Seconds from the capture of the newest published sample to its hand-off."""
        self.real_time_factor: float | None = None
        """Processing seconds per audio second over the last few seconds."""
        self.model_seconds_per_block: float | None = None
        """Mean model time per block over the last few seconds."""
        self._rate_mark: tuple[float, int, float, float, int] | None = None
        self._progress_out = -1
        self._progress_time = time.monotonic()
        self._last_ping = 0.0
        self._ready_sent = False
        self._events_off = False  # set when the event detector failed (logged once)
        self._last_status = ""

    # The components by name (tests and tools read them from the daemon).

    @property
    def pipeline(self) -> Pipeline | None:
        return self.components.pipeline

    @pipeline.setter
    def pipeline(self, value: Pipeline | None) -> None:
        self.components.pipeline = value

    @property
    def publisher(self) -> Publisher | None:
        return self.components.publisher

    @property
    def sample_rate(self) -> int:
        """Capture rate, Hz (after :meth:`start`)."""
        return self.components.sample_rate

    @property
    def publish_rate(self) -> int:
        """Rate of the published stems, Hz (after :meth:`start`)."""
        return self.components.publish_rate

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current state (``running`` becomes ``reconnecting`` while the device is lost or
        the HLS playlist cannot be fetched)."""
        c = self.components
        if self._state is State.RUNNING and c.device is not None:
            if not c.device.stats.connected and c.device.stats.failures:
                return State.RECONNECTING
        if self._state is State.RUNNING and c.hls is not None and not c.hls.stats.connected:
            return State.RECONNECTING
        return self._state

    @property
    def samples_captured(self) -> int:
        """Capture timeline length: samples captured plus samples lost (capture rate)."""
        return self.components.samples_captured

    def start(self) -> None:
        """Load the model, open the source, start every thread (``READY=1`` follows with the
        first audio).

        Raises
        ------
        StreamsepError
            On a bad configuration, model or device (nothing keeps running then).
        """
        s = self.settings
        c = self.components
        try:
            build(
                c, s, status=self.status, collect_metrics=self.collect_metrics,
                on_chunk=self._on_chunk, stop_requested=self._stop_requested,
            )  # fmt: skip
            assert c.pipeline is not None and c.model is not None
            self.started = time.monotonic()
            self._state = State.RUNNING
            c.start(s, self._on_first_audio, self._stop_requested)
        except BaseException:
            self._shutdown(drain=False)
            raise
        _LOGGER.info(
            "running: %s -> %s (%d Hz) -> %s at %d Hz; algorithmic latency %.3f s",
            c.describe_source(s),
            repr(c.model),
            c.model.params.sample_rate,
            list(s.publish.endpoints),
            c.publish_rate,
            c.pipeline.latency_seconds,
        )

    def _on_first_audio(self) -> None:
        """Called once audio flows (on the capture thread for a device)."""
        if not self._ready_sent:
            self._ready_sent = True
            self.notifier.ready(self._status_line())
            _LOGGER.info("capturing")

    def request_stop(self) -> None:
        """Ask :meth:`run` to drain and return (thread- and signal-safe)."""
        self._stop_requested.set()
        hls = self.components.hls
        if hls is not None:  # ends an HLS probe (at start-up) or a request in flight now
            hls.stop()

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self._stop_requested.is_set():
            if signum == signal.SIGINT:  # Ctrl-C twice: the user does not want to wait
                _LOGGER.warning("second SIGINT: exiting without draining")
                os._exit(1)
            _LOGGER.info("%s: already stopping", name)
            return
        _LOGGER.info("%s: draining and stopping", name)
        self.request_stop()

    def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT (or the end of a file source), drain, stop.

        Returns
        -------
        int
            0 after a clean stop, 1 if a pipeline or publisher thread failed.

        Raises
        ------
        StreamsepError
            From :meth:`start`.
        """
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            try:
                self.start()
            except StreamsepError:
                if not self._stop_requested.is_set():
                    raise
                _LOGGER.info("stopped during start-up")  # e.g. SIGTERM during the HLS probe
                return 0
            code = self._supervise()
            self._shutdown(drain=code == 0)
            return code
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def _supervise(self) -> int:
        c = self.components
        assert c.pipeline is not None and c.publisher is not None
        while not self._stop_requested.wait(_TICK_SECONDS):
            try:
                if c.pipeline.wait(0):  # the source closed the ring; all was published
                    return self._end_of_stream()
            except Exception:  # noqa: BLE001 - already logged by the pipeline thread
                _LOGGER.error("pipeline failed; stopping")
                return 1
            if c.publisher.error is not None:
                _LOGGER.error("publisher failed: %s; stopping", c.publisher.error)
                return 1
            self._tick()
        return 0

    def _end_of_stream(self) -> int:
        """The exit code once the source has ended and everything was published."""
        c = self.components
        if c.device is not None:  # a live source never ends by itself
            _LOGGER.error("capture ended unexpectedly; stopping")
            return 1
        if c.hls is not None and c.hls.error is not None:
            _LOGGER.error("hls source failed: %r; stopping", c.hls.error)
            return 1
        if c.file_source is not None and c.file_source.error is not None:
            # Logged (one line) by the source; its missing samples went out as a final gap.
            _LOGGER.info("end of stream (the input file ended early: exit 1)")
            return 1
        _LOGGER.info("end of stream")
        return 0

    def _tick(self) -> None:
        pipeline = self.components.pipeline
        assert pipeline is not None
        now = time.monotonic()
        stats = pipeline.stats
        jobs, results = pipeline.queue_depths
        idle = pipeline.ring.available == 0 and jobs == 0 and results == 0
        if stats.samples_out != self._progress_out or idle:
            self._progress_out = stats.samples_out
            self._progress_time = now
        watchdog = self.notifier.watchdog_seconds
        if watchdog is not None:
            healthy = now - self._progress_time <= watchdog / 2
            if healthy and now - self._last_ping >= watchdog / 4:
                self.notifier.watchdog()
                self._last_ping = now
        busy = stats.model_seconds + stats.synthesis_seconds
        if self._rate_mark is None:
            self._rate_mark = (now, stats.samples_in, busy, stats.model_seconds, stats.blocks)
        elif now - self._rate_mark[0] >= _RATE_WINDOW_SECONDS:
            t0, in0, busy0, model0, blocks0 = self._rate_mark
            audio = (stats.samples_in - in0) / pipeline.params.sample_rate
            self.real_time_factor = (busy - busy0) / audio if audio > 0 else None
            n_blocks = stats.blocks - blocks0
            per_block = (stats.model_seconds - model0) / n_blocks if n_blocks else None
            self.model_seconds_per_block = per_block
            self._rate_mark = (now, stats.samples_in, busy, stats.model_seconds, stats.blocks)
        line = self._status_line()
        if line != self._last_status:
            self._last_status = line
            self.notifier.status(line)

    def _status_line(self) -> str:
        state, c = self.state, self.components
        if state is State.RECONNECTING and c.device is not None:
            return f"reconnecting: {c.device.stats.last_error}"
        if state is State.RECONNECTING and c.hls is not None:
            return f"reconnecting: {c.hls.stats.last_error or 'no playlist yet'}"
        return f"{state.value}: {c.sample_rate} Hz in, {c.publish_rate} Hz out"

    def _on_chunk(self, chunk: OutputChunk) -> None:
        """Called on the synthesis thread for each chunk handed to the publisher."""
        clock = self.components.clock
        if chunk.n_samples and clock is not None:
            newest = chunk.start_index + chunk.n_samples - 1
            captured_ns = clock.scaled(self.components.publish_rate)(newest)
            self.e2e_latency = (time.time_ns() - captured_ns) / 1e9
        events = self.components.events
        if events is not None and not self._events_off:  # before the chunk is published
            try:
                events.write(chunk)
            except Exception:  # noqa: BLE001 - detection must never stop the stream
                _LOGGER.exception("events: detector failed; events are off from here on")
                self._events_off = True

    def _shutdown(self, *, drain: bool) -> None:
        """Stop the source, drain the pipeline (unless ``drain`` is false), send the end of
        stream, close the sinks; each step bounded in time."""
        if self._state is State.STOPPED:
            return
        self._state = State.STOPPING
        self.notifier.stopping()
        c = self.components
        if c.device is not None:
            c.device.stop()
            if not c.device.join(_DRAIN_SECONDS):
                _LOGGER.warning("capture did not stop within %g s", _DRAIN_SECONDS)
        if c.file_source is not None:
            c.file_source.stop()
            c.file_source.join(_DRAIN_SECONDS)
        if c.hls is not None:
            c.hls.stop()  # its thread closes the ring: the pipeline drains
            if not c.hls.join(_HLS_JOIN_SECONDS):
                _LOGGER.warning("hls source did not stop within %g s", _HLS_JOIN_SECONDS)
        if c.pipeline is not None and "pipeline" in c.running:
            if not drain:
                c.pipeline.stop()
            try:
                if not c.pipeline.wait(_DRAIN_SECONDS):
                    _LOGGER.warning("pipeline did not drain within %g s", _DRAIN_SECONDS)
                    c.pipeline.stop()
            except Exception:  # noqa: BLE001 - already logged by the pipeline thread
                pass
            c.pipeline.join(_DRAIN_SECONDS)
        if c.events is not None and "events" in c.running:
            c.events.close()  # pending clips, the log, notifications; before the end of stream
        if c.publisher is not None and "publisher" in c.running:
            c.publisher.close()
            c.publisher.wait(self.settings.publish.end_timeout_seconds)
            c.publisher.stop()
        if c.web is not None:  # after the end of stream, so that HLS out writes its tail
            c.web.stop()
        for component in (c.archive, c.control, c.metrics, c.device):
            if component is not None:
                component.close()
        self.notifier.close()
        self._state = State.STOPPED
        if c.pipeline is not None and "pipeline" in c.running:
            _LOGGER.info(
                "stopped: samples_captured=%d samples_published=%d samples_lost=%d "
                "sample_rate=%d publish_rate=%d",
                c.samples_captured,
                c.samples_published,
                sum(c.lost_by_cause().values()),
                c.sample_rate,
                c.publish_rate,
            )

    # -- status and metrics -----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """JSON-able status (control ``status`` and the publisher's ``status`` messages)."""
        return daemon_status(self)

    def collect_metrics(self) -> list[Metric]:
        """The Prometheus metrics (called on a metrics server thread)."""
        return daemon_metrics(self)
