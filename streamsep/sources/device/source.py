"""Live device source: runs the capture process, feeds the pipeline's ring, survives device loss.

:class:`DeviceSource` starts ``python -m streamsep.sources.device.process`` (see
:mod:`streamsep.sources.device.process` for why PortAudio lives in a child process; one run
of it is a :class:`~streamsep.sources.device.session.CaptureSession`), reads its frames on
the ``streamsep-capture`` thread and writes the audio into the pipeline's ring buffer. It
keeps one timeline for the whole run: every sample index counts captured and lost samples
alike, so the published index of a sample is the index it was captured at.

Losses, each carried to the ring as a gap (``ring.mark_gap``) at its place:

* **device overflow**: PortAudio's input-overflow flag; the loss is estimated in the capture
  process from the ADC time discontinuity;
* **capture ring overrun**: the daemon did not read the pipe fast enough;
* **outage**: the device vanished (no audio for ``stall_seconds``, the stream went inactive,
  or the capture process died). The source logs it once, restarts the capture process with
  back-off (``reconnect_seconds`` doubling up to ``reconnect_max_seconds``) and, when audio
  flows again, marks ``(UTC of the new first sample - UTC the next sample was due) * rate``
  samples lost.

Its :attr:`DeviceSource.clock` (a :class:`~streamsep.engine.clock.CaptureClock`) maps timeline
indices to UTC from the ADC-time anchors the capture process sends.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.clock import CaptureClock
from streamsep.engine.ringbuffer import RingLike
from streamsep.errors import CaptureError
from streamsep.sources.device import process as cap
from streamsep.sources.device.capture import CaptureSettings, DeviceInfo
from streamsep.sources.device.session import KILL_WAIT_SECONDS, CaptureSession
from streamsep.threads import join_thread

__all__ = ["CaptureStats", "DeviceSource"]

_LOGGER = logging.getLogger(__name__)

_OPEN_TIMEOUT_SECONDS: Final = 20.0
_POLL_SECONDS: Final = 0.05
_STOP_DRAIN_SECONDS: Final = 3.0
_REPORT_SECONDS: Final = 10.0

AudioTap = Callable[[int, NDArray[np.float32]], None]
"""``tap(index, samples)``: called on the capture thread with each block written to the ring."""


@dataclass
class CaptureStats:
    """Counters of a device source (read from any thread)."""

    samples_captured: int = 0
    """Timeline length: samples received plus samples marked lost (capture rate)."""
    samples_received: int = 0
    """Samples that arrived from the device."""
    lost_overflow: int = 0
    """Samples lost to device input overflows (estimated from ADC times)."""
    lost_capture_ring: int = 0
    """Samples lost because the capture process's ring was full."""
    lost_outage: int = 0
    """Samples lost while the device was gone (wall-clock outage x rate)."""
    overflows: int = 0
    """PortAudio callbacks flagged with an input overflow."""
    reconnects: int = 0
    """Times the capture came back after a loss."""
    failures: int = 0
    """Times the capture was lost (stall, error, process exit)."""
    connected: bool = False
    """Whether audio is flowing now."""
    last_error: str | None = None
    """Why the capture was last lost."""
    sessions: list[dict[str, Any]] = field(default_factory=list)
    """Per capture-process counters of the previous sessions (for totals)."""


