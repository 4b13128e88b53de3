"""The event log and clip writer: an append-only JSON-lines file (``events.jsonl``) and FLAC
clips in the events folder, written on their own thread (``streamsep-events``).

Every line of ``events.jsonl`` is one JSON object with ``version`` (1) and ``kind``:
``event`` (the body published on the ``events`` topic, written as soon as the event ends) or
``clip`` (``event_id``,
``first_index``, ``n_samples``, ``sample_rate``, ``files``: signal name -> file name, written
when its post-roll has passed). Lines are only ever appended.

The disk guard is the archive's rule (``archive.min_free_mb``): below it nothing is written (an
event not logged is logged as an ERROR with its JSON instead, and counted), and writing resumes
above ``1.1 x min_free_mb``. The exec hook, if set, runs on this thread after an event is
logged, with the event JSON on its stdin.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import soundfile as sf

from streamsep.events.clips import Clip, write_clip
from streamsep.events.record import clip_name

__all__ = ["DiskGuard", "EventStore", "StoreStats", "LOG_NAME"]

_LOGGER = logging.getLogger(__name__)

LOG_NAME: Final = "events.jsonl"
LOG_VERSION: Final = 1
"""``version`` of every log line (the same as the ``events`` messages')."""
_CHECK_SECONDS: Final = 5.0
_RESUME_FACTOR: Final = 1.1
_JOIN_SECONDS: Final = 10.0


class DiskGuard:
    """Free-space check with hysteresis: not ok below ``min_free_mb``, ok again above
    ``1.1 x min_free_mb``; checked at most every 5 s while ok."""

    def __init__(
        self, directory: Path, min_free_mb: float, disk_free: Callable[[Path], int] | None = None
    ) -> None:
        self.directory = directory
        self.limit = min_free_mb * 1024 * 1024
        self._disk_free = disk_free or (lambda path: shutil.disk_usage(path).free)
        self.stopped = False
        self._due = 0.0

    def ok(self) -> bool:
        """Whether writing may go on (called on the writer thread)."""
        now = time.monotonic()
        if not self.stopped and now < self._due:
            return True
        self._due = now + _CHECK_SECONDS
        try:
            free = int(self._disk_free(self.directory))
        except OSError as e:
            _LOGGER.error("events: cannot check free space in %s: %s", self.directory, e)
            return not self.stopped
        if self.stopped and free >= self.limit * _RESUME_FACTOR:
            _LOGGER.warning("events: resuming, %.0f MiB free", free / 2**20)
            self.stopped = False
        elif not self.stopped and free < self.limit:
            _LOGGER.error(
                "events: STOPPED writing: only %.0f MiB free in %s", free / 2**20, self.directory
            )
            self.stopped = True
        return not self.stopped


@dataclass
class StoreStats:
    """Counters (read from any thread)."""

    events_logged: int = 0
    events_not_logged: int = 0
    """Events the disk guard or a write error kept out of the log (in the daemon log instead)."""
    clips_written: int = 0
    clips_dropped: int = 0
    """Clips not written: queue full, disk guard, write errors."""
    exec_failures: int = 0


class EventStore:
    """Appends events to the log and writes clips, on its own thread.

    Parameters
    ----------
    directory : Path
        The events folder (must exist and be writable).
    sample_rate : int
        Rate of the clips, Hz.
    sample_format : str
        ``float32`` or ``int16``: how clip samples are stored (:mod:`streamsep.events.clips`).
    node : str
        Prefix of the clip names.
    guard : DiskGuard
    queue_events : int
        Items waiting before clips are dropped (events are always queued).
    exec_command : tuple of str
        The exec hook (empty: none); ``exec_timeout_seconds`` bounds it.
    """

    def __init__(
        self,
        directory: Path,
        *,
        sample_rate: int,
        sample_format: str,
        node: str,
        guard: DiskGuard,
        queue_events: int,
        exec_command: tuple[str, ...] = (),
        exec_timeout_seconds: float = 30.0,
    ) -> None:
        self.directory = directory
        self.log_path = directory / LOG_NAME
        self.sample_rate = sample_rate
        self.sample_format = sample_format
        self.node = node
        self.guard = guard
        self.exec_command = exec_command
        self.exec_timeout_seconds = exec_timeout_seconds
        self._capacity = queue_events
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self._clips_queued = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._clock: Callable[[int], int] = lambda index: 0
        self.stats = StoreStats()
        self.idle = threading.Event()
        """Set whenever the queue is empty and nothing is being written."""
        self.idle.set()

    def start(self, clock: Callable[[int], int]) -> None:
        """Start the writer thread; ``clock(index) -> UTC ns`` names the clips."""
        self._clock = clock
        self._thread = threading.Thread(target=self._run, name="streamsep-events", daemon=True)
        self._thread.start()

    def put_event(self, body: dict[str, Any]) -> None:
        """Queue an event for the log (never blocks, never dropped)."""
        self.idle.clear()
        self._queue.put(("event", body))

    def put_clip(self, clip: Clip) -> None:
        """Queue a clip; a full queue drops it (counted, logged). Never blocks."""
        with self._lock:
            if self._clips_queued >= self._capacity:
                self.stats.clips_dropped += 1
                _LOGGER.warning("events: clip of %s dropped (writer behind)", clip.event_id)
                return
            self._clips_queued += 1
        self.idle.clear()
        self._queue.put(("clip", clip))

    def close(self) -> None:
        """Write what is queued, then stop the thread (joins it)."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(_JOIN_SECONDS + self.exec_timeout_seconds)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self.idle.set()
                return
            kind, value = item
            try:
                if kind == "event":
                    self._log_event(value)
                else:
                    with self._lock:
                        self._clips_queued -= 1
                    self._write_clip(value)
            except Exception:  # noqa: BLE001 - one bad item must not end the thread
                _LOGGER.exception("events: writing %s failed", kind)
            if self._queue.empty():
                self.idle.set()

    def _append(self, record: dict[str, Any]) -> bool:
        if not self.guard.ok():
            return False
        line = json.dumps({"version": LOG_VERSION, **record}, allow_nan=False) + "\n"
        try:
            with self.log_path.open("a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
        except OSError as e:
            _LOGGER.error("events: cannot append to %s: %s", self.log_path, e)
            return False
        return True

    def _log_event(self, body: dict[str, Any]) -> None:
        if self._append(body):
            self.stats.events_logged += 1
        else:
            self.stats.events_not_logged += 1
            _LOGGER.error("events: not logged (disk): %s", json.dumps(body))
        if self.exec_command:
            self._exec(body)

    def _write_clip(self, clip: Clip) -> None:
        if not self.guard.ok():
            self.stats.clips_dropped += 1
            return
        first_ns = self._clock(clip.first_index)
        files = {}
        try:
            for name, samples in clip.signals.items():
                path = self.directory / clip_name(self.node, first_ns, name)
                write_clip(path, samples, self.sample_rate, self.sample_format)
                files[name] = path.name
        except (OSError, RuntimeError, sf.LibsndfileError) as e:
            _LOGGER.error("events: cannot write the clip of %s: %s", clip.event_id, e)
            self.stats.clips_dropped += 1
            return
        self.stats.clips_written += 1
        self._append(
            {
                "kind": "clip",
                "event_id": clip.event_id,
                "first_index": clip.first_index,
                "n_samples": clip.n_samples,
                "sample_rate": self.sample_rate,
                "sample_format": self.sample_format,
                "files": files,
            }
        )

    def _exec(self, body: dict[str, Any]) -> None:
        try:
            done = subprocess.run(
                list(self.exec_command),
                input=json.dumps(body).encode(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=self.exec_timeout_seconds,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            self.stats.exec_failures += 1
            _LOGGER.error("events: exec hook %s failed: %s", self.exec_command[0], e)
            return
        if done.returncode != 0:
            self.stats.exec_failures += 1
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
            _LOGGER.error("events: exec hook exited %d: %s", done.returncode, " ".join(tail))
