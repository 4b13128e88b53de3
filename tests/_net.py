"""Helpers of the network tests: local endpoints, a spec-only decoder, a scripted publisher."""

from __future__ import annotations

import shutil
import socket
import struct
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zmq


def free_tcp_endpoint() -> str:
    """A loopback TCP endpoint on a port the OS just handed out."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


@pytest.fixture
def ipc_endpoint() -> Iterator[str]:
    """An ipc:// endpoint in a fresh short temp folder (socket paths are limited to ~100
    bytes, too short for pytest's tmp_path)."""
    folder = tempfile.mkdtemp(prefix="ssep")
    yield f"ipc://{folder}/pub"
    shutil.rmtree(folder, ignore_errors=True)


# The decoder of acceptance 1: written from docs/protocol.md (table 1 and table 3) alone,
# with struct and NumPy; it imports nothing from streamsep.
SPEC_HEADER = "<4sHHIIQQqQQIHH"
SPEC_FIELDS = (
    "magic version header_size flags n_frames sequence first_sample capture_time_ns "
    "lost_samples filled_samples sample_rate n_channels sample_format"
).split()


def spec_decode(frames: list[bytes]) -> tuple[str, dict[str, Any], np.ndarray]:
    """``(topic, header fields, samples (n_frames, n_channels) float32)`` of an audio message."""
    topic = bytes(frames[0]).decode()
    header = dict(zip(SPEC_FIELDS, struct.unpack_from(SPEC_HEADER, bytes(frames[1])), strict=True))
    assert header["magic"] == b"SSEP" and header["version"] == 1
    assert header["header_size"] == len(frames[1]) == 64
    dtype = {1: "<f4", 2: "<i2"}[header["sample_format"]]
    raw = np.frombuffer(bytes(frames[2]), dtype=dtype)
    samples = raw.reshape(header["n_frames"], header["n_channels"]).astype(np.float32)
    if header["sample_format"] == 2:
        samples = samples / np.float32(32767)
    return topic, header, samples


def spec_collect(
    sock: zmq.Socket[bytes], n_topics: int, timeout: float
) -> dict[str, list[tuple[dict[str, Any], np.ndarray]]]:
    """Receive audio messages until ``n_topics`` topics have sent END_OF_STREAM (flag 2)."""
    out: dict[str, list[tuple[dict[str, Any], np.ndarray]]] = {}
    ended: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(ended) < n_topics:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; ended: {sorted(ended)}"
        if not sock.poll(int(remaining * 1000) + 1):
            continue
        topic, header, samples = spec_decode(sock.recv_multipart())
        out.setdefault(topic, []).append((header, samples))
        if header["flags"] & 2:
            ended.add(topic)
    return out


class ScriptedPublisher:
    """An XPUB socket that sends hand-made audio messages (for subscriber-side tests)."""

    def __init__(self, endpoint: str) -> None:
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.socket = self.context.socket(zmq.XPUB)
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.socket.bind(endpoint)

    def wait_subscriptions(self, n: int, timeout: float = 10.0) -> None:
        """Block until ``n`` subscription messages arrived."""
        deadline = time.monotonic() + timeout
        seen = 0
        while seen < n:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"expected {n} subscriptions, got {seen}"
            if self.socket.poll(int(remaining * 1000) + 1) and self.socket.recv()[:1] == b"\1":
                seen += 1

    def send(
        self,
        topic: str,
        samples: np.ndarray,
        *,
        sequence: int,
        first_sample: int,
        flags: int = 0,
        lost: int = 0,
        rate: int = 8000,
        start_ns: int = 1_764_000_000_000_000_000,
    ) -> None:
        """Send one float32 audio message built per the spec."""
        n_frames, n_channels = samples.shape
        header = struct.pack(
            SPEC_HEADER, b"SSEP", 1, 64, flags, n_frames, sequence, first_sample,
            start_ns + first_sample * 10**9 // rate, lost, 0, rate, n_channels, 1,
        )  # fmt: skip
        payload = np.ascontiguousarray(samples, dtype="<f4").tobytes()
        self.socket.send_multipart([topic.encode(), header, payload])

    def close(self) -> None:
        self.socket.close()
        self.context.term()
