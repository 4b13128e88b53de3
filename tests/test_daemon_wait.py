"""``[source] wait_subscribers``: a file replay that waits for its listeners before reading.

ZeroMQ delivers nothing sent before a subscription reaches the publisher, and an unpaced file
(``realtime = false``) can be published in full in milliseconds: without the wait a subscriber
that joins a moment late sees nothing at all (the soak tool's failure on a loaded CI machine).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamsep.daemon.config import load_config
from streamsep.daemon.sdnotify import Notifier
from streamsep.daemon.supervisor import Daemon, State
from streamsep.errors import ConfigError, StreamsepError
from streamsep.net.subscribe import Chunk, Subscriber

from ._daemon import collect, concat, toml_text, write_params
from ._net import free_tcp_endpoint

RATE = 16000
WAITING = "waiting for"  # the daemon's log line while it waits (streamsep.daemon.wiring)


class _Seen(logging.Handler):
    """Sets an event when a record containing ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.INFO)
        self.text = text
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


def _config(tmp_path: Path, endpoint: str, n_samples: int, **source: object) -> Path:
    audio = np.random.default_rng(5).standard_normal(n_samples).astype(np.float32) * 0.1
    sf.write(tmp_path / "in.wav", audio, RATE, subtype="FLOAT")
    params = write_params(tmp_path, RATE)
    path = tmp_path / "wait.toml"
    path.write_text(
        toml_text(
            {
                "source": {"kind": "file", "path": "in.wav", "realtime": False, **source},
                "model": {"params": params.name, "model": "passthrough"},
                "publish": {"endpoints": [endpoint], "levels_seconds": 0, "status_seconds": 0},
            }
        )
    )
    return path


class _Run:
    """``Daemon.run`` on a thread (no signal handlers there), its result or error kept."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="daemon-under-test")

    def _run(self) -> None:
        try:
            self.code = self.daemon.run()
        except BaseException as e:  # noqa: BLE001 - kept for the test to assert on
            self.error = e


@pytest.fixture
def waiting_log() -> _Seen:
    handler = _Seen(WAITING)
    logger = logging.getLogger("streamsep.daemon")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_the_file_is_read_only_after_the_subscription_arrives(
    tmp_path: Path, waiting_log: _Seen
) -> None:
    n = RATE * 2 + 77
    endpoint = free_tcp_endpoint()
    daemon = Daemon(
        load_config(_config(tmp_path, endpoint, n, wait_subscribers=1)), notifier=Notifier({})
    )
    run = _Run(daemon)
    run.thread.start()
    subscriber: Subscriber | None = None
    try:
        assert waiting_log.event.wait(30), "the daemon never said it was waiting"
        publisher = daemon.components.publisher
        assert publisher is not None and publisher.stats()["chunks_in"] == 0
        subscriber = Subscriber(endpoint, ["orca_vocals"], hwm=0)  # joins after the bind
        chunks: dict[str, list[Chunk]] = {}
        collect(subscriber, chunks, lambda: subscriber.ended, 30, "the end of stream")
        run.thread.join(30)
    finally:
        if subscriber is not None:
            subscriber.close()
        daemon.request_stop()
        run.thread.join(30)
    assert run.error is None and run.code == 0
    first, samples = concat(chunks["orca_vocals"])
    assert first == 0 and len(samples) == n  # every sample, from the first
    assert daemon.state is State.STOPPED


def test_no_subscriber_within_wait_seconds_is_a_clear_error(tmp_path: Path) -> None:
    config = _config(tmp_path, free_tcp_endpoint(), RATE, wait_subscribers=2, wait_seconds=0.3)
    daemon = Daemon(load_config(config), notifier=Notifier({}))
    with pytest.raises(StreamsepError) as info:
        daemon.run()
    assert str(info.value) == (
        "source.wait_subscribers: expected 2 subscription(s) within source.wait_seconds = 0.3 s,"
        " got 0"
    )
    assert daemon.state is State.STOPPED


def test_a_stop_request_ends_the_wait(tmp_path: Path, waiting_log: _Seen) -> None:
    config = _config(tmp_path, free_tcp_endpoint(), RATE, wait_subscribers=1, wait_seconds=600)
    daemon = Daemon(load_config(config), notifier=Notifier({}))
    run = _Run(daemon)
    run.thread.start()
    assert waiting_log.event.wait(30), "the daemon never said it was waiting"
    daemon.request_stop()  # what SIGTERM does
    run.thread.join(10)
    assert not run.thread.is_alive(), "a stop request did not end the wait"
    assert run.error is None and run.code == 0  # "stopped during start-up"
    assert daemon.state is State.STOPPED


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("wait_subscribers", -1, "source.wait_subscribers must be an integer >= 0, got -1"),
        ("wait_subscribers", 1.5, "source.wait_subscribers must be an integer >= 0, got 1.5"),
        ("wait_seconds", 0, "source.wait_seconds must be a number > 0, got 0"),
    ],
)
def test_bad_wait_settings_name_the_key(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    config = _config(tmp_path, free_tcp_endpoint(), RATE, **{key: value})
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert message in str(info.value)
