"""The daemon's event tap: runs the detector on every output chunk, publishes and logs the
events, keeps their clips and notifies.

:meth:`EventTap.write` runs on the pipeline's synthesis thread, on the chunks handed to the
publisher (after the output resampler: the publish rate, the published samples), before the
chunk is queued for publishing, so an event's message precedes the audio that ended it. The
work there is the detector (one FFT per window and stem), a copy of the chunk into the clip
history and queue puts; files, the exec hook and HTTP run on their own threads
(:mod:`streamsep.events.store`, :mod:`streamsep.events.webhook`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamsep.engine.pipeline import OutputChunk
from streamsep.errors import ConfigError
from streamsep.events.clips import ClipAssembler
from streamsep.events.detector import Detector
from streamsep.events.record import EVENTS_TOPIC, EventContext, event_body
from streamsep.events.settings import EventsSettings
from streamsep.events.store import DiskGuard, EventStore
from streamsep.events.webhook import WebhookNotifier
from streamsep.net.levels import Calibration

__all__ = ["EventTap"]

_LOGGER = logging.getLogger(__name__)


class EventTap:
    """Detector, event log, clips and notifications of one daemon stream.

    Parameters
    ----------
    settings : EventsSettings
    stems : sequence of str
        The model's stems, in ``OutputChunk.stems`` order.
    sample_rate : int
        Rate of the chunks (the publish rate), Hz.
    clock : callable
        ``clock(index) -> UTC ns`` of capture at ``sample_rate``.
    publish : callable, optional
        ``publish(topic, body)``: queues a JSON message; must not block (its result is
        ignored).
    model : str
        The model's name (carried by every event).
    calibration : Calibration, optional
        Adds ``peak_level_db_re_1upa``.
    sample_format : str
        The publisher's sample format (clips store the same values).
    min_free_mb : float
        The disk guard's threshold (the archive's ``min_free_mb``).

    Raises
    ------
    ConfigError
        If a configured stem is not one of the model's.
    """

    def __init__(
        self,
        settings: EventsSettings,
        *,
        stems: Sequence[str],
        sample_rate: int,
        clock: Callable[[int], int],
        publish: Callable[[str, dict[str, Any]], object] | None = None,
        model: str = "",
        calibration: Calibration | None = None,
        sample_format: str = "float32",
        min_free_mb: float = 1024.0,
        disk_free: Callable[[Path], int] | None = None,
    ) -> None:
        self.settings = settings
        stems = list(stems)
        for key in ("orca_stem", "noise_stem"):
            name = getattr(settings, key)
            if name and name not in stems:
                raise ConfigError(f"events.{key}: the model has no stem {name!r} (stems: {stems})")
        self._orca = stems.index(settings.orca_stem)
        self._noise = stems.index(settings.noise_stem) if settings.noise_stem else None
        self.sample_rate = sample_rate
        self.detector = Detector(settings.detector, sample_rate)
        self.context = EventContext(clock, settings.node, model, settings.detector, calibration)
        self._publish = publish
        self.directory = Path(settings.directory)
        self.store = EventStore(
            self.directory,
            sample_rate=sample_rate,
            sample_format=sample_format,
            node=settings.node,
            guard=DiskGuard(self.directory, min_free_mb, disk_free),
            queue_events=settings.queue_events,
            exec_command=settings.exec_command,
            exec_timeout_seconds=settings.exec_timeout_seconds,
        )
        self.clips: ClipAssembler | None = None
        if settings.clips:
            self.clips = ClipAssembler(
                ("mix", settings.orca_stem),
                sample_rate,
                settings.pre_roll_seconds,
                settings.post_roll_seconds,
                settings.max_clip_seconds,
                self.store.put_clip,
            )
        self.webhook = (
            WebhookNotifier(settings.webhook, settings.node) if settings.webhook.url else None
        )
        self.events = 0
        """Events detected so far."""

    def start(self) -> None:
        """Start the writer and webhook threads."""
        self.store.start(self.context.clock)
        if self.webhook is not None:
            self.webhook.start()
        _LOGGER.info(
            "events: detecting on %s in %g-%g Hz, log %s",
            self.settings.orca_stem,
            self.settings.detector.band_low_hz,
            self.settings.detector.band_high_hz,
            self.store.log_path,
        )

    def write(self, chunk: OutputChunk) -> None:
        """Score one output chunk (called on the synthesis thread; never blocks)."""
        orca = chunk.stems[self._orca]
        noise = chunk.stems[self._noise] if self._noise is not None else None
        if self.clips is not None:
            self.clips.add(chunk.start_index, (chunk.mix, orca), self.detector.open_start_index)
        found = self.detector.feed(chunk.start_index, orca, noise)
        if chunk.end_of_stream:
            found += self.detector.flush()
        for event in found:
            self.events += 1
            body = event_body(event, self.context, self.events - 1)
            if self.clips is not None:
                first = max(0, event.start_index - self.clips.pre_roll)
                body["clip"] = {
                    "first_index": first,
                    "end_index": min(
                        event.end_index + self.clips.post_roll, first + self.clips.max_clip
                    ),
                }
                self.clips.event(body["id"], event.start_index, event.end_index)
            if self._publish is not None:
                self._publish(EVENTS_TOPIC, body)
            self.store.put_event(body)
            if self.webhook is not None:
                self.webhook.notify(body)
            _LOGGER.info(
                "event %s: %s to %s, peak score %.1f dB",
                *(body["id"], body["start_utc"], body["end_utc"], event.peak_score_db),
            )
        if chunk.end_of_stream and self.clips is not None:
            self.clips.flush()

    def close(self) -> None:
        """Flush the writer (clips and log) and stop the threads."""
        if self.clips is not None:
            self.clips.flush()
        self.store.close()
        if self.webhook is not None:
            self.webhook.close()

    def status(self) -> dict[str, Any]:
        """Counters for the daemon's status."""
        s = self.store.stats
        out: dict[str, Any] = {
            "events": self.events,
            "events_logged": s.events_logged,
            "events_not_logged": s.events_not_logged,
            "clips_written": s.clips_written,
            "clips_dropped": s.clips_dropped,
            "exec_failures": s.exec_failures,
            "disk_stopped": self.store.guard.stopped,
        }
        if self.webhook is not None:
            w = self.webhook.stats
            out["webhook"] = {
                "sent": w.sent,
                "failed": w.failed,
                "suppressed": w.suppressed,
                "dropped": w.dropped,
            }
        return out