class DeviceSource:
    """Captures a device in a child process into a ring, reconnecting after device loss.

    Parameters
    ----------
    settings : CaptureSettings
        Device, rate, channels, stall and reconnect timing.
    tap : callable, optional
        ``tap(index, samples)`` gets every block written to the ring (raw input, for the
        archive); called on the capture thread, must not block.
    python : str
        Interpreter that runs the capture process.

    Notes
    -----
    Lifecycle: :meth:`open` (starts the capture process, waits until the device is open),
    :meth:`start` (audio starts flowing into the ring), :meth:`stop` (drains what was captured
    and closes the ring), :meth:`close`.
    """

    def __init__(
        self, settings: CaptureSettings, *, tap: AudioTap | None = None, python: str | None = None
    ) -> None:
        self.settings = settings
        self.tap = tap
        """Receives every block written to the ring (settable until :meth:`start`)."""
        self._python = python or sys.executable
        self.stats = CaptureStats()
        self.info: DeviceInfo | None = None
        self.clock: CaptureClock | None = None
        self.on_first_audio: Callable[[], None] | None = None
        """Called once, on the capture thread, when the first audio arrives."""
        self._ring: RingLike | None = None
        self._session: CaptureSession | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session_base = 0
        self._next_index = 0
        self._last_audio = 0.0
        self._unreported = 0
        self._report_due = 0.0
        self.done = threading.Event()
        """Set when the capture thread has closed the ring."""

    @property
    def sample_rate(self) -> int:
        """Capture rate in Hz (known after :meth:`open`)."""
        if self.info is None:
            raise CaptureError("device source not opened")
        return self.info.sample_rate

    @property
    def n_channels(self) -> int:
        """Channels delivered to the ring."""
        return self.settings.n_channels

    def open(self, timeout: float = _OPEN_TIMEOUT_SECONDS) -> DeviceInfo:
        """Start the capture process and wait until it has opened the device.

        Raises
        ------
        CaptureError
            If the device cannot be opened (the capture process's message).
        """
        session, info = self._open_session(timeout)
        self._session = session
        self.info = info
        # Later sessions must run at the same rate: pin it.
        if self.settings.sample_rate is None:
            self.settings = _replace_rate(self.settings, info.sample_rate)
        self.clock = CaptureClock(info.sample_rate)
        _LOGGER.info(
            "capture: %r (%s), %d Hz, channels %s",
            info.name,
            info.hostapi,
            info.sample_rate,
            list(self.settings.channels),
        )
        return info

    def _open_session(self, timeout: float) -> tuple[CaptureSession, DeviceInfo]:
        session = CaptureSession(self.settings, self._python)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            for kind, _a, _b, payload in session.frames(_POLL_SECONDS):
                if kind == cap.READY:
                    body = json.loads(payload)
                    info = DeviceInfo(
                        body["index"],
                        body["name"],
                        body["hostapi"],
                        body["sample_rate"],
                        body["max_input_channels"],
                    )
                    return session, info
                if kind == cap.ERROR:
                    session.kill()
                    raise CaptureError(payload.decode("utf-8", errors="replace"))
            if session.eof:
                code = session.kill()
                raise CaptureError(f"capture process exited with code {code} before opening")
        session.kill()
        raise CaptureError(f"capture process did not open the device within {timeout:g} s")

    def start(self, ring: RingLike) -> None:
        """Start capturing into ``ring`` (on the ``streamsep-capture`` thread)."""
        if self._session is None:
            raise CaptureError("device source not opened")
        self._ring = ring
        self._session.send("start")
        self._last_audio = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="streamsep-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop capturing: what was captured is still written; then the ring is closed."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the capture thread; False on timeout."""
        return join_thread(self._thread, timeout)

    def close(self) -> None:
        """Stop, join and kill any capture process left."""
        self.stop()
        self.join(_STOP_DRAIN_SECONDS + KILL_WAIT_SECONDS)
        if self._session is not None:
            self._session.kill()
            self._session = None

    def __enter__(self) -> DeviceSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- capture thread ---------------------------------------------------------------------

    def _run(self) -> None:
        assert self._ring is not None
        try:
            while self._session is not None:
                reason = self._pump(self._session)
                self._end_session()
                if reason is None:  # stopped
                    break
                self._lost(reason)
                self._session = self._reconnect()
        except Exception:  # noqa: BLE001 - the daemon must keep its timeline closed cleanly
            _LOGGER.exception("capture thread failed")
        finally:
            self.stats.connected = False
            if self._session is not None:
                self._session.kill()
                self._session = None
            self._ring.close()
            self.done.set()

    def _pump(self, session: CaptureSession) -> str | None:
        """Move frames into the ring until stopped (None) or lost (the reason)."""
        stall = self.settings.stall_seconds
        stop_deadline = None
        first = True
        while True:
            if self._stop.is_set() and stop_deadline is None:
                session.send("stop")
                stop_deadline = time.monotonic() + _STOP_DRAIN_SECONDS
            for kind, a, b, payload in session.frames(_POLL_SECONDS):
                if kind == cap.AUDIO:
                    self._audio(payload, a)
                elif kind == cap.ANCHOR:
                    self._anchor(a, b, first)
                    first = False
                elif kind == cap.GAP:
                    self._gap(a, b)
                elif kind == cap.STATS:
                    session.stats = json.loads(payload)
                    self.stats.overflows = self._total("overflows")
                elif kind == cap.END:
                    return None
                elif kind == cap.ERROR:
                    return payload.decode("utf-8", errors="replace")
            now = time.monotonic()
            if stop_deadline is not None:
                if now > stop_deadline:
                    _LOGGER.warning("capture: no clean end within %g s", _STOP_DRAIN_SECONDS)
                    return None
                if session.eof:
                    return None
                continue
            if session.eof:
                code = session.process.wait()
                return f"capture process exited with code {code}"
            if now - self._last_audio > stall:
                return f"no audio for {stall:g} s"

    def _audio(self, payload: bytes, n: int) -> None:
        assert self._ring is not None
        samples = np.frombuffer(payload, dtype="<f4").reshape(n, self.settings.n_channels)
        if not self.stats.connected:
            self.stats.connected = True
            if self.on_first_audio is not None:
                self.on_first_audio()
                self.on_first_audio = None
        self._last_audio = time.monotonic()
        index = self._next_index
        self._ring.write(samples)
        self._next_index += n
        self.stats.samples_received += n
        self.stats.samples_captured = self._next_index
        if self.tap is not None:
            self.tap(index, samples)

    def _anchor(self, session_index: int, utc_ns: int, first: bool) -> None:
        assert self._ring is not None and self.clock is not None
        if first:
            if self.clock.started:
                # Samples due between the end of the last session and this one: lost.
                due_ns = self.clock(self._next_index)
                lost = round((utc_ns - due_ns) * self.sample_rate / 1e9)
                if lost > 0:
                    self._ring.mark_gap(lost)
                    self._next_index += lost
                    self.stats.lost_outage += lost
                    self.stats.samples_captured = self._next_index
                _LOGGER.info("capture: resumed; %d samples lost in the outage", max(0, lost))
            self._session_base = self._next_index
        self.clock.add(self._session_base + session_index, utc_ns)

    def _gap(self, n: int, cause: int) -> None:
        assert self._ring is not None
        self._ring.mark_gap(n)
        self._next_index += n
        self.stats.samples_captured = self._next_index
        if cause == cap.GAP_RING:
            self.stats.lost_capture_ring += n
        else:
            self.stats.lost_overflow += n
        self._unreported += n
        now = time.monotonic()
        if now >= self._report_due:  # rate-limited: overflows come in bursts
            self._report_due = now + _REPORT_SECONDS
            _LOGGER.warning(
                "capture: %d samples lost (%s); %d lost in total",
                self._unreported,
                "capture ring full" if cause == cap.GAP_RING else "input overflow",
                self.stats.lost_overflow + self.stats.lost_capture_ring,
            )
            self._unreported = 0

    def _total(self, key: str) -> int:
        current = self._session.stats.get(key, 0) if self._session is not None else 0
        return int(current) + sum(int(s.get(key, 0)) for s in self.stats.sessions)

    def _end_session(self) -> None:
        if self._session is not None:
            self.stats.sessions.append(self._session.stats)
            del self.stats.sessions[:-64]
            self._session.kill()
            self._session = None

    def _lost(self, reason: str) -> None:
        self.stats.connected = False
        self.stats.failures += 1
        self.stats.last_error = reason
        _LOGGER.warning("capture lost: %s; reconnecting", reason)

    def _reconnect(self) -> CaptureSession | None:
        delay = self.settings.reconnect_seconds
        started = time.monotonic()
        last_message = None
        while not self._stop.wait(delay):
            try:
                session, info = self._open_session(_OPEN_TIMEOUT_SECONDS)
            except CaptureError as e:
                if str(e) != last_message:  # log each new kind of failure once
                    _LOGGER.warning("capture: reopening failed: %s (retrying)", e)
                    last_message = str(e)
                delay = min(delay * 2, self.settings.reconnect_max_seconds)
                continue
            if info.sample_rate != self.sample_rate:
                session.kill()
                message = f"device came back at {info.sample_rate} Hz, not {self.sample_rate}"
                if message != last_message:
                    _LOGGER.warning("capture: %s (retrying)", message)
                    last_message = message
                delay = min(delay * 2, self.settings.reconnect_max_seconds)
                continue
            session.send("start")
            self._last_audio = time.monotonic()
            self.stats.reconnects += 1
            _LOGGER.info(
                "capture: reopened %r after %.1f s (reconnect %d)",
                info.name,
                time.monotonic() - started,
                self.stats.reconnects,
            )
            return session
        return None


def _replace_rate(settings: CaptureSettings, sample_rate: int) -> CaptureSettings:
    from dataclasses import replace

    return replace(settings, sample_rate=sample_rate)
