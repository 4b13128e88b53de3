"""Subscriber: gap accounting from indices and sequence numbers, slow joiners, restarts,
exact topic filtering, timeouts."""

from __future__ import annotations

import numpy as np
import pytest

from streamsep.errors import ConfigError
from streamsep.net import protocol as proto
from streamsep.net.subscribe import Chunk, JsonMessage, Subscriber

from ._net import ScriptedPublisher, ipc_endpoint

__all__ = ["ipc_endpoint"]  # a fixture

START, END, GAP = proto.FLAG_STREAM_START, proto.FLAG_END_OF_STREAM, proto.FLAG_GAP


def _block(first: int, n: int) -> np.ndarray:
    """Samples whose value encodes their index (so misplacement shows)."""
    return (np.arange(first, first + n, dtype=np.float32)[:, None] / 1e6).repeat(2, axis=1)


def _recv(sub: Subscriber) -> Chunk:
    message = sub.recv(10.0)
    assert isinstance(message, Chunk), message
    return message


@pytest.fixture
def scripted(ipc_endpoint: str) -> ScriptedPublisher:
    pub = ScriptedPublisher(ipc_endpoint)
    yield pub  # type: ignore[misc]
    pub.close()


def test_gap_accounting_from_indices_and_sequence_numbers(
    scripted: ScriptedPublisher, ipc_endpoint: str
) -> None:
    with Subscriber(ipc_endpoint, ["orca_vocals"]) as sub:
        scripted.wait_subscriptions(1)
        topic = "audio.orca_vocals"
        # Slow joiner: the first message received is mid-stream and even reports a loss
        # before it; nothing is reported missing before the first received message.
        scripted.send(topic, _block(5000, 100), sequence=9, first_sample=5000, flags=GAP, lost=7)
        scripted.send(topic, _block(5100, 100), sequence=10, first_sample=5100)
        # The publisher dropped 300 samples itself and says so (sequence stays contiguous).
        scripted.send(topic, _block(5500, 100), sequence=11, first_sample=5500, flags=GAP, lost=300)
        # Message 12 (200 samples) was sent but lost in transport: indices and sequence show it.
        scripted.send(topic, _block(5800, 50), sequence=13, first_sample=5800, flags=END)
        chunks = [_recv(sub) for _ in range(4)]
        assert sub.ended
    assert [c.new_stream for c in chunks] == [True, False, False, False]
    assert [c.missing for c in chunks] == [0, 0, 300, 200]
    assert [c.missing_messages for c in chunks] == [0, 0, 0, 1]
    assert [c.gap for c in chunks] == [True, False, True, True]
    assert chunks[3].end_of_stream and chunks[3].end_sample == 5850
    assert sub.received_samples("orca_vocals") == 350
    assert sub.missing_samples("orca_vocals") == 500
    for c in chunks:
        np.testing.assert_array_equal(c.samples, _block(c.first_sample, c.n_samples))
        assert c.stem == "orca_vocals" and c.samples.shape == (c.n_samples, 2)
        assert c.capture_time_ns == 1_764_000_000_000_000_000 + c.first_sample * 125_000


def test_publisher_restart_is_a_new_stream(scripted: ScriptedPublisher, ipc_endpoint: str) -> None:
    with Subscriber(ipc_endpoint, ["noise"]) as sub:
        scripted.wait_subscriptions(1)
        scripted.send("audio.noise", _block(0, 100), sequence=0, first_sample=0, flags=START)
        scripted.send("audio.noise", _block(100, 100), sequence=1, first_sample=100, flags=END)
        scripted.send("audio.noise", _block(0, 10), sequence=0, first_sample=0, flags=START)
        chunks = [_recv(sub) for _ in range(3)]
        assert not sub.ended  # the new stream has not ended
    assert [c.new_stream for c in chunks] == [True, False, True]
    assert [c.missing for c in chunks] == [0, 0, 0]


def test_topics_are_matched_exactly_and_json_topics_are_opt_in(
    scripted: ScriptedPublisher, ipc_endpoint: str
) -> None:
    with Subscriber(ipc_endpoint, ["noise"], levels=True) as sub:
        scripted.wait_subscriptions(2)
        scripted.send("audio.noise2", _block(0, 5), sequence=0, first_sample=0)  # prefix match
        scripted.socket.send_multipart(proto.encode_json("status", {"state": "running"}))
        scripted.socket.send_multipart(proto.encode_json("levels", {"levels": {}}))
        scripted.send("audio.noise", _block(0, 5), sequence=0, first_sample=0, flags=END)
        first = sub.recv(10.0)
        second = sub.recv(10.0)
    assert isinstance(first, JsonMessage) and first.topic == "levels"
    assert first.body == {"version": 1, "levels": {}}
    assert isinstance(second, Chunk) and second.topic == "audio.noise"


def test_all_stems_and_iteration_until_every_seen_topic_ended(
    scripted: ScriptedPublisher, ipc_endpoint: str
) -> None:
    with Subscriber(ipc_endpoint) as sub:
        scripted.wait_subscriptions(1)
        for topic in ("audio.orca_vocals", "audio.mix"):
            scripted.send(topic, _block(0, 5), sequence=0, first_sample=0, flags=START)
        for topic in ("audio.orca_vocals", "audio.mix"):
            scripted.send(topic, _block(5, 5), sequence=1, first_sample=5, flags=END)
        stems = [c.stem for c in sub if isinstance(c, Chunk)]
    assert stems == ["orca_vocals", "mix", "orca_vocals", "mix"]


def test_recv_times_out(ipc_endpoint: str) -> None:
    with Subscriber(ipc_endpoint, ["noise"]) as sub:
        assert sub.recv(0.05) is None
        assert not sub.ended


def test_curve_keys_go_together(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="go together"):
        Subscriber("ipc:///nowhere", curve_server_key="server.key")
    with pytest.raises(ConfigError, match="key file not found"):
        Subscriber("ipc:///nowhere", curve_server_key="nope.key", curve_client_key="x")


def test_a_subscriber_of_levels_and_status_acknowledges_every_prefix(ipc_endpoint: str) -> None:
    """Every valid subscription counts for the end-of-stream wait, levels and status included;
    the Subscriber withdraws them all once its audio topics ended, so the publisher closes long
    before its end timeout."""
    from streamsep.engine.pipeline import OutputChunk
    from streamsep.net.publish import Publisher, PublishSettings

    settings = PublishSettings(
        endpoints=[ipc_endpoint], end_timeout_seconds=60, levels_seconds=0.01, status_seconds=0.01
    )
    publisher = Publisher(settings, stems=("a",), sample_rate=8000, n_channels=1)
    publisher.start()
    try:
        with Subscriber(ipc_endpoint, ["a"], levels=True, status=True) as sub:
            assert publisher.wait_for_subscribers(3, 10)
            stems = np.full((1, 800, 1), 0.1, np.float32)
            publisher.write(OutputChunk(0, stems, stems[0], end_of_stream=True))
            publisher.close()
            seen = set()
            while not sub.ended:
                message = sub.recv(10)
                assert message is not None
                seen.add(message.topic)
            assert seen == {"audio.a", "levels", "status"}
            assert publisher.wait(10)  # not 60 s: all three prefixes were withdrawn
        assert publisher.stats()["subscriptions_rejected"] == 0
    finally:
        publisher.stop()
