"""The daemon with an HLS source, end to end: ``python -m streamsep.cli.daemon run`` as a
subprocess follows playlists served by a local HTTP server (127.0.0.1 only) from real Orcasound
segments, and a ZeroMQ subscriber checks what it publishes: a growing live playlist arrives
exactly as one continuous decode; an Orcasound node's missing segment, stall and restart become
gaps with exact counts while the daemon stays up and SIGTERM still drains and exits 0; a
malformed playlist and corrupt segments are logged gaps, not a crash; a server trickling its
answers holds neither the start-up probe past its deadline nor SIGTERM (exit within 5 s, in
the probe and while running)."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import numpy as np
import pytest
import soundfile as sf

from streamsep.net.control import request
from streamsep.net.subscribe import Chunk, Subscriber

from ._daemon import DaemonProcess, toml_text, unexpected_tracebacks, write_params
from ._net import free_tcp_endpoint
from .test_hls import (
    EXTINF,
    RATE,
    SEG,
    SEG_SAMPLES,
    T0_NS,
    _check_stream,
    _contiguous,
    _decode,
    _m3u8,
    _Server,
    server,
)
from .test_hls_fetch import HostileServer, hostile

__all__ = ["server", "hostile"]  # fixtures

pytestmark = pytest.mark.timeout(120)

FAST_RETRY = {"reconnect_seconds": 0.05, "reconnect_max_seconds": 0.2}
STEMS = ["mix", "orca_vocals"]


def _wait(daemon: DaemonProcess, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until truthy; fail after ``timeout`` s or as soon as the daemon exits."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if daemon.process.poll() is not None:
            raise AssertionError(f"daemon exited ({daemon.process.returncode}):\n{daemon.log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)
    return value


class _Run:
    """A daemon subprocess with an HLS ``[source]``, a subscriber to ``mix`` and
    ``orca_vocals`` read on a thread, metrics and control on local ports."""

    def __init__(self, folder: Path, source: dict[str, Any], archive: bool) -> None:
        params = write_params(folder, RATE)  # passthrough at 48 kHz: mix is the source exactly
        self.folder = folder
        self.endpoint = free_tcp_endpoint()
        self.control = free_tcp_endpoint()
        config = folder / "daemon.toml"
        config.write_text(
            toml_text(
                {
                    "source": {**source, **FAST_RETRY},
                    "model": {"params": params.name, "model": "passthrough"},
                    "publish": {
                        "endpoints": [self.endpoint],
                        "levels_seconds": 0,
                        "status_seconds": 0,
                        "hwm": 1_000_000,
                        "queue_chunks": 100_000,
                    },
                    "control": {"enabled": True, "endpoint": self.control},
                    "metrics": {"enabled": True, "port": 0},
                    "archive": {"enabled": archive, "directory": "archive"},
                    "logging": {"level": "info", "timestamps": True},
                }
            )
        )
        self.subscriber = Subscriber(self.endpoint, STEMS, hwm=1_000_000)
        self.chunks: dict[str, list[Chunk]] = {stem: [] for stem in STEMS}
        self.daemon = DaemonProcess(config, dict(os.environ), folder / "daemon.log")
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        port = int(self.daemon.wait_log(r"metrics: http://127\.0\.0\.1:(\d+)/metrics").group(1))
        self.metrics_url = f"http://127.0.0.1:{port}/metrics"
        # Segments are offered only once the subscriber is connected (PUB drops before that).
        self.wait(lambda: self.metric("streamsep_subscriptions") >= len(STEMS), 15, "subscribed")

    def _read(self) -> None:
        while not self._stop.is_set() and not self.subscriber.ended:
            message = self.subscriber.recv(0.1)
            if isinstance(message, Chunk):
                self.chunks[message.stem].append(message)

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        return _wait(self.daemon, predicate, timeout, what)

    def metric(self, name: str) -> float:
        with urlopen(self.metrics_url, timeout=5) as response:
            text = response.read().decode()
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else -1.0

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = request(self.control, {"cmd": "status"}, timeout=10)["status"]
        return status

    def wait_ended(self, timeout: float) -> None:
        """The end-of-stream messages of every stem arrive."""
        self._reader.join(timeout)
        assert not self._reader.is_alive(), f"no end of stream:\n{self.daemon.log()}"

    def stream(self, stem: str) -> tuple[np.ndarray, list[Chunk]]:
        """The stem's samples (contiguous from index 0: nothing may be missing), its chunks."""
        chunks = self.chunks[stem]
        assert chunks and chunks[0].first_sample == 0
        return _contiguous(chunks), chunks

    def close(self) -> None:
        self._stop.set()
        self.daemon.close()
        self._reader.join(5)
        self.subscriber.close()


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Callable[..., _Run]]:
    runs: list[_Run] = []

    def make(source: dict[str, Any], *, archive: bool = False) -> _Run:
        runs.append(_Run(tmp_path, source, archive))
        return runs[-1]

    yield make
    for run in runs:
        run.close()


