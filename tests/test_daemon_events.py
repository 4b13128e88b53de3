"""Orca activity events through the daemon: a file source and the JACK source play tone bursts
(with a passthrough model the orca stem is the mix); a subscriber receives each event within
1 s after its end, the clip files equal the published mix and orca stem over their sample
range exactly (int16 publishing: the same integers), the webhook reaches a local HTTP server
once for a burst of events (rate limit), a dead webhook delays nothing and loses no event (all
in the log), and ``streamsep detect`` over a folder gives the daemon's events."""

from __future__ import annotations

import csv
import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from streamsep.cli.main import main as cli_main
from streamsep.net.subscribe import Chunk, JsonMessage, Subscriber

from ._daemon import DaemonProcess, toml_text, unexpected_tracebacks, write_params
from ._events import HookServer, bursts
from ._net import free_tcp_endpoint
from .jack import JACK_RATE, Injector, JackServer, jack_server, table_signal

__all__ = ["jack_server"]  # a fixture

pytestmark = pytest.mark.timeout(180)

QUIET_PUBLISH = {"levels_seconds": 0, "status_seconds": 0, "hwm": 100000, "sample_format": "int16"}
EVENTS = {
    "enabled": True,
    "directory": "events",
    "node": "testnode",
    "merge_gap_seconds": 0.2,  # an event is decided this long after its end
    "pre_roll_seconds": 0.5,
    "post_roll_seconds": 0.5,
}


@dataclass
class Received:
    """What a subscriber got: audio per stem, events with their arrival times (UTC ns)."""

    audio: dict[str, list[Chunk]] = field(default_factory=dict)
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def take(self, message: Chunk | JsonMessage | None) -> None:
        if isinstance(message, JsonMessage):
            if message.topic == "events":
                self.events.append((time.time_ns(), message.body))
        elif message is not None:
            self.audio.setdefault(message.stem, []).append(message)

    def samples(self, stem: str) -> tuple[int, np.ndarray]:
        """First index and the int16 values received on ``stem`` (gaps asserted absent)."""
        chunks = self.audio[stem]
        for a, b in zip(chunks, chunks[1:], strict=False):
            assert b.first_sample == a.end_sample and b.missing == 0
        x = np.concatenate([c.samples for c in chunks])
        return chunks[0].first_sample, np.rint(x * 32767).astype(np.int16)


