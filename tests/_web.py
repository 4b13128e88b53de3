"""Helpers of the web monitor tests: a publisher of a known tone, paced in real time, whose
stalls (dropped chunks), silence fills and restarts happen where the test says; and a
headless Debian chromium driven by Playwright."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamsep.engine.pipeline import OutputChunk
from streamsep.events.settings import EventsSettings
from streamsep.events.tap import EventTap
from streamsep.net.publish import Publisher, PublishSettings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip


class TonePublisher:
    """Publishes ``orca_vocals`` = a sine of ``tone_hz`` (from ``tone_start_seconds``),
    ``noise`` = white noise, and ``mix`` = their sum, mono, in chunks of ``chunk`` samples,
    each written when its last sample's capture time has passed (``speed`` x real time).

    ``skip(n)`` makes the next ``n`` samples go missing (as a stalled publisher that dropped
    them: a ``lost_samples`` gap); ``fill(n)`` marks the next ``n`` as silence-filled. Every
    published orca sample is kept in ``orca`` (index -> value) for comparisons. With
    ``events`` (an :class:`EventsSettings`), every chunk also goes through the daemon's
    :class:`EventTap` (detector, log in ``events.directory``, ``events`` topic), as in the
    daemon; the tone stops at ``tone_end_seconds`` when given.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        rate: int = 16000,
        chunk: int = 800,
        tone_hz: float = 1000.0,
        tone_start_seconds: float = 0.0,
        tone_end_seconds: float | None = None,
        amplitude: float = 0.3,
        speed: float = 1.0,
        seconds: float | None = None,
        status: Any = None,
        sensitivity_db_re_1v_per_upa: float | None = None,
        events: EventsSettings | None = None,
    ) -> None:
        self.endpoint, self.rate, self.chunk, self.tone_hz = endpoint, rate, chunk, tone_hz
        self.tone_start = int(tone_start_seconds * rate)
        self.tone_end = None if tone_end_seconds is None else int(tone_end_seconds * rate)
        self.amplitude, self.speed = amplitude, speed
        self.total = None if seconds is None else int(seconds * rate)
        self.publisher = Publisher(
            PublishSettings(
                endpoints=(endpoint,), levels_seconds=1.0, status_seconds=0.5,
                end_timeout_seconds=2.0, hwm=1000,
                sensitivity_db_re_1v_per_upa=sensitivity_db_re_1v_per_upa,
            ),
            stems=("orca_vocals", "noise"), sample_rate=rate, n_channels=1, status=status,
        )  # fmt: skip
        self.tap = None
        if events is not None:
            Path(events.directory).mkdir(parents=True, exist_ok=True)  # as the daemon does
            self.tap = EventTap(
                events, stems=("orca_vocals", "noise"), sample_rate=rate, clock=self.time_ns,
                publish=self.publisher.send_json, model="tone",
            )  # fmt: skip
        self.t0_ns = 0
        self.index = 0
        self.orca: dict[int, float] = {}
        self._skip = 0
        self._fill = 0
        self._closed = False
        self.skipped: list[tuple[int, int]] = []  # (first index, n)
        self.filled: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(1)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.done = threading.Event()

    def start(self) -> TonePublisher:
        if self.tap is not None:
            self.tap.start()
        self.publisher.start()
        self.t0_ns = time.time_ns()
        self.publisher.set_capture_start(self.t0_ns)
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def time_ns(self, index: int) -> int:
        """Capture time of ``index`` (as the publisher stamps it)."""
        return self.t0_ns + index * 10**9 // self.rate

    def skip(self, n: int) -> None:
        with self._lock:
            self._skip += n

    def fill(self, n: int) -> None:
        with self._lock:
            self._fill += n

    def orca_signal(self, first: int, n: int) -> np.ndarray:
        i = np.arange(first, first + n)
        x = self.amplitude * np.sin(2 * np.pi * self.tone_hz * i / self.rate)
        end = first + n if self.tone_end is None else self.tone_end
        on = (i >= self.tone_start) & (i < end)
        return np.where(on, x, 0.0).astype(np.float32)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.total is not None and self.index >= self.total:
                break
            due = self._t0 + (self.index + self.chunk) / self.rate / self.speed
            if self._stop.wait(max(0.0, due - time.monotonic())):
                break
            with self._lock:
                skip, self._skip = self._skip, 0
                fill, self._fill = self._fill, 0
            if skip:
                self.skipped.append((self.index, skip))
                self.index += skip
                continue
            orca = self.orca_signal(self.index, self.chunk)
            noise = (self._rng.standard_normal(self.chunk) * 0.05).astype(np.float32)
            gaps = []
            if fill:
                orca[:fill] = 0.0
                noise[:fill] = 0.0
                gaps = [(self.index, fill)]
                self.filled.append((self.index, fill))
            self.orca.update(zip(range(self.index, self.index + self.chunk), orca, strict=True))
            stems = np.stack([orca, noise])[:, :, None]
            chunk = OutputChunk(self.index, stems, (orca + noise)[:, None], gaps)
            self.publisher.write(chunk)
            if self.tap is not None:
                self.tap.write(chunk)
            self.index += self.chunk
        if not self._stop.is_set():  # ran to its end: end-of-stream messages now
            self._close()
        self.done.set()

    def _close(self) -> None:
        with self._lock:
            closed, self._closed = self._closed, True
        if not closed:
            if self.tap is not None:
                self.tap.close()
            self.publisher.close()

    def stop(self) -> None:
        """End the stream (end-of-stream messages) and close."""
        self._stop.set()
        self._thread.join(5)
        self._close()
        self.publisher.wait(5)
        self.publisher.stop()


@contextmanager
def chromium() -> Iterator[Any]:
    """A fresh headless chromium context (Debian's binary; never ``playwright install``)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="ssep-chromium-")
    try:
        with sync_api.sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1000, "height": 900},
            )  # fmt: skip
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
