"""Status snapshot of a running pipeline and publisher (what the control endpoint's ``status``
returns, for ``streamsep stream`` and the daemon alike)."""

from __future__ import annotations

import time
from typing import Any

from streamsep.engine.pipeline import Pipeline
from streamsep.net.publish import Publisher

__all__ = ["pipeline_status"]


def pipeline_status(
    pipeline: Pipeline, publisher: Publisher | None, started: float
) -> dict[str, Any]:
    """A JSON-able status snapshot (what the control endpoint's ``status`` returns).

    Parameters
    ----------
    pipeline : Pipeline
        Its counters are read without locking (each is one machine word).
    publisher : Publisher, optional
        Adds the publisher's counters.
    started : float
        ``time.monotonic()`` at stream start.

    Returns
    -------
    dict
        ``uptime_seconds``; ``samples_in`` / ``samples_out`` at the model rate; ``samples_lost``
        at the source rate; ``latency_samples`` / ``latency_seconds``; ``real_time_factor`` =
        processing seconds per second of audio (< 1 keeps up); ``queue_depths``; ``model``;
        ``publisher``.
    """
    stats = pipeline.stats
    rate = pipeline.params.sample_rate
    audio_seconds = stats.samples_in / rate
    busy = stats.model_seconds + stats.synthesis_seconds
    jobs, results = pipeline.queue_depths
    status: dict[str, Any] = {
        "uptime_seconds": round(time.monotonic() - started, 3),
        "sample_rate": rate,
        "samples_in": stats.samples_in,
        "samples_out": stats.samples_out,
        "samples_lost": stats.samples_lost,
        "ring_overrun_samples": pipeline.ring.overrun_samples,
        "latency_samples": pipeline.latency_samples,
        "latency_seconds": round(pipeline.latency_seconds, 6),
        "real_time_factor": round(busy / audio_seconds, 6) if audio_seconds else None,
        "queue_depths": {"ring": pipeline.ring.available, "jobs": jobs, "results": results},
        "model": repr(pipeline.model),
        "stems": list(pipeline.params.instrument_list),
    }
    if publisher is not None:
        status["publisher"] = publisher.stats()
    return status
