"""What the daemon reports: its status snapshot (control ``status`` and the publisher's
``status`` messages) and its Prometheus metrics, read from the components' counters at that
moment (nothing is updated on the audio path for them).

Called on foreign threads (the control server's, the publisher's, a metrics request), so each
counter is read once, without locks (each is one machine word).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamsep.daemon.metrics import Metric
from streamsep.net.status import pipeline_status
from streamsep.version import __version__

if TYPE_CHECKING:
    from streamsep.daemon.supervisor import Daemon

__all__ = ["daemon_status", "daemon_metrics"]


def daemon_status(daemon: Daemon) -> dict[str, Any]:
    """JSON-able status of ``daemon``; see docs/daemon.md."""
    c = daemon.components
    # "version" is the protocol's (docs/protocol.md, section 10), set by the message layer:
    # the package's version goes under its own key, never over it.
    out: dict[str, Any] = {"state": daemon.state.value, "package_version": __version__}
    if c.pipeline is not None:
        out.update(pipeline_status(c.pipeline, None, daemon.started))
    out["capture_rate"] = c.sample_rate
    out["publish_rate"] = c.publish_rate
    out["samples_captured"] = c.samples_captured
    out["samples_published"] = c.samples_published
    lost = c.lost_by_cause()
    out["samples_lost_by_cause"] = lost
    # The pipeline's own count lags the source's (a gap counts once the analysis reads it).
    out["samples_lost"] = max(int(out.get("samples_lost", 0)), sum(lost.values()))
    out["end_to_end_latency_seconds"] = daemon.e2e_latency
    if c.device is not None:
        d = c.device.stats
        out["capture"] = {
            "connected": d.connected,
            "device": c.device.info.name if c.device.info else None,
            "reconnects": d.reconnects,
            "failures": d.failures,
            "last_error": d.last_error,
            "overflows": d.overflows,
            "lost_overflow": d.lost_overflow,
            "lost_capture_ring": d.lost_capture_ring,
            "lost_outage": d.lost_outage,
        }
    if c.file_source is not None:
        f = c.file_source
        out["file"] = {
            "path": str(f.path),
            "samples_read": f.samples_written,
            "samples_lost": f.samples_lost,
            "ended_early": f.error is not None,
            "error": None if f.error is None else str(f.error),
        }
    if c.hls is not None:
        h = c.hls.stats
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
    if c.archive is not None:
        a = c.archive.stats
        out["archive"] = {
            "files": a.files,
            "samples_written": a.samples_written,
            "samples_dropped": a.samples_dropped,
            "stopped": a.stopped,
        }
    if c.metrics is not None:
        out["metrics"] = c.metrics.stats.as_dict()
    if c.events is not None:
        out["events"] = c.events.status()
    if c.control is not None:
        out["control"] = c.control.health()
    return out


def daemon_metrics(daemon: Daemon) -> list[Metric]:
    """The Prometheus metrics of ``daemon`` (called on a metrics server thread)."""
    c = daemon.components
    m: list[Metric] = []

    def add(name: str, kind: str, text: str, value: float | None = None) -> Metric:
        metric = Metric(f"streamsep_{name}", kind, text)
        m.append(metric.add(value) if value is not None else metric)
        return metric

    counter, gauge = "counter", "gauge"
    add("info", gauge, "Build information.").add(1, version=__version__)
    state = add("state", gauge, "1 for the current daemon state.")
    current = daemon.state
    for s in type(current):
        state.add(1 if s is current else 0, state=s.value)
    text = "Capture timeline length (received + lost samples), at the capture rate."
    add("samples_captured_total", counter, text, c.samples_captured)
    text = "Samples per stem handed to the publisher, at the publish rate."
    add("samples_published_total", counter, text, c.samples_published)
    lost = add("samples_lost_total", counter, "Samples lost, by cause.")
    for cause, n in c.lost_by_cause().items():
        lost.add(n, cause=cause)
    p, d = c.pipeline, c.device.stats if c.device is not None else None
    pub = c.publisher.stats() if "publisher" in c.running and c.publisher else None
    if pub is not None:
        lost.add(pub["queue_dropped_samples"], cause="publish_queue")
    if d is not None:
        add("input_overflows_total", counter, "Device input overflows.", d.overflows)
        add("reconnects_total", counter, "Capture restarts after device loss.", d.reconnects)
        add("capture_failures_total", counter, "Times the device was lost.", d.failures)
        add("capture_up", gauge, "1 while audio flows.", 1 if d.connected else 0)
    if c.file_source is not None:
        text = "1 when the input file ended before its header's length (truncated, corrupt)."
        add("file_ended_early", gauge, text, 1 if c.file_source.error is not None else 0)
    h = c.hls.stats if c.hls is not None else None
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
        text = "Subscriptions open now."
        add("active_subscriptions", gauge, text, pub["active_subscriptions"])
        text = "Subscriptions refused (not a published topic)."
        add("publish_subscriptions_rejected_total", counter, text, pub["subscriptions_rejected"])
    if c.archive is not None:
        depth.add(c.archive.queue_samples, queue="archive_samples")
    if p is not None:
        text = "Wall time spent in the model."
        add("model_seconds_total", counter, text, p.stats.model_seconds)
        add("model_blocks_total", counter, "Model blocks run.", p.stats.blocks)
        text = "Input samples that were not finite (NaN, Inf): replaced by silence, flagged."
        add("samples_nonfinite_total", counter, text, p.stats.samples_nonfinite)
        text = "Input samples clipped to the engine's bound (|x| <= 10)."
        add("samples_clipped_total", counter, text, p.stats.samples_clipped)
        text = "Model blocks whose output was not finite (masks replaced by 1/n_stems)."
        add("model_blocks_replaced_total", counter, text, p.stats.blocks_replaced)
        text = "Mean model time per block over the last few seconds."
        add("model_seconds_per_block", gauge, text, daemon.model_seconds_per_block)
        text = "Processing seconds per second of audio, last few seconds (< 1 keeps up)."
        add("real_time_factor", gauge, text, daemon.real_time_factor)
        add("algorithmic_latency_seconds", gauge, "Engine latency.", p.latency_seconds)
    text = "From the capture of the newest sample handed to the publisher to then."
    add("end_to_end_latency_seconds", gauge, text, daemon.e2e_latency)
    if c.archive is not None:
        a = c.archive.stats
        add("archive_files_total", counter, "Archive files completed.", a.files)
        text = "Bytes of completed archive files."
        add("archive_bytes_total", counter, text, a.bytes_written)
        add("archive_samples_written_total", counter, "Samples archived.", a.samples_written)
        text = "Samples not archived (queue full, disk guard, write errors)."
        add("archive_samples_dropped_total", counter, text, a.samples_dropped)
        text = "1 while the disk-space guard or write errors stop archiving."
        add("archive_stopped", gauge, text, 1 if a.stopped else 0)
        add("archive_free_bytes", gauge, "Free space at the last check.", a.free_bytes)
    if c.metrics is not None:
        text = "Metrics server connections, by outcome."
        conns = add("metrics_connections_total", counter, text)
        for outcome, n in c.metrics.stats.as_dict().items():
            conns.add(n, outcome=outcome)
    if c.control is not None:
        health = c.control.health()
        add("control_up", gauge, "1 while the control endpoint serves.", int(health["alive"]))
        text = "Control requests answered (errors included)."
        add("control_requests_total", counter, text, health["requests"])
        add("control_errors_total", counter, "Control error replies.", health["errors"])
    return m
