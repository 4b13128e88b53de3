"""A private JACK server with the dummy backend, and a JACK client that injects test signals.

Device tests run through real PortAudio: the daemon's capture process opens PortAudio's JACK
host API on a server started here (``jackd --no-realtime -d dummy``), whose name every process
finds in ``JACK_DEFAULT_SERVER``. The test process itself never imports sounddevice (PortAudio
would register a client of its own); it only talks to the server with JACK-Client.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

JACK_RATE = 48000
JACK_PERIOD = 1024

Signal = Callable[[int, int], np.ndarray]
"""``signal(first_frame, n_frames) -> (n_frames, n_ports) float32``."""


def counter_signal(period: int = 4096) -> Signal:
    """A two-port sample counter: port 0 plays ``(k % period + 1) / 8192`` and port 1
    ``-(k // period % period + 1) / 8192`` for sample ``k``. Never zero, exactly
    representable in float32 and in 24-bit integers, and coarse enough to decode after STFT ->
    inverse STFT; together the ports count to ``period**2`` (2**24: 5.8 min at 48 kHz)."""

    def make(first: int, n: int) -> np.ndarray:
        k = np.arange(first, first + n, dtype=np.int64)
        out = np.empty((n, 2), dtype=np.float32)
        out[:, 0] = ((k % period) + 1).astype(np.float32) / np.float32(8192)
        out[:, 1] = -((k // period % period) + 1).astype(np.float32) / np.float32(8192)
        return out

    return make


def decode_counter(x: np.ndarray, period: int = 4096) -> np.ndarray:
    """Inverse of :func:`counter_signal`: ``k % period**2`` per row of ``x`` (n, 2); -1 where
    silent."""
    x = np.asarray(x, dtype=np.float64)
    low = np.rint(x[:, 0] * 8192).astype(np.int64) - 1
    high = np.rint(-x[:, 1] * 8192).astype(np.int64) - 1
    return np.where((low < 0) | (high < 0), -1, high * period + low)


def table_signal(table: np.ndarray) -> Signal:
    """Plays ``table`` (n_samples,) on every port, looping."""
    table = np.asarray(table, dtype=np.float32)

    def make(first: int, n: int) -> np.ndarray:
        index = np.arange(first, first + n) % table.shape[0]
        return np.repeat(table[index][:, None], 2, axis=1)

    return make


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


class JackServer:
    """``jackd --no-realtime -n NAME -d dummy`` under a unique name."""

    def __init__(self, rate: int = JACK_RATE, period: int = JACK_PERIOD) -> None:
        if shutil.which("jackd") is None:
            pytest.fail("jackd not found: install jackd2 (bash .ci/setup does)")
        self.name = f"ssep{uuid.uuid4().hex[:8]}"
        self.rate = rate
        self.period = period
        self.process: subprocess.Popen[bytes] | None = None
        self.env = dict(
            os.environ,
            JACK_DEFAULT_SERVER=self.name,
            JACK_NO_AUDIO_RESERVATION="1",
            JACK_NO_START_SERVER="1",
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until a client can connect."""
        self.process = subprocess.Popen(
            ["jackd", "--no-realtime", "-n", self.name, "-d", "dummy"]
            + ["-r", str(self.rate), "-p", str(self.period), "-C", "2", "-P", "2"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def connects() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"jackd exited with code {self.process.returncode}")
            try:
                self.client("probe").close()
            except Exception:  # noqa: BLE001 - jack.JackOpenError while it starts
                return False
            return True

        wait_for(connects, timeout, f"JACK server {self.name}")

    def client(self, name: str) -> Any:
        """A JACK-Client connection to this server."""
        import jack

        return jack.Client(name, no_start_server=True, servername=self.name)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server abruptly (the test of device loss) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)

    def pause(self, seconds: float) -> None:
        """Freeze the server for ``seconds`` (SIGSTOP/SIGCONT): its clients see an xrun and
        PortAudio flags an input overflow. The dummy driver skips no frames: it runs late."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server and remove its shared-memory files."""
        self.kill(signal.SIGTERM)
        for path in Path("/dev/shm").glob(f"*{self.name}*"):
            path.unlink(missing_ok=True)


class Injector:
    """A JACK client with two output ports playing ``signal`` into PortAudio's input ports.

    ``frames`` counts the frames played since :meth:`start`; ``connected_at`` is the frame at
    which the connection to PortAudio was made.
    """

    def __init__(self, server: JackServer, signal_fn: Signal, name: str = "injector") -> None:
        self.client = server.client(name)
        self.ports = [self.client.outports.register(f"out_{i}") for i in range(2)]
        self._signal = signal_fn
        self.frames = 0
        self.connected_at: int | None = None
        self._lock = threading.Lock()
        self.client.set_process_callback(self._process)

    def _process(self, n: int) -> None:
        # Indexed by the frames played. Not by JACK's last_frame_time: after a server stall it
        # jitters by a period (measured: +2048 then +0 on two cycles), which would play one
        # period twice; the dummy server skips no frames in a stall, so the count is exact.
        block = self._signal(self.frames, n)
        for i, port in enumerate(self.ports):
            port.get_array()[:] = block[:, i]
        self.frames += n

    def start(self) -> Injector:
        self.client.activate()
        return self

    def capture_ports(self) -> list[str]:
        """PortAudio's input ports (any input port not of the ``system`` client), sorted."""
        ports = self.client.get_ports(is_input=True, is_audio=True)
        return sorted(p.name for p in ports if not p.name.startswith(("system:", "injector")))

    def connect(self, timeout: float = 30.0) -> list[str]:
        """Wait until PortAudio's ports exist, then connect out_i -> in_i."""
        n = len(self.ports)
        targets = wait_for(
            lambda: (ports := self.capture_ports()) and len(ports) >= n and ports,
            timeout,
            f"{n} PortAudio JACK input ports",
        )
        for port, target in zip(self.ports, targets, strict=False):
            self.client.connect(port, target)
        self.connected_at = self.frames
        return list(targets)

    def close(self) -> None:
        try:
            self.client.deactivate()
            self.client.close()
        except Exception:  # noqa: BLE001 - the server may be gone already
            pass


@pytest.fixture(scope="module")
def jack_server() -> Iterator[JackServer]:
    """A private JACK dummy server (48 kHz, period 1024) for the tests of one module."""
    server = JackServer()
    server.start()
    yield server
    server.stop()
