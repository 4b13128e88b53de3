"""Helpers of the daemon tests: configs, a daemon subprocess, a systemd notify socket, stderr
rules, subscriber collection."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from streamsep.net.subscribe import Chunk, JsonMessage, Subscriber

from .jack import wait_for

PASSTHROUGH_PARAMS: dict[str, Any] = {
    "instrument_list": ["orca_vocals", "noise"],
    "frame_length": 512,
    "frame_step": 128,
    "T": 16,
    "F": 257,  # frame_length / 2 + 1: the model sees every bin
    "n_channels": 2,
    "mask_extension": "zeros",
}


def write_params(folder: Path, sample_rate: int) -> Path:
    """A passthrough model's params JSON at ``sample_rate``."""
    path = folder / f"passthrough{sample_rate}.json"
    path.write_text(json.dumps({**PASSTHROUGH_PARAMS, "sample_rate": sample_rate}))
    return path


def toml_text(sections: dict[str, dict[str, Any]]) -> str:
    """A TOML document of flat tables (strings, numbers, booleans, lists)."""
    lines = []
    for section, table in sections.items():
        lines.append(f"[{section}]")
        for key, value in table.items():
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\w+) ([\w.]+): ")


def unexpected_tracebacks(stderr: str) -> list[str]:
    """Tracebacks in a daemon's stderr that no logged error explains.

    A traceback is expected only right after a log record of level ERROR from a ``streamsep``
    logger (what ``_LOGGER.exception`` writes), with nothing but traceback lines in between.
    Anything else is an escaped exception: "Exception in thread ...", a traceback printed by
    the interpreter, or one after foreign output (PortAudio and JACK write plain lines to
    stderr, which are allowed).
    """
    bad = []
    explained = False
    for line in stderr.splitlines():
        record = LOG_RECORD.match(line)
        if record:
            explained = record.group(1) == "ERROR" and record.group(2).startswith("streamsep")
            continue
        if line.startswith("Exception in thread") or "Fatal Python error" in line:
            bad.append(line)
        elif line.startswith("Traceback (most recent call last):"):
            if not explained:
                bad.append(line)
        elif not line.startswith((" ", "\t")) and not re.match(r"^[\w.]+(Error|Exception)\b", line):
            explained = False  # foreign output ends a logged traceback
    return bad


class DaemonProcess:
    """``python -m streamsep.cli.daemon run -c CONFIG`` with stderr in a file."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("w")
        self._sigterm_at = 0.0
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamsep.cli.daemon", "run", "-c", str(config)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_log(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        def find() -> re.Match[str] | None:
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited ({self.process.returncode}):\n{self.log()}")
            return re.search(pattern, self.log())

        return wait_for(find, timeout, f"{pattern!r} in the daemon log")

    def terminate(self, timeout: float = 20.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds to exit)."""
        self.sigterm()
        return self.wait_exit(timeout)

    def sigterm(self) -> None:
        """Send SIGTERM and return at once (read the end of stream, then :meth:`wait_exit`:
        the publisher waits for subscribers to acknowledge the end)."""
        self._sigterm_at = time.monotonic()
        self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float = 20.0) -> tuple[int, float]:
        """Wait for the exit after :meth:`sigterm`; returns (exit code, seconds from SIGTERM)."""
        code = self.process.wait(timeout)
        return code, time.monotonic() - self._sigterm_at

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()

    def final_counts(self) -> dict[str, int]:
        """The numbers of the daemon's last log line ("stopped: samples_captured=...")."""
        match = re.search(r"stopped: (.*)", self.log())
        assert match, self.log()
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


class NotifyListener:
    """A bound AF_UNIX datagram socket standing in for systemd's ``$NOTIFY_SOCKET``."""

    def __init__(self) -> None:
        self._folder = tempfile.mkdtemp(prefix="ssep")  # socket paths are limited to ~100 bytes
        self.path = f"{self._folder}/notify"
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.path)
        self._socket.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def lines(self) -> list[str]:
        return [line for _, message in self.messages for line in message.splitlines()]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._socket.close()
        shutil.rmtree(self._folder, ignore_errors=True)


def collect(
    subscriber: Subscriber,
    into: dict[str, list[Chunk]],
    until: Callable[[], bool],
    timeout: float,
    what: str,
) -> None:
    """Receive audio chunks into ``into[stem]`` until ``until()`` or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        message = subscriber.recv(0.1)
        if message is None or isinstance(message, JsonMessage):
            continue
        into.setdefault(message.stem, []).append(message)


def received_seconds(chunks: list[Chunk], rate: int) -> float:
    """Nonzero audio received, seconds."""
    return sum(int(np.count_nonzero(c.samples[:, 0])) for c in chunks) / rate


def concat(chunks: list[Chunk]) -> tuple[int, np.ndarray]:
    """``(first index, samples)`` of chunks that must be contiguous (asserted)."""
    for previous, chunk in zip(chunks, chunks[1:], strict=False):
        assert chunk.missing == 0 and chunk.first_sample == previous.end_sample, (
            f"{chunk.stem}: chunk at {chunk.first_sample} follows one ending at "
            f"{previous.end_sample} (missing {chunk.missing})"
        )
    return chunks[0].first_sample, np.concatenate([c.samples for c in chunks])


def damaged_file(folder: Path, damage: str, n_samples: int, rate: int) -> tuple[Path, int]:
    """A stereo file of ``n_samples`` in its header, damaged: ``cut_flac``, ``cut_wav`` (the
    second half of the bytes gone), ``corrupt_flac`` (random bytes from the middle on) or
    ``garbage_flac`` (random bytes after the header). Returns the path and the samples
    libsndfile can still read in the file source's 1024-sample reads (a read that fails
    returns nothing)."""
    audio = 0.3 * np.random.default_rng(5).uniform(-1, 1, (n_samples, 2))
    fmt = "WAV" if damage.endswith("wav") else "FLAC"
    path = folder / f"{damage}.{fmt.lower()}"
    sf.write(path, audio, rate, format=fmt, subtype="PCM_16")
    data = path.read_bytes()
    keep = 200 if damage == "garbage_flac" else len(data) // 2
    garbage = b"" if damage.startswith("cut") else np.random.default_rng(3).bytes(len(data) - keep)
    data = data[:keep] + garbage
    path.write_bytes(data)
    readable = 0
    try:
        with sf.SoundFile(path) as f:
            while (n := f.read(1024, dtype="float32").shape[0]) > 0:
                readable += n
    except sf.LibsndfileError:
        pass
    assert readable < n_samples
    return path, readable
