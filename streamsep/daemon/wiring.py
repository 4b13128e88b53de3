"""The daemon's source wiring: source, clock, pipeline, output resampler and sinks, built from
the settings and started in order.

:func:`build` fills a :class:`Components` step by step, validating as it goes (model, device,
stream probe, archive folder), so that a failure part-way leaves in it exactly what must be
closed; :meth:`Components.start` starts the threads, sinks first. What runs them afterwards
(signals, watchdog, drain) is :mod:`streamsep.daemon.supervisor`.

The pieces, by ``[source] kind``:

* ``device``: :class:`DeviceSource` (a capture process) writes into the pipeline ring; its
  :class:`CaptureClock` maps indices to UTC from the ADC-time anchors;
* ``file``: :class:`FileSource` writes through a :class:`TeeRing` (timeline count, archive tap);
  sample 0 is anchored at the wall clock of the start;
* ``hls`` / ``orcasound``: :class:`HlsSource` (probed here for rate and channels) writes through
  a :class:`TeeRing`; it anchors the clock at the segments' UTC on its own thread.

Then ``pipeline (model rate) -> OutputResampler (publish rate) -> Publisher``, and optionally a
:class:`RawArchive` fed by the source's tap, a :class:`ControlServer` and a
:class:`MetricsServer`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from streamsep.daemon.archive import RawArchive, check_directory
from streamsep.daemon.config import DaemonSettings, FileSettings
from streamsep.daemon.metrics import Metric, MetricsServer
from streamsep.engine.clock import CaptureClock
from streamsep.engine.model import MaskModel
from streamsep.engine.offline import Separator
from streamsep.engine.outrate import OutputResampler
from streamsep.engine.pipeline import OutputChunk, Pipeline
from streamsep.engine.ringbuffer import RingBuffer
from streamsep.errors import ModelError, StreamsepError
from streamsep.events.tap import EventTap
from streamsep.net.control import ControlServer
from streamsep.net.levels import Calibration
from streamsep.net.publish import Publisher
from streamsep.resources import default_model_paths
from streamsep.sources.device.source import DeviceSource
from streamsep.sources.file import FileSource, file_info
from streamsep.sources.hls.follower import HlsSource
from streamsep.sources.hls.orcasound import orcasound_source
from streamsep.web.server import WebMonitor, daemon_monitor

__all__ = ["TeeRing", "Components", "build", "make_hls_source", "warm_up"]

_LOOP_FOREVER: Final = 1 << 62
_WAIT_SLICE_SECONDS: Final = 0.1  # how soon a stop request ends a wait for subscribers
_LOGGER = logging.getLogger(__name__)


class TeeRing:
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


@dataclass
class Components:
    """What the daemon runs (None: not configured, or not built yet)."""

    sample_rate: int = 0
    """Capture rate, Hz."""
    publish_rate: int = 0
    """Rate of the published stems, Hz."""
    n_channels: int = 0
    """Channels written into the pipeline."""
    model: MaskModel | None = None
    clock: CaptureClock | None = None
    """Capture timeline index -> UTC ns."""
    pipeline: Pipeline | None = None
    publisher: Publisher | None = None
    output: OutputResampler | None = None
    device: DeviceSource | None = None
    file_source: FileSource | None = None
    hls: HlsSource | None = None
    tee: TeeRing | None = None
    archive: RawArchive | None = None
    control: ControlServer | None = None
    metrics: MetricsServer | None = None
    events: EventTap | None = None
    """The orca activity detector and its outputs (``[events] enabled``)."""
    web: WebMonitor | None = None
    """``[web]`` / ``[hls_out]``: subscribes to the publisher in-process (docs/web.md)."""
    running: set[str] = field(default_factory=set)
    """Threads started: ``publisher``, ``pipeline`` (for a partial shutdown)."""

    @property
    def samples_captured(self) -> int:
        """Capture timeline length: samples captured plus samples lost (capture rate)."""
        if self.device is not None:
            return self.device.stats.samples_captured
        if self.hls is not None:
            return self.hls.stats.timeline_samples
        if self.tee is not None:
            return self.tee.timeline_samples
        return 0

    @property
    def samples_published(self) -> int:
        """Samples per stem handed to the publisher (publish rate)."""
        return self.output.samples_out if self.output is not None else 0

    def lost_by_cause(self) -> dict[str, int]:
        """Samples lost before the pipeline, by cause (capture rate); the publisher's queue
        drops are counted by the publisher."""
        lost: dict[str, int] = {}
        if self.pipeline is not None:
            lost["pipeline_ring"] = self.pipeline.ring.overrun_samples
        if self.device is not None:
            d = self.device.stats
            lost["device_overflow"] = d.lost_overflow
            lost["capture_ring"] = d.lost_capture_ring
            lost["outage"] = d.lost_outage
        if self.hls is not None:
            lost["hls"] = self.hls.stats.samples_lost
        if self.file_source is not None:
            lost["file"] = self.file_source.samples_lost
        return lost

    def describe_source(self, settings: DaemonSettings) -> str:
        """The source for the ``running:`` log line."""
        opened = self.device.info if self.device is not None else None
        if opened is not None:
            return repr(opened.name)
        if self.hls is not None:
            return repr(self.hls)
        return str(settings.source.file and settings.source.file.path)

    def start(
        self,
        s: DaemonSettings,
        on_first_audio: Callable[[], None],
        stop_requested: threading.Event | None = None,
    ) -> None:
        """Start every thread, sinks first, the source last (a file source after its
        ``wait_subscribers``; ``stop_requested`` ends that wait).

        Raises
        ------
        StreamsepError
            If a file source's subscriptions do not come within its ``wait_seconds``, or a stop
            was requested while waiting for them.
        """
        assert self.publisher is not None and self.pipeline is not None
        assert self.clock is not None
        self.publisher.start()
        self.running.add("publisher")
        self.web = daemon_monitor(
            s.web, s.hls_out, self.publisher.bound_endpoints, curve=s.publish.curve
        )
        if self.web is not None:
            self.web.start()
        if self.control is not None:
            self.control.start()
        if self.metrics is not None:
            self.metrics.start()
        if self.archive is not None:
            self.archive.start()
        if self.events is not None:
            self.events.start()
            self.running.add("events")
        self.pipeline.start()
        self.running.add("pipeline")
        if self.device is not None:
            self.device.on_first_audio = on_first_audio
            self.device.start(self.pipeline.ring)
        elif self.hls is not None:
            assert self.tee is not None
            self.hls.start(self.tee)
            # READY now, not at the first segment: a node may be offline for hours, which is
            # "reconnecting" (retried for ever), not a failed start for systemd to restart.
            on_first_audio()
        else:
            assert self.file_source is not None
            if s.source.file is not None and s.source.file.wait_subscribers > 0:
                self._wait_for_subscribers(s.source.file, stop_requested)
            self.clock.add(0, time.time_ns())
            self.file_source.start()
            on_first_audio()

    def _wait_for_subscribers(
        self, f: FileSettings, stop_requested: threading.Event | None
    ) -> None:
        """Block until ``f.wait_subscribers`` subscriptions arrived, in short waits that a stop
        request ends (a SIGTERM must not wait out ``wait_seconds``)."""
        assert self.publisher is not None
        _LOGGER.info("waiting for %d subscription(s) before reading the file", f.wait_subscribers)
        deadline = time.monotonic() + f.wait_seconds
        while not self.publisher.wait_for_subscribers(f.wait_subscribers, _WAIT_SLICE_SECONDS):
            if stop_requested is not None and stop_requested.is_set():
                raise StreamsepError("stopped while waiting for subscribers")
            if time.monotonic() >= deadline:
                got = self.publisher.stats()["subscriptions"]
                raise StreamsepError(
                    f"source.wait_subscribers: expected {f.wait_subscribers} subscription(s) "
                    f"within source.wait_seconds = {f.wait_seconds:g} s, got {got}"
                )


def build(
    c: Components,
    s: DaemonSettings,
    *,
    status: Callable[[], dict[str, Any]],
    collect_metrics: Callable[[], list[Metric]],
    on_chunk: Callable[[OutputChunk], None],
    stop_requested: threading.Event | None = None,
) -> None:
    """Validate and build every component of ``s`` into ``c`` (nothing started).

    ``stop_requested`` (set by a signal handler) cancels the HLS probe; a signal that arrives
    after ``c.hls`` is set cancels it through :meth:`HlsSource.stop`.

    Raises
    ------
    StreamsepError
        On a bad configuration, model, device or stream; ``c`` then holds what was built.
    """
    if s.archive.enabled:
        check_directory(s.archive.directory)
    separator = Separator(
        s.model.params, s.model.model, stream=s.stream, num_threads=s.model.num_threads
    )
    model, params = separator.model, separator.params
    warm_up(model)
    c.model = model
    if s.source.kind == "device":
        c.device = DeviceSource(s.source.device)
        info = c.device.open()
        c.sample_rate, c.n_channels = info.sample_rate, c.device.n_channels
        assert c.device.clock is not None
        c.clock = c.device.clock
    elif s.source.kind in ("hls", "orcasound"):
        c.hls = make_hls_source(s)
        if stop_requested is not None and stop_requested.is_set():  # a signal before c.hls
            c.hls.stop()
        # Probes the stream (or, offline, takes sample_rate and channels from the settings);
        # every request has a total deadline, and a stop (SIGTERM) ends it at once.
        hls_info = c.hls.probe()
        c.sample_rate, c.n_channels = hls_info.sample_rate, hls_info.n_channels
        # Sample 0 and each restart or capped gap are anchored at the segments' UTC
        # (program date-time, else the wall-clock estimate) on the source thread.
        c.clock = CaptureClock(c.sample_rate)
        c.hls.on_anchor = c.clock.add
    else:
        assert s.source.file is not None
        c.sample_rate, c.n_channels, _ = file_info(s.source.file.path)
        c.clock = CaptureClock(c.sample_rate)
    c.publish_rate = c.sample_rate if s.publish_rate == "capture" else params.sample_rate
    c.publisher = Publisher(
        s.publish,
        stems=params.instrument_list,
        sample_rate=c.publish_rate,
        n_channels=params.n_channels,
        clock=c.clock.scaled(c.publish_rate),
        status=status,
    )
    if s.events.enabled:
        clock = c.clock.scaled(c.publish_rate)
        c.events = make_events(s, params.instrument_list, c.publish_rate, clock, c.publisher)
    c.output = OutputResampler(
        c.publisher,
        params.sample_rate,
        c.publish_rate,
        params.n_stems,
        params.n_channels,
        total_samples=(lambda: c.samples_captured) if s.publish_rate == "capture" else None,
        on_chunk=on_chunk,
    )
    c.pipeline = Pipeline(
        model,
        s.stream,
        source_rate=c.sample_rate,
        source_channels=c.n_channels,
        sinks=[c.output],
    )
    if s.archive.enabled:
        c.archive = RawArchive(
            s.archive, sample_rate=c.sample_rate, n_channels=c.n_channels, clock=c.clock
        )
    tap = c.archive.write if c.archive is not None else None
    if c.hls is not None:
        c.tee = TeeRing(c.pipeline.ring, tap)
    elif s.source.kind == "file":
        assert s.source.file is not None
        c.tee = TeeRing(c.pipeline.ring, tap)
        c.file_source = FileSource(
            s.source.file.path,
            c.tee,
            realtime=s.source.file.realtime,
            loops=s.source.file.loops or _LOOP_FOREVER,
        )
    elif c.device is not None:
        c.device.tap = tap
    if s.control is not None:
        c.control = ControlServer(s.control, status)
    if s.metrics.enabled:
        c.metrics = MetricsServer(s.metrics, collect_metrics)


def warm_up(model: MaskModel) -> None:
    """Run the model once on a silent block, so that what would fail on the first block of
    the stream (the interpreter's allocation, e.g. ``model.num_threads`` beyond what it can
    start) fails now, before ``running``, as one line.

    Raises
    ------
    ModelError
        If the model cannot run.

    A model that ran a block when it loaded (``ran_at_load``: a TFLite model's probe) is not
    run again: a full-size model's block costs about 0.2 s on two x86 cores.
    """
    if model.ran_at_load:
        return
    p = model.params
    try:
        model.predict(np.zeros((p.T, p.F, p.n_channels), np.float32))
    except (RuntimeError, ValueError, MemoryError) as e:
        message = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise ModelError(f"model: cannot run {model!r}: {message}") from e


def make_hls_source(s: DaemonSettings) -> HlsSource:
    """The HLS follower of ``kind = "hls"`` (a fixed playlist URL) or ``"orcasound"`` (the
    node's ``latest.txt``, read again on stalls and failures to follow restarts)."""
    h = s.source.hls
    assert h is not None
    if s.source.kind == "orcasound":
        o = s.source.orcasound
        assert o is not None
        return orcasound_source(o, h)  # stop() also cancels a latest.txt request
    return HlsSource(h.url, None, h)


def make_events(
    s: DaemonSettings,
    stems: Sequence[str],
    publish_rate: int,
    clock: Callable[[int], int],
    publisher: Publisher,
) -> EventTap:
    """The event tap on the published stems (its folder checked like the archive's)."""
    check_directory(s.events.directory)
    p = s.publish
    calibration = None
    if p.sensitivity_db_re_1v_per_upa is not None:
        calibration = Calibration(p.sensitivity_db_re_1v_per_upa, p.gain_db, p.full_scale_volts)
    return EventTap(
        s.events,
        stems=stems,
        sample_rate=publish_rate,
        clock=clock,
        publish=publisher.send_json,
        model=os.path.basename(s.model.model or default_model_paths()[1]),
        calibration=calibration,
        sample_format=p.sample_format,
        min_free_mb=s.archive.min_free_mb,
    )
