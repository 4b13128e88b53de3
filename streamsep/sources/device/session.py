"""One capture process and the frames it sends over its stdout pipe.

:class:`CaptureSession` starts ``python -m streamsep.sources.device.process`` (see
:mod:`streamsep.sources.device.process` for why PortAudio runs in a child process), sends it
``start``/``stop`` on stdin, splits its stdout into frames (:data:`process.FRAME` headers and
payloads), and kills it with SIGKILL when done: PortAudio may be wedged in a dead JACK server.
:class:`~streamsep.sources.device.source.DeviceSource` runs one session after another.
"""

from __future__ import annotations

import os
import select
import subprocess
from typing import Any, Final

from streamsep.sources.device import process as cap
from streamsep.sources.device.capture import CaptureSettings

__all__ = ["CaptureSession", "KILL_WAIT_SECONDS"]

KILL_WAIT_SECONDS: Final = 5.0
"""How long a killed capture process is waited for."""
_READ_BYTES: Final = 1 << 16
_CHILD_ENV_DROP: Final = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS")


class CaptureSession:
    """One capture process (``python -m streamsep.sources.device.process``) and its frame
    stream; the daemon's environment is passed on without systemd's variables."""

    def __init__(self, settings: CaptureSettings, python: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _CHILD_ENV_DROP}
        self.process = subprocess.Popen(
            [python, "-m", "streamsep.sources.device.process", settings.to_json()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        self.fd = self.process.stdout.fileno()
        self._buffer = bytearray()
        self.eof = False
        self.stats: dict[str, Any] = {}

    def send(self, command: str) -> None:
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(command.encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def frames(self, timeout: float) -> list[tuple[int, int, int, bytes]]:
        """Frames that arrive within ``timeout`` seconds (possibly none)."""
        if not self.eof:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if ready:
                data = os.read(self.fd, _READ_BYTES)
                if data:
                    self._buffer += data
                else:
                    self.eof = True
        out = []
        size = cap.FRAME.size
        while len(self._buffer) >= size:
            kind, n_bytes, a, b = cap.FRAME.unpack_from(self._buffer)
            if len(self._buffer) < size + n_bytes:
                break
            payload = bytes(self._buffer[size : size + n_bytes])
            del self._buffer[: size + n_bytes]
            out.append((kind, a, b, payload))
        return out

    def kill(self) -> int | None:
        """End the process (SIGKILL: PortAudio may be wedged) and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        try:
            code = self.process.wait(KILL_WAIT_SECONDS)
        except subprocess.TimeoutExpired:  # pragma: no cover - unkillable process
            code = None
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        return code
