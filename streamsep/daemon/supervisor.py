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
ends the stream the same way.
"""

from __future__ import annotations

import enum
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from streamsep.daemon.archive import RawArchive, check_directory
from streamsep.daemon.config import DaemonSettings
from streamsep.daemon.metrics import Metric, MetricsServer
from streamsep.daemon.sdnotify import Notifier
from streamsep.engine.clock import CaptureClock
from streamsep.engine.offline import Separator
from streamsep.engine.outrate import OutputResampler
from streamsep.engine.pipeline import OutputChunk, Pipeline
from streamsep.engine.ringbuffer import RingBuffer
from streamsep.events.tap import EventTap  # events
from streamsep.net.control import ControlServer
from streamsep.net.levels import Calibration  # events
from streamsep.net.publish import Publisher
from streamsep.net.status import pipeline_status
from streamsep.resources import default_model_paths  # events
from streamsep.sources.device.source import DeviceSource
from streamsep.sources.file import FileSource, file_info
from streamsep.sources.hls.follower import HlsSource
from streamsep.sources.hls.orcasound import OrcasoundResolver
from streamsep.version import __version__

__all__ = ["State", "Daemon"]

_LOGGER = logging.getLogger(__name__)

_TICK_SECONDS: Final = 0.25
_RATE_WINDOW_SECONDS: Final = 5.0
_DRAIN_SECONDS: Final = 4.0
_LOOP_FOREVER: Final = 1 << 62
_HLS_JOIN_EXTRA_SECONDS: Final = 5.0  # on top of one HTTP timeout (a request in flight)


class State(enum.Enum):
    """Where the daemon is in its lifecycle."""

    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    STOPPING = "stopping"
    STOPPED = "stopped"


class _TeeRing:
    """Stands in for the pipeline ring for a :class:`FileSource` or an :class:`HlsSource`:
    counts the timeline (samples written and samples marked lost) and hands a copy of each
    written block to the archive at its timeline index. Called on the source's thread."""

    def __init__(self, ring: RingBuffer, tap: Callable[[int, NDArray[np.float32]], None] | None):
        self._ring = ring
        self._tap = tap
        self.n_channels = ring.n_channels
        self.timeline_samples = 0
        """Samples written plus samples marked lost: the index of the next sample."""

    def write(self, block: NDArray[np.float32]) -> int:
        accepted = self._ring.write(block)
        if self._tap is not None:
            self._tap(self.timeline_samples, block)
        self.timeline_samples += block.shape[0]
        return accepted

    def mark_gap(self, n_lost: int) -> None:
        """``n_lost`` samples lost upstream here; the archive sees the jump in the index."""
        if n_lost > 0:
            self._ring.mark_gap(n_lost)
            self.timeline_samples += n_lost

    def wait_for_space(self, n: int, timeout: float | None = None) -> bool:
        return self._ring.wait_for_space(n, timeout)

    def close(self) -> None:
        self._ring.close()


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
        self._state = State.STARTING
        self._stop_requested = threading.Event()
        self._started = time.monotonic()
        self.pipeline: Pipeline | None = None
        self.publisher: Publisher | None = None
        self.device: DeviceSource | None = None
        self.file_source: FileSource | None = None
        self.hls: HlsSource | None = None
        self.archive: RawArchive | None = None
        self.control: ControlServer | None = None
        self.metrics: MetricsServer | None = None
        self.output: OutputResampler | None = None
        self.events: EventTap | None = None
        """The orca activity detector and its outputs (``[events] enabled``)."""
        self._events_off = False
        self._tee: _TeeRing | None = None
        self.clock: CaptureClock | None = None
        self.sample_rate = 0
        """Capture rate, Hz (after :meth:`start`)."""
        self.publish_rate = 0
        """Rate of the published stems, Hz (after :meth:`start`)."""
        self._e2e_latency: float | None = None
        self._rtf: float | None = None
        self._model_per_block: float | None = None
        self._rate_mark: tuple[float, int, float, float, int] | None = None
        self._progress_out = -1
        self._progress_time = time.monotonic()
        self._last_ping = 0.0
        self._ready_sent = False
        self._last_status = ""
        self._running: set[str] = set()  # components started (for a partial shutdown)

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current state (``running`` becomes ``reconnecting`` while the device is lost or
        the HLS playlist cannot be fetched)."""
        if self._state is State.RUNNING and self.device is not None:
            if not self.device.stats.connected and self.device.stats.failures:
                return State.RECONNECTING
        if self._state is State.RUNNING and self.hls is not None and not self.hls.stats.connected:
            return State.RECONNECTING
        return self._state

    @property
    def samples_captured(self) -> int:
        """Capture timeline length: samples captured plus samples lost (capture rate)."""
        if self.device is not None:
            return self.device.stats.samples_captured
        if self.hls is not None:
            return self.hls.stats.timeline_samples
        if self._tee is not None:
            return self._tee.timeline_samples
        return 0

    def start(self) -> None:
        """Load the model, open the source, start every thread (``READY=1`` follows with the
        first audio).

        Raises
        ------
        StreamsepError
            On a bad configuration, model or device (nothing keeps running then).
        """
        s = self.settings
        try:
            self._start(s)
        except BaseException:
            self._shutdown(drain=False)
            raise

    def _start(self, s: DaemonSettings) -> None:
        if s.archive.enabled:
            check_directory(s.archive.directory)
        separator = Separator(
            s.model.params, s.model.model, stream=s.stream, num_threads=s.model.num_threads
        )
        model, params = separator.model, separator.params
        if s.source.kind == "device":
            self.device = DeviceSource(s.source.device)
            info = self.device.open()
            self.sample_rate, n_channels = info.sample_rate, self.device.n_channels
            assert self.device.clock is not None
            self.clock = self.device.clock
        elif s.source.kind in ("hls", "orcasound"):
            self.hls = self._make_hls_source(s)
            # Probes the stream (or, offline, takes sample_rate and channels from the settings).
            hls_info = self.hls.probe()
            self.sample_rate, n_channels = hls_info.sample_rate, hls_info.n_channels
            # Sample 0 and each restart or capped gap are anchored at the segments' UTC
            # (program date-time, else the wall-clock estimate) on the source thread.
            self.clock = CaptureClock(self.sample_rate)
            self.hls.on_anchor = self.clock.add
        else:
            assert s.source.file is not None
            self.sample_rate, n_channels, _ = file_info(s.source.file.path)
            self.clock = CaptureClock(self.sample_rate)
        self.publish_rate = self.sample_rate if s.publish_rate == "capture" else params.sample_rate
        publish_clock = self.clock.scaled(self.publish_rate)
        self.publisher = Publisher(
            s.publish,
            stems=params.instrument_list,
            sample_rate=self.publish_rate,
            n_channels=params.n_channels,
            clock=publish_clock,
            status=self.status,
        )
        if s.events.enabled:
            self.events = self._make_events(s, params.instrument_list, publish_clock)
        self.output = OutputResampler(
            self.publisher,
            params.sample_rate,
            self.publish_rate,
            params.n_stems,
            params.n_channels,
            total_samples=(lambda: self.samples_captured) if s.publish_rate == "capture" else None,
            on_chunk=self._on_chunk,
        )
        self.pipeline = Pipeline(
            model,
            s.stream,
            source_rate=self.sample_rate,
            source_channels=n_channels,
            sinks=[self.output],
        )
        if s.archive.enabled:
            self.archive = RawArchive(
                s.archive, sample_rate=self.sample_rate, n_channels=n_channels, clock=self.clock
            )
        tap = self.archive.write if self.archive is not None else None
        if self.hls is not None:
            self._tee = _TeeRing(self.pipeline.ring, tap)
        elif s.source.kind == "file":
            assert s.source.file is not None
            self._tee = _TeeRing(self.pipeline.ring, tap)
            loops = s.source.file.loops or _LOOP_FOREVER
            self.file_source = FileSource(
                s.source.file.path,
                self._tee,  # type: ignore[arg-type]  # duck-typed ring
                realtime=s.source.file.realtime,
                loops=loops,
            )
        elif self.device is not None:
            self.device.tap = tap
            self.device.on_first_audio = self._on_first_audio
        if s.control is not None:
            self.control = ControlServer(s.control, self.status)
        if s.metrics.enabled:
            self.metrics = MetricsServer(s.metrics, self.collect_metrics)
        # Everything validated and built: start the threads, sinks first.
        self.publisher.start()
        self._running.add("publisher")
        if self.control is not None:
            self.control.start()
        if self.metrics is not None:
            self.metrics.start()
        if self.archive is not None:
            self.archive.start()
        if self.events is not None:
            self.events.start()
            self._running.add("events")
        self.pipeline.start()
        self._running.add("pipeline")
        self._started = time.monotonic()
        self._state = State.RUNNING
        if self.device is not None:
            self.device.start(self.pipeline.ring)
        elif self.hls is not None:
            assert self._tee is not None
            self.hls.start(self._tee)
            # READY now, not at the first segment: a node may be offline for hours, which is
            # "reconnecting" (retried for ever), not a failed start for systemd to restart.
            self._on_first_audio()
        else:
            assert self.file_source is not None
            self.clock.add(0, time.time_ns())
            self.file_source.start()
            self._on_first_audio()
        opened = self.device.info if self.device is not None else None
        if opened is not None:
            source = repr(opened.name)
        elif self.hls is not None:
            source = repr(self.hls)
        else:
            source = str(s.source.file and s.source.file.path)
        _LOGGER.info(
            "running: %s -> %s (%d Hz) -> %s at %d Hz; algorithmic latency %.3f s",
            source,
            repr(model),
            params.sample_rate,
            list(s.publish.endpoints),
            self.publish_rate,
            self.pipeline.latency_seconds,
        )

    @staticmethod
    def _make_hls_source(s: DaemonSettings) -> HlsSource:
        """The HLS follower of ``kind = "hls"`` (a fixed playlist URL) or ``"orcasound"`` (the
        node's ``latest.txt``, read again on stalls and failures to follow restarts)."""
        h = s.source.hls
        assert h is not None
        if s.source.kind == "orcasound":
            o = s.source.orcasound
            assert o is not None
            target = OrcasoundResolver(o.node, o.base_url, timeout_seconds=h.timeout_seconds)
            return HlsSource(target, None, h)
        return HlsSource(h.url, None, h)

    # -- events (orca activity detection) ----------------------------------------------------

    def _make_events(self, s: DaemonSettings, stems: Sequence[str], clock: Any) -> EventTap:
        """The event tap on the published stems (its folder checked like the archive's)."""
        check_directory(s.events.directory)
        p = s.publish
        calibration = None
        if p.sensitivity_db_re_1v_per_upa is not None:
            calibration = Calibration(p.sensitivity_db_re_1v_per_upa, p.gain_db, p.full_scale_volts)
        assert self.publisher is not None
        return EventTap(
            s.events,
            stems=stems,
            sample_rate=self.publish_rate,
            clock=clock,
            publish=self.publisher.send_json,
            model=os.path.basename(s.model.model or default_model_paths()[1]),
            calibration=calibration,
            sample_format=p.sample_format,
            min_free_mb=s.archive.min_free_mb,
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
            self.start()
            code = self._supervise()
            self._shutdown(drain=code == 0)
            return code
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def _supervise(self) -> int:
        assert self.pipeline is not None and self.publisher is not None
        while not self._stop_requested.wait(_TICK_SECONDS):
            try:
                if self.pipeline.wait(0):  # the source closed the ring; all was published
                    if self.device is not None:  # a live source never ends by itself
                        _LOGGER.error("capture ended unexpectedly; stopping")
                        return 1
                    if self.hls is not None and self.hls.error is not None:
                        _LOGGER.error("hls source failed: %r; stopping", self.hls.error)
                        return 1
                    _LOGGER.info("end of stream")
                    return 0
            except Exception:  # noqa: BLE001 - already logged by the pipeline thread
                _LOGGER.error("pipeline failed; stopping")
                return 1
            if self.publisher.error is not None:
                _LOGGER.error("publisher failed: %s; stopping", self.publisher.error)
                return 1
            self._tick()
        return 0

    def _tick(self) -> None:
        assert self.pipeline is not None
        now = time.monotonic()
        stats = self.pipeline.stats
        jobs, results = self.pipeline.queue_depths
        idle = self.pipeline.ring.available == 0 and jobs == 0 and results == 0
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
            audio = (stats.samples_in - in0) / self.pipeline.params.sample_rate
            self._rtf = (busy - busy0) / audio if audio > 0 else None
            n_blocks = stats.blocks - blocks0
            self._model_per_block = (stats.model_seconds - model0) / n_blocks if n_blocks else None
            self._rate_mark = (now, stats.samples_in, busy, stats.model_seconds, stats.blocks)
        line = self._status_line()
        if line != self._last_status:
            self._last_status = line
            self.notifier.status(line)

    def _status_line(self) -> str:
        state = self.state
        if state is State.RECONNECTING and self.device is not None:
            return f"reconnecting: {self.device.stats.last_error}"
        if state is State.RECONNECTING and self.hls is not None:
            return f"reconnecting: {self.hls.stats.last_error or 'no playlist yet'}"
        return f"{state.value}: {self.sample_rate} Hz in, {self.publish_rate} Hz out"

    def _on_chunk(self, chunk: OutputChunk) -> None:
        """Called on the synthesis thread for each chunk handed to the publisher."""
        if chunk.n_samples and self.clock is not None:
            newest = chunk.start_index + chunk.n_samples - 1
            captured_ns = self.clock.scaled(self.publish_rate)(newest)
            self._e2e_latency = (time.time_ns() - captured_ns) / 1e9
        if self.events is not None and not self._events_off:  # events: before publishing
            try:
                self.events.write(chunk)
            except Exception:  # noqa: BLE001 - detection must never stop the stream
                _LOGGER.exception("events: detector failed; events are off from here on")
                self._events_off = True

    def _shutdown(self, *, drain: bool) -> None:
        if self._state is State.STOPPED:
            return
        self._state = State.STOPPING
        self.notifier.stopping()
        if self.device is not None:
            self.device.stop()
            if not self.device.join(_DRAIN_SECONDS):
                _LOGGER.warning("capture did not stop within %g s", _DRAIN_SECONDS)
        if self.file_source is not None:
            self.file_source.stop()
            self.file_source.join(_DRAIN_SECONDS)
        if self.hls is not None:
            self.hls.stop()  # its thread closes the ring: the pipeline drains
            limit = self.hls.settings.timeout_seconds + _HLS_JOIN_EXTRA_SECONDS
            if not self.hls.join(limit):
                _LOGGER.warning("hls source did not stop within %g s", limit)
        if self.pipeline is not None and "pipeline" in self._running:
            if not drain:
                self.pipeline.stop()
            try:
                if not self.pipeline.wait(_DRAIN_SECONDS):
                    _LOGGER.warning("pipeline did not drain within %g s", _DRAIN_SECONDS)
                    self.pipeline.stop()
            except Exception:  # noqa: BLE001 - already logged by the pipeline thread
                pass
            self.pipeline.join(_DRAIN_SECONDS)
        if self.events is not None and "events" in self._running:
            self.events.close()  # events: pending clips, the log, notifications
        if self.publisher is not None and "publisher" in self._running:
            self.publisher.close()
            self.publisher.wait(self.settings.publish.end_timeout_seconds)
            self.publisher.stop()
        for component in (self.archive, self.control, self.metrics, self.device):
            if component is not None:
                component.close()
        self.notifier.close()
        self._state = State.STOPPED
        if self.pipeline is not None and "pipeline" in self._running:
            published = self.output.samples_out if self.output is not None else 0
            _LOGGER.info(
                "stopped: samples_captured=%d samples_published=%d samples_lost=%d "
                "sample_rate=%d publish_rate=%d",
                self.samples_captured,
                published,
                self._lost_total(),
                self.sample_rate,
                self.publish_rate,
            )

    def _lost_total(self) -> int:
        lost = self.pipeline.ring.overrun_samples if self.pipeline is not None else 0
        if self.device is not None:
            d = self.device.stats
            lost += d.lost_overflow + d.lost_capture_ring + d.lost_outage
        if self.hls is not None:
            lost += self.hls.stats.samples_lost
        return lost

    # -- status and metrics -----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """JSON-able status (control ``status`` and the publisher's ``status`` messages)."""
        out: dict[str, Any] = {"state": self.state.value, "version": __version__}
        if self.pipeline is not None:
            out.update(pipeline_status(self.pipeline, None, self._started))
        out["capture_rate"] = self.sample_rate
        out["publish_rate"] = self.publish_rate
        out["samples_captured"] = self.samples_captured
        out["samples_published"] = self.output.samples_out if self.output is not None else 0
        out["end_to_end_latency_seconds"] = self._e2e_latency
        if self.device is not None:
            d = self.device.stats
            out["capture"] = {
                "connected": d.connected,
                "device": self.device.info.name if self.device.info else None,
                "reconnects": d.reconnects,
                "failures": d.failures,
                "last_error": d.last_error,
                "overflows": d.overflows,
                "lost_overflow": d.lost_overflow,
                "lost_capture_ring": d.lost_capture_ring,
                "lost_outage": d.lost_outage,
            }
        if self.hls is not None:
            h = self.hls.stats
            out["hls"] = {
                "connected": h.connected,
                "playlist_url": h.playlist_url,
                "segments": h.segments,
                "segments_lost": h.segments_lost,
                "gaps": h.gaps,
                "samples_lost": h.samples_lost,
                "playlist_failures": h.playlist_failures,
                "segment_failures": h.segment_failures,
                "bad_packets": h.bad_packets,
                "restarts": h.restarts,
                "stalls": h.stalls,
                "behind_segments": h.behind_segments,
                "last_error": h.last_error,
            }
        if self.events is not None:
            out["events"] = self.events.status()
        if self.archive is not None:
            a = self.archive.stats
            out["archive"] = {
                "files": a.files,
                "samples_written": a.samples_written,
                "samples_dropped": a.samples_dropped,
                "stopped": a.stopped,
            }
        return out

    def collect_metrics(self) -> list[Metric]:
        """The Prometheus metrics (called on a metrics server thread)."""
        m: list[Metric] = []

        def add(name: str, kind: str, text: str, value: float | None = None) -> Metric:
            metric = Metric(f"streamsep_{name}", kind, text)
            m.append(metric.add(value) if value is not None else metric)
            return metric

        counter, gauge = "counter", "gauge"
        add("info", gauge, "Build information.").add(1, version=__version__)
        state = add("state", gauge, "1 for the current daemon state.")
        for s in State:
            state.add(1 if s is self.state else 0, state=s.value)
        text = "Capture timeline length (received + lost samples), at the capture rate."
        add("samples_captured_total", counter, text, self.samples_captured)
        published = self.output.samples_out if self.output is not None else 0
        text = "Samples per stem handed to the publisher, at the publish rate."
        add("samples_published_total", counter, text, published)
        lost = add("samples_lost_total", counter, "Samples lost, by cause.")
        p, d = self.pipeline, self.device.stats if self.device is not None else None
        pub = self.publisher.stats() if "publisher" in self._running and self.publisher else None
        if p is not None:
            lost.add(p.ring.overrun_samples, cause="pipeline_ring")
        if d is not None:
            lost.add(d.lost_overflow, cause="device_overflow")
            lost.add(d.lost_capture_ring, cause="capture_ring")
            lost.add(d.lost_outage, cause="outage")
        h = self.hls.stats if self.hls is not None else None
        if h is not None:
            lost.add(h.samples_lost, cause="hls")
        if pub is not None:
            lost.add(pub["queue_dropped_samples"], cause="publish_queue")
        if d is not None:
            add("input_overflows_total", counter, "Device input overflows.", d.overflows)
            add("reconnects_total", counter, "Capture restarts after device loss.", d.reconnects)
            add("capture_failures_total", counter, "Times the device was lost.", d.failures)
            add("capture_up", gauge, "1 while audio flows.", 1 if d.connected else 0)
        if h is not None:
            add("capture_up", gauge, "1 while the playlist is reachable.", 1 if h.connected else 0)
            add("hls_segments_total", counter, "HLS segments decoded and written.", h.segments)
            text = "HLS segments lost: missing, undecodable, skipped, gone unseen."
            add("hls_segments_lost_total", counter, text, h.segments_lost)
            text = "Failed playlist or latest.txt polls."
            add("hls_playlist_failures_total", counter, text, h.playlist_failures)
            add("hls_restarts_total", counter, "New streams (node restarts).", h.restarts)
            add("hls_stalls_total", counter, "Times the playlist stopped growing.", h.stalls)
        depth = add("queue_depth", gauge, "Items waiting, by queue.")
        if p is not None:
            jobs, results = p.queue_depths
            depth.add(p.ring.available, queue="ring_samples")
            depth.add(jobs, queue="model_jobs")
            depth.add(results, queue="synthesis")
        if pub is not None:
            depth.add(pub["queue_depth"], queue="publish_chunks")
            add("subscriptions", gauge, "Subscriptions seen.", pub["subscriptions"])
            add(
                "active_subscriptions", gauge, "Subscriptions open now.",
                pub["active_subscriptions"],
            )  # fmt: skip
        if self.archive is not None:
            depth.add(self.archive.queue_samples, queue="archive_samples")
        if p is not None:
            add(
                "model_seconds_total",
                counter,
                "Wall time spent in the model.",
                p.stats.model_seconds,
            )
            add("model_blocks_total", counter, "Model blocks run.", p.stats.blocks)
            text = "Mean model time per block over the last few seconds."
            add("model_seconds_per_block", gauge, text, self._model_per_block)
            text = "Processing seconds per second of audio, last few seconds (< 1 keeps up)."
            add("real_time_factor", gauge, text, self._rtf)
            add("algorithmic_latency_seconds", gauge, "Engine latency.", p.latency_seconds)
        text = "From the capture of the newest sample handed to the publisher to then."
        add("end_to_end_latency_seconds", gauge, text, self._e2e_latency)
        if self.archive is not None:
            a = self.archive.stats
            add("archive_files_total", counter, "Archive files completed.", a.files)
            add(
                "archive_bytes_total", counter, "Bytes of completed archive files.", a.bytes_written
            )
            add("archive_samples_written_total", counter, "Samples archived.", a.samples_written)
            text = "Samples not archived (queue full, disk guard, write errors)."
            add("archive_samples_dropped_total", counter, text, a.samples_dropped)
            text = "1 while the disk-space guard or write errors stop archiving."
            add("archive_stopped", gauge, text, 1 if a.stopped else 0)
            add("archive_free_bytes", gauge, "Free space at the last check.", a.free_bytes)
        return m
