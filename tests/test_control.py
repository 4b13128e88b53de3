"""Control endpoint: JSON status/ping over REQ/REP, errors, CURVE, and the file streamer's
status."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import zmq

from streamsep.cli.stream import FileStreamer
from streamsep.engine.offline import Separator
from streamsep.errors import StreamsepError
from streamsep.net.control import ControlServer, ControlSettings, request
from streamsep.net.publish import PublishSettings
from streamsep.net.security import load_client_keys, make_keys

from ._net import free_tcp_endpoint, ipc_endpoint
from .test_publish import SMALL_PARAMS

__all__ = ["ipc_endpoint"]  # a fixture


def test_status_ping_and_errors() -> None:
    with ControlServer(
        ControlSettings(free_tcp_endpoint()), lambda: {"uptime_seconds": 1.5}
    ) as server:
        assert server.bound_endpoint is not None
        endpoint = server.bound_endpoint
        assert request(endpoint, {"cmd": "status"}) == {
            "ok": True,
            "status": {"uptime_seconds": 1.5},
        }
        assert request(endpoint, {"cmd": "ping"}) == {"ok": True}
        reply = request(endpoint, {"cmd": "reboot"})
        assert reply["ok"] is False and "unknown command 'reboot'" in reply["error"]
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sock = context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send(b"not json")
        assert sock.poll(5000)
        assert b"request is not JSON" in sock.recv()
        sock.close()
        context.term()


def test_a_failing_status_callback_is_reported(ipc_endpoint: str) -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("boom")

    with ControlServer(ControlSettings(ipc_endpoint), broken):
        reply = request(ipc_endpoint, {"cmd": "status"})
    assert reply == {"ok": False, "error": "status failed: boom"}


def test_bind_failure_is_raised_by_start(ipc_endpoint: str) -> None:
    with ControlServer(ControlSettings(ipc_endpoint), dict):
        with pytest.raises(StreamsepError, match="cannot bind"):
            ControlServer(
                ControlSettings(ipc_endpoint.replace("ipc://", "ipc:///nonexistent")), dict
            ).start()


def test_no_reply_times_out(ipc_endpoint: str) -> None:
    with pytest.raises(StreamsepError, match="no reply"):
        request(ipc_endpoint, {"cmd": "ping"}, timeout=0.1)


def test_curve_control(tmp_path: Path) -> None:
    _, server_secret = make_keys(tmp_path, "server")
    client_public, client_secret = make_keys(tmp_path, "client")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "client.key").write_bytes(client_public.read_bytes())
    settings = ControlSettings(free_tcp_endpoint(), str(server_secret), str(allowed))
    keys = load_client_keys(tmp_path / "server.key", client_secret)
    with ControlServer(settings, lambda: {"a": 1}) as server:
        assert server.bound_endpoint is not None
        assert request(server.bound_endpoint, {"cmd": "status"}, curve=keys)["status"] == {"a": 1}
        with pytest.raises(StreamsepError, match="no reply"):
            request(server.bound_endpoint, {"cmd": "status"}, timeout=0.5)  # no keys


def test_file_streamer_status(tmp_path: Path, rng: np.random.Generator, ipc_endpoint: str) -> None:
    x = (rng.standard_normal((8000, 2)) * 0.1).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 8000, subtype="FLOAT")
    separator = Separator(SMALL_PARAMS, "passthrough")
    control = ControlSettings(ipc_endpoint + "-control")
    publish = PublishSettings(endpoints=[ipc_endpoint])
    with FileStreamer(tmp_path / "in.wav", separator.model, publish, control=control) as streamer:
        streamer.start()
        assert streamer.wait(10)
        status = request(ipc_endpoint + "-control", {"cmd": "status"})["status"]
    assert status["samples_in"] == status["samples_out"] == 8000
    assert status["samples_lost"] == 0 and status["sample_rate"] == 8000
    assert status["latency_samples"] == separator.latency_samples
    assert status["real_time_factor"] > 0
    assert set(status["queue_depths"]) == {"ring", "jobs", "results"}
    assert status["model"].startswith("PassthroughModel") and status["stems"] == [
        "orca_vocals",
        "noise",
    ]
