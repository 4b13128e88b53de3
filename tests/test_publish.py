"""Publisher: spec-decoded stream == Separator output, never stalls the pipeline, counts every
loss, CURVE admits only authorized clients, and refuses open binds without it."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from streamsep.cli.main import main
from streamsep.cli.stream import FileStreamer
from streamsep.engine.offline import Separator
from streamsep.engine.pipeline import OutputChunk
from streamsep.errors import ConfigError
from streamsep.net import protocol as proto
from streamsep.net.control import ControlSettings
from streamsep.net.publish import Publisher, PublishSettings
from streamsep.net.security import make_keys
from streamsep.net.subscribe import Chunk, JsonMessage, Subscriber

from ._net import free_tcp_endpoint, ipc_endpoint, spec_collect
from .conftest import MODELS, ROOT

__all__ = ["ipc_endpoint"]  # a fixture

SMALL_PARAMS = {
    "instrument_list": ["orca_vocals", "noise"],
    "sample_rate": 8000,
    "frame_length": 256,
    "frame_step": 64,
    "T": 16,
    "F": 64,
    "n_channels": 2,
    "mask_extension": "average",
}


def _models() -> list[tuple[Any, str]]:
    out: list[tuple[Any, str]] = [(SMALL_PARAMS, "passthrough")]
    if (MODELS / "tiny_unet.tflite").is_file():
        out.append((str(MODELS / "tiny_unet.json"), str(MODELS / "tiny_unet.tflite")))
    return out


def _write_input(path: Path, seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    x = (rng.standard_normal((int(seconds * rate) + 123, 2)) * 0.2).astype(np.float32)
    x[1000, 0] = 1.25  # one clipped sample
    sf.write(path, x, rate, subtype="FLOAT")
    return x


def _check_timeline(messages: list[tuple[dict[str, Any], np.ndarray]], n_samples: int) -> None:
    """Sequence and first_sample contiguous from 0, start/end flags, no gap."""
    expected = 0
    for i, (header, samples) in enumerate(messages):
        assert header["sequence"] == i
        assert header["first_sample"] == expected
        assert header["lost_samples"] == header["filled_samples"] == 0
        assert not header["flags"] & proto.FLAG_GAP
        assert bool(header["flags"] & proto.FLAG_STREAM_START) == (i == 0)
        assert bool(header["flags"] & proto.FLAG_END_OF_STREAM) == (i == len(messages) - 1)
        assert header["sample_rate"] == 8000 and header["n_channels"] == 2
        expected += samples.shape[0]
    assert expected == n_samples


# -- acceptance 1: decode with the spec only, compare with Separator.separate ------------------


@pytest.mark.parametrize("model", _models(), ids=lambda m: Path(m[1]).stem)
@pytest.mark.parametrize("sample_format", ["float32", "int16"])
def test_spec_decoded_stream_equals_separator_output(
    model: tuple[Any, str],
    sample_format: str,
    tmp_path: Path,
    rng: np.random.Generator,
    ipc_endpoint: str,
) -> None:
    separator = Separator(*model)
    rate = separator.params.sample_rate
    assert rate == 8000  # the input is written at the model rate: no resampling anywhere
    x = _write_input(tmp_path / "in.wav", 3.0, rate, rng)
    expected = separator.separate(x, rate)
    settings = PublishSettings(endpoints=[ipc_endpoint], sample_format=sample_format)

    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"audio.")
    sub.connect(ipc_endpoint)  # before the bind: ZeroMQ keeps retrying
    with FileStreamer(tmp_path / "in.wav", separator.model, settings) as streamer:
        streamer.start(wait_subscribers=1, wait_seconds=10)
        received = spec_collect(sub, 3, timeout=30)
        assert streamer.wait(10)
    sub.close()
    context.term()

    assert sorted(received) == ["audio.mix", "audio.noise", "audio.orca_vocals"]
    references = {**expected, "mix": x}
    for topic, messages in received.items():
        _check_timeline(messages, x.shape[0])
        decoded = np.concatenate([samples for _, samples in messages])
        reference = references[topic.removeprefix("audio.")]
        assert decoded.shape == x.shape
        if sample_format == "float32":
            np.testing.assert_array_equal(decoded, reference)
        else:
            clipped = np.clip(reference, -1.0, 1.0)
            np.testing.assert_allclose(decoded, clipped, atol=0.5 / 32767 + 1e-7, rtol=0)
        clip_flags = [bool(h["flags"] & proto.FLAG_CLIPPED) for h, _ in messages]
        clip_truth = [bool(np.any(np.abs(s) >= 1.0)) for s in np.split(
            reference, np.cumsum([s.shape[0] for _, s in messages])[:-1])]  # fmt: skip
        assert clip_flags == clip_truth
    assert any(bool(h["flags"] & proto.FLAG_CLIPPED) for h, _ in received["audio.mix"])


def test_stream_command_end_to_end(
    tmp_path: Path, rng: np.random.Generator, ipc_endpoint: str
) -> None:
    """``streamsep stream`` in a subprocess; decoded by the spec; int16; levels arrive."""
    x = _write_input(tmp_path / "in.wav", 2.0, 8000, rng)
    params = tmp_path / "params.json"
    params.write_text(json.dumps(SMALL_PARAMS))
    expected = Separator(SMALL_PARAMS, "passthrough").separate(x, 8000)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for topic in (b"audio.orca_vocals", b"levels"):
        sub.setsockopt(zmq.SUBSCRIBE, topic)
    sub.connect(ipc_endpoint)
    command = [
        sys.executable, "-m", "streamsep", "stream", str(tmp_path / "in.wav"),
        "--params", str(params), "--model", "passthrough", "--publish-endpoint", ipc_endpoint,
        "--publish-format", "int16", "--publish-levels-seconds", "0.5",
        "--wait-subscribers", "2", "--wait-seconds", "20",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        try:
            messages: list[tuple[dict[str, Any], np.ndarray]] = []
            levels: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60
            while not messages or not messages[-1][0]["flags"] & proto.FLAG_END_OF_STREAM:
                assert time.monotonic() < deadline and proc.poll() is None
                if not sub.poll(200):
                    continue
                frames = sub.recv_multipart()
                if frames[0] == b"levels":
                    levels.append(json.loads(frames[1]))
                else:
                    from ._net import spec_decode

                    _, header, samples = spec_decode(frames)
                    messages.append((header, samples))
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    sub.close()
    context.term()
    assert proc.returncode == 0, err.decode()
    assert b"audio.orca_vocals:" in out
    _check_timeline(messages, x.shape[0])
    assert all(h["sample_format"] == 2 for h, _ in messages)
    decoded = np.concatenate([s for _, s in messages])
    np.testing.assert_allclose(
        decoded, np.clip(expected["orca_vocals"], -1, 1), atol=0.5 / 32767 + 1e-7, rtol=0
    )
    assert sum(body["n_samples"] for body in levels) == x.shape[0]
    assert levels[0]["first_sample"] == 0 and levels[0]["version"] == 1
    n = levels[0]["n_samples"]
    assert n >= 4000  # windows close on the chunk that completes 0.5 s
    rms = 20 * np.log10(np.sqrt(np.mean(x[:n].astype(np.float64) ** 2)))
    assert levels[0]["levels"]["mix"]["rms_dbfs"] == pytest.approx(rms, abs=1e-3)
    assert levels[0]["levels"]["noise"]["rms_dbfs"] == -240.0


# -- acceptance 2: a stalled subscriber ------------------------------------------------------


def test_stalled_subscriber_does_not_stall_the_pipeline(
    tmp_path: Path, rng: np.random.Generator, ipc_endpoint: str
) -> None:
    rate, seconds = 8000, 7.0
    x = _write_input(tmp_path / "in.wav", seconds, rate, rng)
    separator = Separator(SMALL_PARAMS, "passthrough")
    settings = PublishSettings(
        endpoints=[ipc_endpoint], hwm=4, sndbuf_bytes=16384, end_timeout_seconds=60,
        levels_seconds=0, status_seconds=0,
    )  # fmt: skip
    chunks: list[Chunk] = []
    with (
        FileStreamer(tmp_path / "in.wav", separator.model, settings, realtime=True) as streamer,
        Subscriber(ipc_endpoint, ["orca_vocals"], hwm=4, rcvbuf_bytes=16384) as sub,
    ):
        streamer.start(wait_subscribers=1, wait_seconds=10)
        deadline = time.monotonic() + 10
        while sum(c.n_samples for c in chunks) < rate:  # read the first second normally
            assert time.monotonic() < deadline
            if isinstance(message := sub.recv(1.0), Chunk):
                chunks.append(message)
        stalled_at = time.monotonic()
        # Stop reading; the pipeline must still finish in real time (~5.9 s of file left).
        assert streamer.wait_pipeline(timeout=30)
        stalled_seconds = time.monotonic() - stalled_at
        stats = streamer.pipeline.stats
        assert stats.samples_lost == 0 and streamer.pipeline.ring.overrun_samples == 0
        deadline = time.monotonic() + 30
        while not sub.ended:  # resume
            assert time.monotonic() < deadline
            if isinstance(message := sub.recv(1.0), Chunk):
                chunks.append(message)
        assert streamer.wait(10)
        publisher_stats = streamer.publisher.stats()

    assert stalled_seconds >= 5.0
    received = sum(c.n_samples for c in chunks)
    missing = sum(c.missing for c in chunks)
    gaps = [c for c in chunks if c.gap]
    topic = publisher_stats["topics"]["audio.orca_vocals"]
    print(
        f"\nstalled {stalled_seconds:.2f} s: {len(chunks)} chunks, {received} samples received, "
        f"{missing} missing in {len(gaps)} gap(s); publisher: {topic}, queue dropped "
        f"{publisher_stats['queue_dropped_samples']}"
    )
    assert gaps and missing > 0
    assert all(c.header.has(proto.FLAG_GAP) and c.missing == c.header.lost_samples for c in gaps)
    assert all(c.missing_messages == 0 for c in chunks)  # every loss was announced
    assert received + missing == x.shape[0]  # the counts add up
    assert topic["samples_sent"] == received
    assert topic["samples_dropped"] + publisher_stats["queue_dropped_samples"] == missing
    assert chunks[-1].end_of_stream and chunks[-1].end_sample == x.shape[0]
    reference = separator.separate(x, rate)["orca_vocals"]
    np.testing.assert_array_equal(  # what did arrive is the right audio at the right index
        np.concatenate([c.samples for c in chunks]),
        np.concatenate([reference[c.first_sample : c.end_sample] for c in chunks]),
    )


# -- publisher policies, through a blocked publisher thread ---------------------------------


class _Harness:
    """A started Publisher (stems a, b; mono; 8 kHz) and a Subscriber of stem a. The status
    callback runs on the publisher thread, so arming it blocks that thread on demand."""

    def __init__(self, endpoint: str, **settings: Any) -> None:
        self.armed, self.blocked, self.release = (
            threading.Event(),
            threading.Event(),
            threading.Event(),
        )
        settings = {"status_seconds": 0.01, "levels_seconds": 0, **settings}
        self.publisher = Publisher(
            PublishSettings(endpoints=[endpoint], **settings), stems=("a", "b"),
            sample_rate=8000, n_channels=1, status=self._status,
        )  # fmt: skip
        self.publisher.start()
        self.sub = Subscriber(endpoint, ["a"])
        assert self.publisher.wait_for_subscribers(1, 10)

    def _status(self) -> dict[str, Any]:
        if self.armed.is_set():
            self.armed.clear()
            self.blocked.set()
            self.release.wait(10)
        return {}

    def block(self) -> None:
        self.armed.set()
        assert self.blocked.wait(10)

    def write(self, start: int, n: int, *, value: float = 0.1, **kw: Any) -> None:
        stems = np.full((2, n, 1), value, np.float32)
        stems[1] = 0.0
        self.publisher.write(OutputChunk(start, stems, np.zeros((n, 1), np.float32), **kw))

    def recv(self) -> Chunk:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if isinstance(message := self.sub.recv(1.0), Chunk):
                return message
        raise AssertionError("no chunk within 10 s")

    def close(self) -> None:
        self.release.set()
        self.publisher.stop()
        self.sub.close()


def test_full_queue_drops_oldest_and_the_next_message_reports_the_gap(
    ipc_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="streamsep.net.publish")
    h = _Harness(ipc_endpoint, queue_chunks=2)
    try:
        h.write(0, 100)
        first = h.recv()
        assert first.header.has(proto.FLAG_STREAM_START) and first.first_sample == 0
        h.block()
        started = time.monotonic()
        for k in range(1, 6):
            h.write(100 * k, 100)  # never blocks, although the publisher thread is stuck
        assert time.monotonic() - started < 0.5
        stats = h.publisher.stats()
        assert stats["queue_dropped_chunks"] == 3 and stats["queue_dropped_samples"] == 300
        h.release.set()
        after = h.recv()
        assert after.first_sample == 400 and after.header.sequence == 1
        assert after.header.has(proto.FLAG_GAP) and after.header.lost_samples == 300
        assert after.missing == 300 and after.missing_messages == 0
        assert "hand-off queue full (2 chunks): dropped the 3 oldest chunks" in caplog.text
        last = h.recv()
        assert last.first_sample == 500 and not last.gap
        h.publisher.close()
        end = h.recv()
        assert end.end_of_stream and end.n_samples == 0 and end.first_sample == 600
        assert h.publisher.wait(10)
    finally:
        h.close()


def test_upstream_loss_sets_gap_with_filled_count_and_clipping_flag(ipc_endpoint: str) -> None:
    h = _Harness(ipc_endpoint)
    try:
        h.write(0, 100)
        h.write(100, 100, gaps=[(150, 40)])  # silence starts inside this chunk
        h.write(200, 100, gaps=[(350, 10)])  # ... and inside the next one
        h.write(300, 100, value=1.0, end_of_stream=True)
        chunks = [h.recv() for _ in range(4)]
        assert [c.header.filled_samples for c in chunks] == [0, 40, 0, 10]
        assert [c.header.lost_samples for c in chunks] == [0, 0, 0, 0]
        assert [c.header.has(proto.FLAG_GAP) for c in chunks] == [False, True, False, True]
        assert [c.missing for c in chunks] == [0, 0, 0, 0]  # silence is in the stream
        assert [c.clipped for c in chunks] == [False, False, False, True]
        assert chunks[3].end_of_stream and h.sub.ended
    finally:
        h.close()


def test_publisher_closes_once_every_subscriber_acknowledged_the_end(ipc_endpoint: str) -> None:
    """After the end the socket stays open for subscribers still reading (libzmq drops what
    sits in a full receive queue at close); a Subscriber acknowledges by itself, a raw SUB
    socket by disconnecting."""
    h = _Harness(ipc_endpoint, end_timeout_seconds=60, status_seconds=0)
    context = zmq.Context()
    raw = context.socket(zmq.SUB)
    raw.setsockopt(zmq.LINGER, 0)
    try:
        raw.subscribe(b"audio.b")
        raw.connect(ipc_endpoint)
        assert h.publisher.wait_for_subscribers(2, 10)
        h.write(0, 100, end_of_stream=True)
        h.publisher.close()
        assert h.recv().end_of_stream and h.sub.ended  # the Subscriber acknowledges here
        assert raw.poll(10_000) and raw.recv_multipart()  # the raw socket has its end too ...
        assert not h.publisher.wait(1.0)  # ... but has not acknowledged: still open
        assert h.publisher.stats()["active_subscriptions"] == 2  # acknowledged and resubscribed
        raw.close()
        assert h.publisher.wait(10)  # the disconnect withdrew the last one
        assert h.publisher.stats()["active_subscriptions"] == 1
    finally:
        raw.close()
        context.term()
        h.close()


def test_publisher_closes_after_end_timeout_without_acknowledgement(
    ipc_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamsep.net.publish")
    h = _Harness(ipc_endpoint, end_timeout_seconds=0.5, status_seconds=0)
    try:
        h.publisher.close()
        assert h.publisher.wait(10)  # the Subscriber never read the end: closed at the timeout
        assert "1 subscriptions that did not acknowledge the end" in caplog.text
        end = h.recv()  # it was delivered all the same
        assert end.end_of_stream and end.n_samples == 0
    finally:
        h.close()


def test_write_never_blocks_before_start_or_after_failure(ipc_endpoint: str) -> None:
    publisher = Publisher(
        PublishSettings(endpoints=[ipc_endpoint], queue_chunks=3), stems=("a",),
        sample_rate=8000, n_channels=1,
    )  # fmt: skip
    for k in range(10):
        publisher.write(OutputChunk(k * 10, np.zeros((1, 10, 1), np.float32), np.zeros((10, 1))))
    publisher.close()
    stats = publisher.stats()
    assert stats["queue_dropped_chunks"] == 8 and stats["queue_depth"] == 3  # 2 chunks + end


def test_status_messages_carry_the_protocol_version(ipc_endpoint: str) -> None:
    """The status callback's keys are merged, but never over the publisher's own: a daemon's
    package version once replaced the protocol version and subscribers rejected every one."""
    from streamsep.version import __version__

    def status() -> dict[str, Any]:
        return {"version": "0.1.0", "state": "reconnecting", "time_ns": 0, "extra": 1}

    settings = PublishSettings(endpoints=[ipc_endpoint], status_seconds=0.01, levels_seconds=0)
    publisher = Publisher(settings, stems=("a",), sample_rate=8000, n_channels=1, status=status)
    with publisher, Subscriber(ipc_endpoint, [], status=True) as sub:
        assert publisher.wait_for_subscribers(1, 10)
        message = sub.recv(10)
        assert isinstance(message, JsonMessage) and message.topic == "status"
        body = message.body
    assert body["version"] == proto.VERSION == 1
    assert body["state"] == "running" and body["time_ns"] > 0 and body["extra"] == 1
    assert body["package_version"] == __version__
    assert body["publisher"]["subscriptions"] == 1


# -- subscription flooding (issue 18, defect 6) -----------------------------------------------


def _rss_mib() -> float:
    """Resident memory of this process, MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _stream_and_collect(h: _Harness, n_chunks: int, during: Any) -> list[Chunk]:
    """Publish ``n_chunks`` of 100 samples on stem a while ``during()`` runs, then the end;
    returns what the harness's Subscriber received."""
    for k in range(n_chunks // 2):
        h.write(100 * k, 100)
    during()
    for k in range(n_chunks // 2, n_chunks):
        h.write(100 * k, 100, end_of_stream=k == n_chunks - 1)
    chunks = []
    while not h.sub.ended:
        chunks.append(h.recv())
    return chunks


def _assert_every_sample(chunks: list[Chunk], n_samples: int) -> None:
    assert sum(c.n_samples for c in chunks) == n_samples
    assert [c.header.sequence for c in chunks] == list(range(len(chunks)))
    assert all(c.missing == 0 and not c.gap for c in chunks)
    assert chunks[-1].end_of_stream and chunks[-1].end_sample == n_samples


def test_junk_subscriptions_are_counted_logged_and_never_applied(
    ipc_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """3000 distinct subscriptions to no published topic, each under the size limit: none is
    applied or counted as a subscription, a line or two of log, and the Subscriber of the same
    publisher gets every sample."""
    caplog.set_level(logging.WARNING, logger="streamsep.net.subscriptions")
    n_junk, batch = 3000, 500
    h = _Harness(ipc_endpoint, status_seconds=0)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    junk = context.socket(zmq.SUB)
    junk.setsockopt(zmq.LINGER, 0)
    junk.connect(ipc_endpoint)
    started = time.monotonic()

    def flood() -> None:
        for b in range(n_junk // batch):  # batches under the pipe's high-water mark
            for i in range(batch):
                junk.setsockopt(zmq.SUBSCRIBE, b"junk.%06d" % (b * batch + i) + os.urandom(8))
            deadline = time.monotonic() + 20
            while h.publisher.stats()["subscriptions_rejected"] < (b + 1) * batch:
                assert time.monotonic() < deadline, h.publisher.stats()
                junk.getsockopt(zmq.EVENTS)  # lets libzmq see the pipe drain
                time.sleep(0.01)

    try:
        assert h.publisher.max_inbound_bytes >= len(b"\x01junk.000000") + 8
        chunks = _stream_and_collect(h, 40, flood)
        stats = h.publisher.stats()
    finally:
        junk.close()
        context.term()
        h.close()
    _assert_every_sample(chunks, 4000)
    assert stats["subscriptions_rejected"] == n_junk
    assert stats["subscriptions"] == 1 and stats["active_subscriptions"] == 1  # the Subscriber
    # the topic is logged as a bytes repr: b'junk...' or, when the random tail holds a ', b"junk..."
    lines = [
        r for r in caplog.records
        if re.search(r"ignored subscription to b['\"]junk\.", r.getMessage())
    ]  # fmt: skip
    assert 1 <= len(lines) <= 1 + (time.monotonic() - started) / 10  # rate-limited
    assert "junk.000000" in lines[0].getMessage()


def test_messages_that_are_not_subscriptions_are_rejected(
    ipc_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An XSUB peer may send anything upstream: each frame is counted and ignored, and the
    publisher keeps serving its Subscriber."""
    caplog.set_level(logging.WARNING, logger="streamsep.net.subscriptions")
    h = _Harness(ipc_endpoint, status_seconds=0)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    peer = context.socket(zmq.XSUB)
    peer.setsockopt(zmq.LINGER, 0)
    peer.connect(ipc_endpoint)

    def send_garbage() -> None:
        for frames in ([b"hello"], [b"\x02audio.a"], [b""], [b"\x01audio.zz", b"\x01audio.a"]):
            peer.send_multipart(frames)
        peer.send(b"\x01status")  # a valid one, after the rest
        assert h.publisher.wait_for_subscribers(2, 10)

    try:
        chunks = _stream_and_collect(h, 10, send_garbage)
        stats = h.publisher.stats()
    finally:
        peer.close()
        context.term()
        h.close()
    _assert_every_sample(chunks, 1000)
    assert stats["subscriptions_rejected"] == 4  # frames of a multipart message count alone
    # the Subscriber's "audio.a", then the peer's "audio.a" (libzmq parses the second frame of
    # a message that starts with a subscription as one) and "status"
    assert stats["active_subscriptions"] == 3
    assert "ignored message b'hello'" in caplog.text


def test_oversized_subscriptions_disconnect_the_client_and_cost_no_memory(
    ipc_endpoint: str, tmp_path: Path
) -> None:
    """The issue's flood: distinct 1 KiB subscriptions from one client (another process). The
    publisher keeps none (each is over its inbound message limit: libzmq disconnects that
    client, which reconnects and is disconnected again); before the limit they took ~37 KiB
    each in libzmq's subscription trie (2000: ~75 MiB)."""
    n_junk = 2000
    h = _Harness(ipc_endpoint, status_seconds=0)
    assert h.publisher.max_inbound_bytes < 1024
    script = tmp_path / "flood.py"
    script.write_text(
        "import os, sys, zmq\n"
        "from zmq.utils.monitor import recv_monitor_message\n"
        "c = zmq.Context(); s = c.socket(zmq.SUB); s.setsockopt(zmq.LINGER, 0)\n"
        "m = s.get_monitor_socket(zmq.EVENT_DISCONNECTED)\n"
        "s.connect(sys.argv[1])\n"
        "for i in range(int(sys.argv[2])):\n"
        "    s.setsockopt(zmq.SUBSCRIBE, b'%06d' % i + os.urandom(1018))\n"
        "    if i % 100 == 0: s.getsockopt(zmq.EVENTS)\n"
        "n = 0\n"
        "while n < 3 and m.poll(10000):\n"
        "    n += recv_monitor_message(m)['event'] == zmq.EVENT_DISCONNECTED\n"
        "print(n)\n"
    )
    before = _rss_mib()
    flood: list[str] = []

    def run_flood() -> None:
        done = subprocess.run(
            [sys.executable, str(script), ipc_endpoint, str(n_junk)],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        flood.append(done.stdout.strip())

    try:
        chunks = _stream_and_collect(h, 40, run_flood)
        grown = _rss_mib() - before
        stats = h.publisher.stats()
    finally:
        h.close()
    # Disconnected at least once (it reconnects and is disconnected again; how often within
    # the poll depends on the machine's load).
    assert len(flood) == 1 and 1 <= int(flood[0]) <= 3, flood
    _assert_every_sample(chunks, 4000)
    assert stats["subscriptions"] == 1 and stats["active_subscriptions"] == 1, stats
    assert grown < 20, f"publisher process grew by {grown:.1f} MiB"


def test_only_prefixes_of_published_topics_are_valid() -> None:
    from streamsep.net.subscriptions import SubscriptionGate, max_inbound_bytes

    gate = SubscriptionGate(["audio.a", "audio.mix", "levels", "status"])
    for prefix in (b"", b"a", b"audio.", b"audio.a", b"audio.m", b"levels", b"stat"):
        assert gate.accepts(prefix), prefix
    for prefix in (b"audio.a2", b"audio.b", b"x", b"levels.", b"\x00", b"junk" * 100):
        assert not gate.accepts(prefix), prefix
    assert max_inbound_bytes(["audio.a"], curve=False) == 64
    assert max_inbound_bytes(["audio." + "x" * 100], curve=False) == 107
    assert max_inbound_bytes(["audio.a"], curve=True) == 512


def test_log_throttle_counts_what_it_suppresses() -> None:
    from streamsep.net.throttle import LogThrottle

    now = [0.0]
    throttle = LogThrottle(10.0, clock=lambda: now[0])
    assert throttle.hit() == 0
    assert [throttle.hit() for _ in range(5)] == [None] * 5
    now[0] = 9.9
    assert throttle.hit() is None
    now[0] = 10.0
    assert throttle.hit() == 6
    assert throttle.hit() is None


def test_dropped_messages_are_logged_rate_limited(
    ipc_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A subscriber that never reads (tiny queues): the publisher's sends fail at the
    high-water mark; the drops are counted and logged, one line per interval."""
    caplog.set_level(logging.WARNING, logger="streamsep.net.publish")
    h = _Harness(ipc_endpoint, hwm=1, status_seconds=0, end_timeout_seconds=0.5)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    stalled = context.socket(zmq.SUB)
    stalled.setsockopt(zmq.LINGER, 0)
    stalled.setsockopt(zmq.RCVHWM, 1)
    stalled.setsockopt(zmq.RCVBUF, 4096)
    stalled.setsockopt(zmq.SUBSCRIBE, b"audio.a")
    stalled.connect(ipc_endpoint)
    try:
        assert h.publisher.wait_for_subscribers(2, 10)
        for k in range(40):  # 32 KB messages, under the 64-chunk queue
            h.write(8000 * k, 8000)
        h.publisher.close()
        assert h.publisher.wait(20)
        stats = h.publisher.stats()
    finally:
        stalled.close()
        context.term()
        h.close()
    dropped = stats["topics"]["audio.a"]["messages_dropped"]
    assert dropped > 1 and stats["queue_dropped_chunks"] == 0
    lines = [r.getMessage() for r in caplog.records if "queue is full (hwm" in r.getMessage()]
    assert len(lines) == 1, lines  # rate-limited: one line for all of them, within 10 s
    assert lines[0].startswith("publisher: audio.a: dropped 8000 samples at ")


# -- acceptance 3: CURVE and the bind rule ------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint", ["tcp://0.0.0.0:5556", "tcp://*:5556", "tcp://192.0.2.7:5556", "tcp://eth0:1"]
)
def test_non_loopback_bind_without_curve_is_refused(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_sockets(*args: object) -> None:
        raise AssertionError("a socket was opened before the check")

    monkeypatch.setattr(zmq, "Context", no_sockets)
    message = (
        f"refusing to bind {endpoint} without CURVE: anyone who can reach it could subscribe; "
        "set publish.insecure = true (streamsep stream: --publish-insecure) to allow it"
    )
    with pytest.raises(ConfigError) as info:
        PublishSettings(endpoints=[endpoint])
    assert str(info.value) == message
    with pytest.raises(ConfigError, match="set control.insecure = true"):
        ControlSettings(endpoint)
    assert PublishSettings(endpoints=[endpoint], insecure=True).endpoints == (endpoint,)
    assert ControlSettings(endpoint, insecure=True).endpoint == endpoint


def test_stream_command_refuses_an_open_bind(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_input(tmp_path / "in.wav", 0.2, 8000, rng)
    argv = ["stream", str(tmp_path / "in.wav"), "--publish-endpoint", "tcp://0.0.0.0:5556"]
    assert main(argv) == 1
    assert "refusing to bind tcp://0.0.0.0:5556 without CURVE" in capsys.readouterr().err


_HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
)


def test_curve_admits_only_authorized_clients(tmp_path: Path, rng: np.random.Generator) -> None:
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    server_public, server_secret = make_keys(keys, "server")
    good_public, good_secret = make_keys(keys, "good")
    _, bad_secret = make_keys(keys, "bad")
    allowed.mkdir()
    (allowed / "good.key").write_bytes(good_public.read_bytes())
    x = _write_input(tmp_path / "in.wav", 1.0, 8000, rng)
    endpoint = free_tcp_endpoint()
    settings = PublishSettings(
        endpoints=[endpoint], server_secret_key_file=str(server_secret),
        authorized_keys_dir=str(allowed), levels_seconds=0, status_seconds=0,
    )  # fmt: skip
    separator = Separator(SMALL_PARAMS, "passthrough")

    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    intruders = []
    for secret in (bad_secret, None):  # a wrong key, and no CURVE at all
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        if secret is not None:
            public_key, secret_key = zmq.auth.load_certificate(secret)
            sock.curve_serverkey = zmq.auth.load_certificate(server_public)[0]
            sock.curve_publickey, sock.curve_secretkey = public_key, secret_key  # type: ignore[assignment]
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        intruders.append((sock, sock.get_monitor_socket(_HANDSHAKE_EVENTS)))
    with FileStreamer(tmp_path / "in.wav", separator.model, settings) as streamer:
        streamer.publisher.start()  # bound: the intruders knock before anything is streamed
        events = []
        for sock, monitor in intruders:
            sock.connect(endpoint)
            assert monitor.poll(10_000), "no handshake event"
            events.append(recv_monitor_message(monitor)["event"])
        assert events[0] == zmq.EVENT_HANDSHAKE_FAILED_AUTH  # wrong key: ZAP said 400
        assert events[1] != zmq.EVENT_HANDSHAKE_SUCCEEDED  # no CURVE: mechanism mismatch
        with Subscriber(
            endpoint, curve_server_key=server_public, curve_client_key=good_secret
        ) as good:
            streamer.start(wait_subscribers=1, wait_seconds=10)
            chunks = []
            deadline = time.monotonic() + 20
            while not good.ended:
                assert time.monotonic() < deadline
                if isinstance(message := good.recv(1.0), Chunk):
                    chunks.append(message)
        assert streamer.wait(10)
    for sock, monitor in intruders:
        assert sock.poll(500) == 0  # received nothing at all
        monitor.close()
        sock.close()
    context.term()
    for stem in ("orca_vocals", "noise", "mix"):
        mine = [c for c in chunks if c.stem == stem]
        assert sum(c.n_samples for c in mine) == x.shape[0]
        assert sum(c.missing for c in mine) == 0 and mine[0].first_sample == 0
    got = np.concatenate([c.samples for c in chunks if c.stem == "mix"])
    np.testing.assert_array_equal(got, x)
