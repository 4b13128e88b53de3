"""Event records: the body of an ``events`` message and of an ``events.jsonl`` line, and the
clip file names (``docs/protocol.md``, section "events")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from streamsep.events.detector import DetectorSettings, Event
from streamsep.net import protocol as proto
from streamsep.net.levels import Calibration

__all__ = ["EVENTS_TOPIC", "EventContext", "event_body", "utc_stamp", "utc_iso", "clip_name"]

EVENTS_TOPIC: Final = proto.EVENTS_TOPIC
"""ZeroMQ topic of the event messages."""


def utc_iso(time_ns: int) -> str:
    """``YYYY-mm-ddTHH:MM:SS.ffffffZ`` of a UTC time in ns since the epoch."""
    seconds, ns = divmod(time_ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ns // 1000:06d}Z"


def utc_stamp(time_ns: int) -> str:
    """``YYYYmmddTHHMMSS.ffffffZ`` (the archive's file-name stamp)."""
    seconds, ns = divmod(time_ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}.{ns // 1000:06d}Z"


def clip_name(node: str, first_ns: int, signal: str) -> str:
    """``[<node>_]YYYYmmddTHHMMSS.ffffffZ_<signal>.flac``, named by the clip's first sample."""
    prefix = f"{node}_" if node else ""
    return f"{prefix}{utc_stamp(first_ns)}_{signal}.flac"


@dataclass(frozen=True)
class EventContext:
    """What every event of a stream carries besides the detection."""

    clock: Callable[[int], int]
    """``clock(index) -> UTC ns`` of capture, at the detector's rate."""
    node: str
    model: str
    settings: DetectorSettings
    calibration: Calibration | None = None


def event_body(event: Event, ctx: EventContext, sequence: int) -> dict[str, Any]:
    """The JSON object of one event (without ``version``, which the encoder adds)."""
    start_ns, end_ns = ctx.clock(event.start_index), ctx.clock(event.end_index)
    peak_ns = ctx.clock(event.peak_index)
    db_re_1upa = None
    if ctx.calibration is not None:
        db_re_1upa = round(ctx.calibration.db_re_1upa(event.peak_level_dbfs), 3)
    return {
        "kind": "event",
        "id": f"{ctx.node + '_' if ctx.node else ''}{utc_stamp(start_ns)}",
        "sequence": sequence,
        "node": ctx.node,
        "sample_rate": event.sample_rate,
        "start_index": event.start_index,
        "end_index": event.end_index,
        "peak_index": event.peak_index,
        "start_time_ns": start_ns,
        "end_time_ns": end_ns,
        "peak_time_ns": peak_ns,
        "start_utc": utc_iso(start_ns),
        "end_utc": utc_iso(end_ns),
        "peak_utc": utc_iso(peak_ns),
        "duration_seconds": round(event.duration_seconds, 6),
        "active_seconds": event.active_seconds,
        "peak_score_db": event.peak_score_db,
        "peak_level_dbfs": event.peak_level_dbfs,
        "calibrated": ctx.calibration is not None,
        "peak_level_db_re_1upa": db_re_1upa,
        "band_hz": [event.band_low_hz, event.band_high_hz],
        "peak_hz": event.peak_hz,
        "model": ctx.model,
        "settings": ctx.settings.as_dict(),
    }
