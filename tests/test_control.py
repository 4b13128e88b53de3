"""Control endpoint: JSON status/ping over REQ/REP, errors, CURVE, and the file streamer's
status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import zmq

from streamsep.cli.stream import FileStreamer
from streamsep.engine.offline import Separator
from streamsep.errors import StreamsepError
from streamsep.net.control import MAX_MESSAGE_BYTES, ControlServer, ControlSettings, request
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
            "version": 1,
            "status": {"uptime_seconds": 1.5},
        }
        assert request(endpoint, {"cmd": "ping"}) == {"ok": True, "version": 1}
        reply = request(endpoint, {"cmd": "reboot"})
        assert reply["ok"] is False and "unknown command 'reboot'" in reply["error"]
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sock = context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send(b"not json")
        assert sock.poll(5000)
        assert b"request is not valid JSON" in sock.recv()
        sock.close()
        context.term()


def test_a_failing_status_callback_is_reported(ipc_endpoint: str) -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("boom")

    with ControlServer(ControlSettings(ipc_endpoint), broken):
        reply = request(ipc_endpoint, {"cmd": "status"})
    assert reply == {"ok": False, "version": 1, "error": "status failed: boom"}


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


def _raw_request(endpoint: str, frames: list[bytes], timeout: float = 5.0) -> dict[str, Any] | None:
    """Send ``frames`` as one REQ request; the JSON reply, or None if none came."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart(frames)
        if not sock.poll(int(timeout * 1000)):
            return None
        reply_frames = sock.recv_multipart()
        assert len(reply_frames) == 1, reply_frames
        reply = json.loads(reply_frames[0])
        assert isinstance(reply, dict)
        return reply
    finally:
        sock.close()
        context.term()


MALFORMED: list[tuple[str, list[bytes], str]] = [
    ("two frames", [b'{"cmd": "ping"}', b'{"cmd": "ping"}'], "expected a request of 1 frame"),
    ("empty frame", [b""], "not valid JSON"),
    ("not JSON", [b"not json"], "not valid JSON"),
    ("not UTF-8", [b'{"cmd": "\xff\xfe"}'], "not UTF-8"),
    ("UTF-16 JSON", ['{"cmd": "ping"}'.encode("utf-16")], "not UTF-8"),
    ("deeply nested", [b"[" * 10000 + b"]" * 10000], "request too large"),
    ("nested under the size limit", [b"[" * 5000 + b"]" * 5000], "nested too deeply"),
    ("5000-digit integer", [b'{"cmd": ' + b"9" * 5000 + b"}"], "not valid JSON"),
    ("array", [b'["ping"]'], "must be a JSON object, got an array"),
    ("string", [b'"ping"'], "must be a JSON object, got a string"),
    ("number", [b"42"], "must be a JSON object, got a number"),
    ("null", [b"null"], "must be a JSON object, got null"),
    ("no cmd", [b'{"command": "ping"}'], "unknown command None"),
    ("cmd not a string", [b'{"cmd": {"nested": [1, 2]}}'], "unknown command {'nested'"),
    ("unknown command", [b'{"cmd": "reboot"}'], "unknown command 'reboot'"),
    ("huge string", [json.dumps({"cmd": "x" * 60000}).encode()], "request too large"),
    ("huge command under the limit", [json.dumps({"cmd": "x" * 9000}).encode()], "'xxxx"),
    ("NaN", [b'{"cmd": NaN}'], "unknown command nan"),
    ("truncated", [b'{"cmd": "pi'], "not valid JSON"),
]


@pytest.mark.parametrize(
    "frames, expected", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_requests_get_one_error_reply_and_the_endpoint_keeps_serving(
    ipc_endpoint: str, frames: list[bytes], expected: str
) -> None:
    with ControlServer(ControlSettings(ipc_endpoint), dict) as server:
        reply = _raw_request(ipc_endpoint, frames)
        assert reply is not None, "no reply"
        assert reply["ok"] is False and reply["version"] == 1
        assert expected in reply["error"]
        assert len(reply["error"]) < 200  # the client's bytes are not echoed back at length
        assert request(ipc_endpoint, {"cmd": "ping"}) == {"ok": True, "version": 1}
        health = server.health()
    assert health["alive"] and health["requests"] == 2 and health["errors"] == 1
    assert health["last_error"] is not None and expected in health["last_error"]


def test_every_malformed_request_in_a_row_then_ping(ipc_endpoint: str) -> None:
    with ControlServer(ControlSettings(ipc_endpoint), lambda: {"a": 1}) as server:
        for name, frames, expected in MALFORMED:
            reply = _raw_request(ipc_endpoint, frames)
            assert reply is not None and expected in reply["error"], name
            assert request(ipc_endpoint, {"cmd": "ping"})["ok"] is True, name
        assert request(ipc_endpoint, {"cmd": "status"})["status"] == {"a": 1}
        health = server.health()
    assert health == {
        "alive": True,
        "requests": 2 * len(MALFORMED) + 1,
        "errors": len(MALFORMED),
        "last_error": health["last_error"],
    }
    assert not server.health()["alive"]  # stopped


def test_a_frame_over_the_message_limit_disconnects_only_that_peer(ipc_endpoint: str) -> None:
    with ControlServer(ControlSettings(ipc_endpoint), dict) as server:
        assert _raw_request(ipc_endpoint, [b"x" * (MAX_MESSAGE_BYTES + 1)], timeout=0.5) is None
        assert request(ipc_endpoint, {"cmd": "ping"}) == {"ok": True, "version": 1}
        assert server.health()["alive"]


def test_requests_without_a_req_envelope_are_ignored(ipc_endpoint: str) -> None:
    """A DEALER that skips the empty delimiter frame: libzmq's REP drops the message."""
    with ControlServer(ControlSettings(ipc_endpoint), dict) as server:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(ipc_endpoint)
        dealer.send_multipart([b'{"cmd": "ping"}'])
        dealer.send_multipart([b"", b"\xff", b"more"])  # delimiter, then two frames
        assert dealer.poll(5000)
        reply = json.loads(dealer.recv_multipart()[-1])
        assert "expected a request of 1 frame, got 2" in reply["error"]
        dealer.close()
        context.term()
        assert request(ipc_endpoint, {"cmd": "ping"}) == {"ok": True, "version": 1}
        assert server.health()["alive"]


def test_a_status_that_is_not_json_is_an_error_reply(ipc_endpoint: str) -> None:
    with ControlServer(ControlSettings(ipc_endpoint), lambda: {"x": float("nan")}) as server:
        reply = request(ipc_endpoint, {"cmd": "status"})
        assert reply["ok"] is False and "status failed" in reply["error"]
        assert request(ipc_endpoint, {"cmd": "ping"})["ok"] is True
        assert server.health()["errors"] == 1