def _archive_name(utc_ns: int) -> str:
    stamp = datetime.fromtimestamp(utc_ns // 10**9, tz=timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}.{utc_ns % 10**9 // 1000:06d}Z.flac"


def _warnings(log: str) -> list[str]:
    return re.findall(r"^\S+ \S+ (?:WARNING|ERROR) streamsep[\w.]*: (.*)$", log, re.MULTILINE)


# -- (a) a growing live playlist, decoded continuously --------------------------------------


def test_daemon_follows_a_growing_live_playlist_continuously(
    server: _Server, make_run: Callable[..., _Run]
) -> None:
    names = ["live000.ts", "live001.ts", "live002.ts"]
    for name in names:
        server.set(f"/live/{name}", SEG[name])
    entries = [(name, EXTINF[name]) for name in names]
    server.set("/live/live.m3u8", _m3u8([]))  # on air, nothing segmented yet
    # No segment to probe: the daemon starts with the configured format (mono is duplicated).
    run = make_run({"kind": "hls", "url": server.url("/live/live.m3u8"), "sample_rate": RATE,
                    "channels": 2})  # fmt: skip
    try:
        started = time.monotonic()
        for k in range(3):  # the playlist grows as the daemon consumes it
            server.set("/live/live.m3u8", _m3u8(entries[: k + 1]))
            server.wait_hits(f"/live/{names[k]}", 1)
        assert run.daemon.process.poll() is None
        # The stream ends (EXT-X-ENDLIST of a fixed URL): the daemon drains and exits 0.
        server.set("/live/live.m3u8", _m3u8(entries, endlist=True))
        code = run.daemon.process.wait(30)
        elapsed = time.monotonic() - started
        run.wait_ended(10)
        mix, chunks = run.stream("mix")
        vocals, _ = run.stream("orca_vocals")
        log = run.daemon.log()
    finally:
        run.close()
    reference = _decode(b"".join(SEG[name] for name in names), 2)
    print(
        f"\n{mix.shape[0]} samples ({mix.shape[0] / RATE:.3f} s) in {len(chunks)} chunks, "
        f"{elapsed:.2f} s; orca_vocals max error {np.abs(vocals - reference).max():.2e}"
    )
    assert code == 0, log
    assert "end of stream" in log
    assert reference.shape[0] == 470016 + 2 * 480256
    np.testing.assert_array_equal(mix, reference)  # bit-exact: one decoder across segments
    np.testing.assert_allclose(vocals, reference, atol=2e-6)
    assert not any(c.gap or c.header.filled_samples for c in chunks)
    counts = run.daemon.final_counts()
    assert counts["samples_captured"] == counts["samples_published"] == reference.shape[0]
    assert counts["samples_lost"] == 0
    assert unexpected_tracebacks(log) == []


# -- (b) Orcasound: a 404, a stall, a node restart; SIGTERM ---------------------------------


def test_daemon_orcasound_404_stall_restart_are_gaps_and_sigterm_drains(
    server: _Server, make_run: Callable[..., _Run]
) -> None:
    node, ts_a, ts_b = "rpi_orcasound_lab", 1_700_000_000, 1_700_000_100
    base = f"/bucket/{node}"
    content_a = ["live001.ts", "live002.ts", None, "live001.ts"]  # live002.ts of A: 404
    for k, name in enumerate(content_a):
        server.set(f"{base}/hls/{ts_a}/live{k:03d}.ts", None if name is None else SEG[name])
    entries_a = [(f"live{k:03d}.ts", 10.005333) for k in range(4)]
    server.set(f"{base}/hls/{ts_a}/live.m3u8", _m3u8(entries_a[:2], pdt_ns=T0_NS))
    # latest.txt is missing at first: the node is offline when the daemon starts.
    run = make_run({
        "kind": "orcasound", "node": node, "base_url": server.url("/bucket"),
        "sample_rate": RATE, "channels": 2, "live_edge_segments": 2,
        "stall_target_durations": 2, "segment_retries": 2,
    }, archive=True)  # fmt: skip
    outage_ns = 30 * 10**9
    t_b = T0_NS + 4 * 10_005_333_000 + outage_ns  # the new stream starts 30 s after A ended
    try:
        status = run.wait(lambda: run.status(), 10, "control status")
        assert status["state"] == "reconnecting" and not status["hls"]["connected"]
        assert run.metric("streamsep_capture_up") == 0
        server.set(f"{base}/latest.txt", f"{ts_a}\n".encode())  # the node comes up
        server.wait_hits(f"{base}/hls/{ts_a}/live001.ts", 1)
        server.set(f"{base}/hls/{ts_a}/live.m3u8", _m3u8(entries_a, pdt_ns=T0_NS))
        server.wait_hits(f"{base}/hls/{ts_a}/live003.ts", 1)
        assert server.count(f"{base}/hls/{ts_a}/live002.ts") == 2  # tried twice, then a gap
        run.wait(lambda: run.status()["hls"]["stalls"], 10, "a stall")
        latest_reads = server.count(f"{base}/latest.txt")
        server.wait_hits(f"{base}/latest.txt", latest_reads + 2)  # asked again while stalled
        # The node restarts: a new folder, then latest.txt names it.
        server.set(f"{base}/hls/{ts_b}/live000.ts", SEG["live002.ts"])
        server.set(f"{base}/hls/{ts_b}/live001.ts", SEG["live001.ts"])
        entries_b = [("live000.ts", 10.005333), ("live001.ts", 10.005333)]
        server.set(f"{base}/hls/{ts_b}/live.m3u8", _m3u8(entries_b, pdt_ns=t_b))
        server.set(f"{base}/latest.txt", f"{ts_b}\n".encode())
        status = run.wait(
            lambda: (s := run.status())["hls"]["segments"] == 5 and s, 15, "the new stream"
        )
        total = 5 * SEG_SAMPLES + SEG_SAMPLES + outage_ns * RATE // 10**9
        run.wait(lambda: run.metric("streamsep_samples_published_total") >= total - RATE, 15,
                 "the new stream published")  # fmt: skip
        assert run.daemon.process.poll() is None  # it stays up through all of it
        assert status["state"] == "running" and status["hls"]["connected"]
        metrics = {
            name: run.metric(name)
            for name in ("streamsep_capture_up", "streamsep_hls_restarts_total",
                         "streamsep_hls_stalls_total", "streamsep_hls_segments_lost_total")
        }  # fmt: skip
        code, exit_seconds = run.daemon.terminate()
        run.wait_ended(10)
        mix, chunks = run.stream("mix")
        log = run.daemon.log()
    finally:
        run.close()
    first = _decode(SEG["live001.ts"] + SEG["live002.ts"], 2)
    after_404 = _decode(SEG["live001.ts"], 2)  # a fresh decoder after a gap
    restarted = _decode(SEG["live002.ts"] + SEG["live001.ts"], 2)
    outage = outage_ns * RATE // 10**9
    gaps = _check_stream(chunks, mix, [first, SEG_SAMPLES, after_404, outage, restarted])
    print(f"\ngaps (index, samples): {gaps}; SIGTERM -> exit {code} in {exit_seconds:.2f} s")
    assert gaps == [(960512, 480256), (1921024, 1440000)]
    assert all(c.gap for c in chunks if c.header.filled_samples)
    assert code == 0 and exit_seconds < 10, log
    counts = run.daemon.final_counts()
    assert counts["samples_captured"] == counts["samples_published"] == mix.shape[0] == total
    assert counts["samples_lost"] == 480256 + 1440000
    h = status["hls"]
    assert (h["gaps"], h["samples_lost"], h["segment_failures"]) == (2, 1920256, 1)
    assert (h["restarts"], h["segments_lost"]) == (1, 1)
    # Stream B does not grow either: it stalls in turn 2 s after its last segment, which a
    # loaded machine may reach before the metrics are read; the status above was taken at once.
    assert h["stalls"] == 1 and metrics.pop("streamsep_hls_stalls_total") in (1, 2)
    assert metrics == {
        "streamsep_capture_up": 1, "streamsep_hls_restarts_total": 1,
        "streamsep_hls_segments_lost_total": 1,
    }  # fmt: skip
    # The clock: sample 0 at A's program date-time, re-anchored at B's.
    restart = gaps[1][0] + gaps[1][1]
    for c in chunks:
        t0, i0 = (t_b, restart) if c.first_sample >= restart else (T0_NS, 0)
        assert c.capture_time_ns == t0 + (c.first_sample - i0) * 10**9 // RATE
    # The raw archive (through the daemon's tee): one file per stretch between gaps, named by
    # the UTC of its first sample, holding the decoded audio (24-bit).
    files = sorted((run.folder / "archive").glob("*.flac"))
    stamps = [(T0_NS, 0), (T0_NS + 1440768 * 10**9 // RATE, 1440768), (t_b, restart)]
    assert [p.name for p in files] == [_archive_name(t) for t, _ in stamps]
    for path, (_, start), part in zip(files, stamps, [first, after_404, restarted], strict=True):
        archived, rate = sf.read(str(path), dtype="float32", always_2d=True)
        assert rate == RATE and archived.shape == part.shape
        np.testing.assert_allclose(archived, np.clip(part, -1, 1 - 2**-23), atol=2**-23)
        np.testing.assert_array_equal(part, mix[start : start + part.shape[0]])
    # Each fault is logged once, none escapes as a traceback.
    warnings = _warnings(log)
    # A 404 status, not the digits of a random port such as :40479.
    offline = [m for m in warnings if "latest.txt" in m and re.search(r"(?<![\d:])404(?!\d)", m)]
    assert len(offline) == 2, offline  # the probe fell back to the settings; the follower waited
    assert "cannot probe" in offline[0] and "using 48000 Hz, 2 channel(s)" in offline[0]
    assert "retrying" in offline[1]
    assert sum("live002.ts" in m for m in warnings) == 1
    assert sum("stalled" in m for m in _warnings(log[: log.index("new stream")])) == 1
    assert sum("new stream" in m for m in warnings) == 1
    assert unexpected_tracebacks(log) == []


# -- (c) a malformed playlist, garbage and truncated segments -------------------------------


def test_daemon_survives_malformed_playlist_and_corrupt_segments(
    server: _Server, make_run: Callable[..., _Run]
) -> None:
    rng = np.random.default_rng(7)
    garbage = b"GARBAGE!" + rng.integers(0, 256, 150_000, dtype=np.uint8).tobytes()
    truncated = SEG["live001.ts"][: len(SEG["live001.ts"]) * 6 // 10]
    for k, body in enumerate(
        [SEG["live001.ts"], SEG["live002.ts"], SEG["live001.ts"], garbage, truncated,
         SEG["live002.ts"]]
    ):  # fmt: skip
        server.set(f"/w/seg{k}.ts", body)
    entries = [(f"seg{k}.ts", 10.005333) for k in range(6)]
    server.set("/w/live.m3u8", _m3u8([]))
    run = make_run({"kind": "hls", "url": server.url("/w/live.m3u8"), "sample_rate": RATE,
                    "channels": 2, "live_edge_segments": 2})  # fmt: skip
    try:
        server.set("/w/live.m3u8", _m3u8(entries[:2]))  # a sliding window of 2 segments
        server.wait_hits("/w/seg1.ts", 1)
        # The server answers an HTML error page with status 200 for a while...
        server.set("/w/live.m3u8", b"<html><body>503 Service Unavailable</body></html>")
        polled = server.count("/w/live.m3u8")
        server.wait_hits("/w/live.m3u8", polled + 4)
        during = run.status()
        # ...meanwhile the window slid past seg2; seg3 is garbage, seg4 truncated.
        server.set("/w/live.m3u8", _m3u8(entries[3:], media_sequence=3))
        server.wait_hits("/w/seg5.ts", 1)
        partial = _decode(truncated, 2)
        total = 6 * SEG_SAMPLES
        run.wait(lambda: run.metric("streamsep_samples_published_total") >= total - RATE, 15,
                 "everything published")  # fmt: skip
        after = run.status()
        assert run.daemon.process.poll() is None  # still up
        code, _ = run.daemon.terminate()
        run.wait_ended(10)
        mix, chunks = run.stream("mix")
        log = run.daemon.log()
    finally:
        run.close()
    assert during["state"] == "reconnecting" and not during["hls"]["connected"]
    assert "not an m3u8 playlist" in during["hls"]["last_error"]
    assert after["state"] == "running" and after["hls"]["playlist_failures"] >= 4
    assert after["hls"]["segment_failures"] == 1
    expected = [
        _decode(SEG["live001.ts"] + SEG["live002.ts"], 2),
        2 * SEG_SAMPLES,  # seg2 unseen + seg3 garbage
        partial,
        SEG_SAMPLES - partial.shape[0],  # seg4's missing end
        _decode(SEG["live002.ts"], 2),
    ]
    gaps = _check_stream(chunks, mix, expected)
    print(f"\ngaps (index, samples): {gaps}")
    assert gaps == [(960512, 960512), (1921024 + partial.shape[0], 480256 - partial.shape[0])]
    assert code == 0, log
    warnings = _warnings(log)
    assert sum("not an m3u8 playlist" in m for m in warnings) == 1  # once, not per poll
    assert sum("left the playlist" in m for m in warnings) == 1
    assert sum("seg3.ts" in m and "neither MPEG-TS" in m for m in warnings) == 1
    assert sum("seg4.ts" in m and "decoded 286720 of 480256" in m for m in warnings) == 1
    assert unexpected_tracebacks(log) == []


# -- (d) a hostile server: SIGTERM in every state, the probe's deadline ---------------------


def _hostile_daemon(folder: Path, source: dict[str, Any]) -> DaemonProcess:
    """A daemon whose ``[source]`` is ``source``, publishing to a port nobody reads."""
    params = write_params(folder, RATE)
    config = folder / "daemon.toml"
    config.write_text(
        toml_text(
            {
                "source": {**source, **FAST_RETRY},
                "model": {"params": params.name, "model": "passthrough"},
                "publish": {"endpoints": [free_tcp_endpoint()], "status_seconds": 0},
                "logging": {"level": "info", "timestamps": True},
            }
        )
    )
    return DaemonProcess(config, dict(os.environ), folder / "daemon.log")


@pytest.mark.parametrize(
    "source",
    [
        {"kind": "hls", "url": "/trickle/live.m3u8"},
        {"kind": "hls", "url": "/trickle/live.m3u8", "sample_rate": RATE, "channels": 2},
        # latest.txt under its 4 KiB limit: a larger Content-Length is refused at once, and with
        # the format configured the daemon would start without a probe (a race with the SIGTERM)
        {
            "kind": "orcasound",
            "base_url": "/trickle-small/bucket",
            "sample_rate": RATE,
            "channels": 2,
        },
    ],
    ids=["hls-probed-format", "hls-configured-format", "orcasound-latest-txt"],
)
def test_daemon_answers_sigterm_during_a_trickling_startup_probe(
    hostile: HostileServer, tmp_path: Path, source: dict[str, Any]
) -> None:
    # The server trickles a byte every 0.2 s and the deadline is 60 s: only the SIGTERM can
    # end the probe (the playlist, or Orcasound's latest.txt, before any playlist).
    key = "url" if "url" in source else "base_url"
    source = {**source, key: hostile.url(source[key]), "timeout_seconds": 60}
    daemon = _hostile_daemon(tmp_path, source)
    try:
        assert hostile.requested.wait(30), daemon.log()  # the daemon is in its probe now
        code, seconds = daemon.terminate(10)
        log = daemon.log()
    finally:
        daemon.close()
    print(f"\nSIGTERM during the probe -> exit {code} in {seconds:.2f} s")
    assert code == 0 and seconds < 5, log
    assert "stopped during start-up" in log and "running:" not in log
    assert unexpected_tracebacks(log) == []


def test_daemon_probe_has_a_deadline_and_sigterm_is_answered_while_running(
    hostile: HostileServer, tmp_path: Path
) -> None:
    source = {"kind": "hls", "url": hostile.url("/trickle/live.m3u8"), "timeout_seconds": 1,
              "sample_rate": RATE, "channels": 2}  # fmt: skip
    daemon = _hostile_daemon(tmp_path, source)
    try:
        assert hostile.requested.wait(30), daemon.log()
        probing = time.monotonic()
        daemon.wait_log(r"running: ", 10)
        started = time.monotonic() - probing  # the probe's 1 s deadline, then the start
        # The follower keeps trying (1 s deadline each, back-off between): SIGTERM while one
        # of its requests trickles.
        _wait(daemon, lambda: hostile.count("/trickle/live.m3u8") >= 3, 20, "a third request")
        code, seconds = daemon.terminate(10)
        log = daemon.log()
    finally:
        daemon.close()
    print(f"\nrunning {started:.2f} s after the probe began; SIGTERM -> exit in {seconds:.2f} s")
    assert code == 0 and seconds < 5, log
    assert re.search(r"cannot probe .*no complete response within 1 s.*using 48000 Hz", log)
    assert started < 5
    assert "stopped: samples_captured=0" in log
    assert unexpected_tracebacks(log) == []