def _receive(sub: Subscriber, received: Received, until: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        received.take(sub.recv(0.05))


def _log(folder: Path) -> list[dict[str, Any]]:
    path = folder / "events" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check_delays_and_clips(received: Received, folder: Path) -> list[dict[str, Any]]:
    """Every event arrived within 1 s after its end; every clip equals the published audio."""
    assert received.events, "no event received"
    delays = [(arrived_ns - body["end_time_ns"]) / 1e9 for arrived_ns, body in received.events]
    assert max(delays) <= 1.0, f"events arrived {delays} s after their ends"
    log = _log(folder)
    logged = [r for r in log if r["kind"] == "event"]
    assert [r["id"] for r in logged] == [b["id"] for _, b in received.events]
    assert logged == [b for _, b in received.events]
    clips = [r for r in log if r["kind"] == "clip"]
    checked = 0
    for clip in clips:
        for stem, name in clip["files"].items():
            first, published = received.samples(stem)
            a = clip["first_index"] - first
            if a < 0:
                continue  # before this subscriber joined
            data, rate = sf.read(folder / "events" / name, dtype="int16", always_2d=True)
            assert rate == clip["sample_rate"] and data.shape[0] == clip["n_samples"]
            np.testing.assert_array_equal(data, published[a : a + clip["n_samples"]])
            checked += 1
    assert checked >= 2, "no clip could be compared"
    event = logged[0]
    pre_roll = round(0.5 * event["sample_rate"])  # cut at the stream start (section 13)
    assert clips[0]["first_index"] == max(0, event["start_index"] - pre_roll)
    return logged


def test_file_source_events_clips_webhook_and_detect(tmp_path: Path) -> None:
    rate = 16000
    spans = [(2.0, 3.0), (5.0, 5.8), (8.0, 9.5)]
    audio = bursts(rate, 11.0, spans, channels=2)
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "bursts.wav", audio, rate, subtype="FLOAT")
    params = write_params(tmp_path, rate)
    endpoint = free_tcp_endpoint()
    server = HookServer()
    config = tmp_path / "daemon.toml"
    config.write_text(
        toml_text(
            {
                "source": {"kind": "file", "path": "in/bursts.wav", "realtime": True},
                "model": {"params": params.name, "model": "passthrough"},
                "publish": {"endpoints": [endpoint], **QUIET_PUBLISH},
                "events": {
                    **EVENTS,
                    "webhook_url": server.url,
                    "webhook_min_interval_seconds": 600,
                },
            }
        )  # fmt: skip
    )
    sub = Subscriber(endpoint, ["mix", "orca_vocals"], events=True, hwm=100000)
    daemon = DaemonProcess(config, {**__import__("os").environ}, tmp_path / "daemon.log")
    received = Received()
    try:
        _receive(sub, received, lambda: sub.ended, 60, "the end of stream")
        assert daemon.process.wait(20) == 0
    finally:
        daemon.close()
        sub.close()
        server.close()
    assert not unexpected_tracebacks(daemon.log())
    logged = _check_delays_and_clips(received, tmp_path)
    assert len(logged) == len(spans)
    for event, (a, b) in zip(logged, spans, strict=True):
        assert abs(event["start_index"] - a * rate) <= 0.1 * rate
        assert abs(event["end_index"] - b * rate) <= 0.1 * rate
        assert event["node"] == "testnode" and event["model"] == "passthrough"
    # The rate limit: three events, one notification; the rest counted as suppressed.
    assert len(server.posts) == 1 and server.posts[0]["event"]["id"] == logged[0]["id"]
    # streamsep detect over the folder: the same events.
    out = tmp_path / "events.csv"
    argv = ["detect", str(tmp_path / "in"), "--out", str(out), "-c", str(config), "--no-progress"]
    assert cli_main(argv) == 0
    rows = list(csv.DictReader(out.open()))
    keys = ("start_index", "end_index", "peak_index")
    assert [{k: int(r[k]) for k in keys} for r in rows] == [{k: e[k] for k in keys} for e in logged]
    assert [float(r["peak_score_db"]) for r in rows] == pytest.approx(
        [e["peak_score_db"] for e in logged], abs=1e-3
    )


def test_jack_source_events_with_a_dead_webhook(jack_server: JackServer, tmp_path: Path) -> None:
    table = bursts(JACK_RATE, 4.0, [(1.5, 2.5)], seed=7)[:, 0]
    params = write_params(tmp_path, JACK_RATE)
    endpoint = free_tcp_endpoint()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    config = tmp_path / "daemon.toml"
    config.write_text(
        toml_text(
            {
                "source": {"channels": 2},
                "model": {"params": params.name, "model": "passthrough"},
                "publish": {"endpoints": [endpoint], **QUIET_PUBLISH},
                "events": {
                    **EVENTS,
                    "webhook_url": dead,
                    "webhook_min_interval_seconds": 0,
                    "webhook_backoff_seconds": 0.2,
                },
            }
        )  # fmt: skip
    )
    sub = Subscriber(endpoint, ["mix", "orca_vocals"], events=True, hwm=100000)
    daemon = DaemonProcess(config, jack_server.env, tmp_path / "daemon.log")
    injector = Injector(jack_server, table_signal(table)).start()
    received = Received()
    try:
        injector.connect()
        _receive(sub, received, lambda: len(received.events) >= 3, 60, "three events")
        daemon.sigterm()
        _receive(sub, received, lambda: sub.ended, 20, "the end of stream")
        code, seconds = daemon.wait_exit()
    finally:
        injector.close()
        daemon.close()
        sub.close()
    assert code == 0 and seconds < 10
    assert not unexpected_tracebacks(daemon.log())
    logged = _check_delays_and_clips(received, tmp_path)
    # One event per 4 s loop of the table (a burst each), none lost.
    phase = (np.diff([e["start_index"] for e in logged]) + 2 * JACK_RATE) % (4 * JACK_RATE)
    assert np.all(np.abs(phase - 2 * JACK_RATE) <= 0.1 * JACK_RATE), phase  # one window
    assert "webhook" in daemon.log()  # the failures were logged, the events all kept
