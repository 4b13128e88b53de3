"""The capture process: one PortAudio input stream, its callback, and a pipe to the daemon.

``python -m streamsep.sources.device.process SETTINGS_JSON`` is started by
:class:`~streamsep.sources.device.source.DeviceSource`. PortAudio lives here, not in the daemon,
because
a PortAudio stream whose JACK server vanished can be neither stopped, closed nor terminated:
``Pa_CloseStream``/``Pa_Terminate`` wait 10 minutes for a process thread that no longer exists
(``pa_jack.c``, ``RealStop`` -> ``WaitCondition``; measured with PortAudio 19.6 and jackd2
1.9.21), and a USB device pulled out mid-stream can wedge ALSA the same way. The daemon kills a
failed capture process and starts a fresh one, which also gives a fresh device list.

The PortAudio callback does what STYLE section 6 asks: merge the status flags and copy the block
into a preallocated :class:`~streamsep.engine.ringbuffer.RingBuffer`; after an input overflow it
holds
the blocks back in a preallocated stash until their arrival times tell how many samples were
lost, marks that gap, then writes the stash. A sender thread drains the ring and writes frames
(:data:`FRAME`) to the daemon on stdout; commands (``start``, ``stop``) come on stdin.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import struct
import sys
import threading
import time
from dataclasses import asdict
from typing import Any, Final

import numpy as np

from streamsep.errors import CaptureError, ConfigError
from streamsep.sources.device.capture import CaptureSettings, check_device, import_sounddevice

__all__ = [
    "FRAME",
    "READY",
    "AUDIO",
    "GAP",
    "ANCHOR",
    "STATS",
    "ERROR",
    "END",
    "GAP_OVERFLOW",
    "GAP_RING",
    "pack_frame",
    "main",
]

FRAME: Final = struct.Struct("<BxxxIqq")
"""Frame header on the capture pipe: kind, payload bytes, two integer arguments."""
READY: Final = 1
"""Stream opened: payload is a JSON :class:`DeviceInfo` plus the stream's latency."""
AUDIO: Final = 2
"""``a`` samples of float32 interleaved audio (selected channels) follow."""
GAP: Final = 3
"""``a`` samples lost here; ``b`` is 1 for a device overflow, 2 for a full capture ring."""
ANCHOR: Final = 4
"""Sample ``a`` of this session was captured at UTC ``b`` nanoseconds (the ADC time)."""
STATS: Final = 5
"""JSON counters of this session (cumulative)."""
ERROR: Final = 6
"""UTF-8 message; ``a`` is 1 when the configuration is at fault (no such device...)."""
END: Final = 7
"""Clean end after a stop request: everything captured was sent."""

GAP_OVERFLOW: Final = 1
GAP_RING: Final = 2

_SEND_SAMPLES: Final = 4096
_STATS_SECONDS: Final = 1.0
_POLL_SECONDS: Final = 0.05
_STOP_SECONDS: Final = 1.0
_ANCHOR_SLOTS: Final = 256
_ANCHOR_SECONDS: Final = 60.0  # re-anchor the UTC mapping to the ADC time this often
_RECENT_CALLBACKS: Final = 32
_SETTLE_SECONDS: Final = 0.5
_SETTLE_MAX_CALLBACKS: Final = 256
_STASH_SECONDS: Final = 1.0


def pack_frame(kind: int, payload: bytes = b"", a: int = 0, b: int = 0) -> bytes:
    """One frame of the capture pipe."""
    return FRAME.pack(kind, len(payload), a, b) + payload


class _CaptureProcess:
    """The capture process: one PortAudio input stream, its callback, a sender thread."""

    def __init__(self, settings: CaptureSettings, out_fd: int) -> None:
        from streamsep.engine.ringbuffer import RingBuffer

        self.settings = settings
        self._out_fd = out_fd
        self._write_lock = threading.Lock()
        self._sd = import_sounddevice()
        self.info = check_device(settings, self._sd)
        self._rate = self.info.sample_rate
        self._ring = RingBuffer(
            max(1, int(settings.buffer_seconds * self._rate)), settings.n_device_channels
        )
        selection = [c - 1 for c in settings.channels]
        self._selection = None if selection == list(range(len(selection))) else selection
        # Callback state (written on the PortAudio thread only), preallocated.
        self._flags = self._sd.CallbackFlags()
        self._index = 0  # session timeline index of the next sample, lost ones included
        self._callbacks = 0
        self._overflows = 0
        self._overflow_lost = 0
        self._recent = np.zeros(_RECENT_CALLBACKS, dtype=np.float64)  # arrival offsets
        self._recent_n = 0
        self._settling = False
        self._baseline = 0.0
        self._stash = np.zeros(
            (int(_STASH_SECONDS * self._rate), settings.n_device_channels), np.float32
        )
        self._stash_n = 0
        self._settle_offsets = np.zeros(_SETTLE_MAX_CALLBACKS, dtype=np.float64)
        self._settle_n = 0
        self._settle_samples = int(_SETTLE_SECONDS * self._rate)
        self._next_anchor = 0
        self._anchor_index = np.zeros(_ANCHOR_SLOTS, dtype=np.int64)
        self._anchor_adc = np.zeros(_ANCHOR_SLOTS, dtype=np.float64)
        self._anchors_written = 0
        self._anchors_sent = 0
        self._adc_offset = 0.0
        self.stopping = threading.Event()
        self.failed = threading.Event()
        latency: str | float = settings.latency
        try:
            self.stream = self._sd.InputStream(
                device=self.info.index,
                channels=settings.n_device_channels,
                samplerate=self._rate,
                blocksize=settings.block_size,
                dtype="float32",
                latency=latency,
                callback=self._callback,
            )
        except (ValueError, self._sd.PortAudioError) as e:
            raise CaptureError(f"cannot open input device {self.info.name!r}: {e}") from e
        self._sender = threading.Thread(target=self._send_loop, name="capture-sender", daemon=True)

    def ready_payload(self) -> bytes:
        body = asdict(self.info)
        body["latency_seconds"] = float(self.stream.latency)
        body["channels"] = list(self.settings.channels)
        return json.dumps(body).encode()

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        """Called from the PortAudio thread; must not block, allocate buffers or log.

        Copies the block into the ring. After an input overflow the blocks are held back
        (in a preallocated stash) for ``_SETTLE_SECONDS`` of audio, until the arrival times
        show how many samples were lost; then the gap is marked and the stash written.
        """
        now = time.monotonic()
        self._flags |= status
        if self._callbacks == 0 or (self._index >= self._next_anchor and not self._settling):
            adc = time_info.inputBufferAdcTime or time_info.currentTime
            self._anchor(self._index, adc)
            self._next_anchor = self._index + int(_ANCHOR_SECONDS * self._rate)
        # Arrival time minus stream time: constant while no sample is lost, plus jitter
        # (callbacks are late, never early, so the minimum over a few callbacks is the level).
        offset = now - self._index / self._rate
        if status.input_overflow:
            self._overflows += 1
            if not self._settling and self._recent_n:
                self._settling = True
                self._baseline = float(self._recent[: min(self._recent_n, _RECENT_CALLBACKS)].min())
                self._stash_n = 0
                self._settle_n = 0
        if self._settling:
            if self._stash_n + frames <= self._stash.shape[0]:
                self._stash[self._stash_n : self._stash_n + frames] = indata
                self._stash_n += frames
                self._settle_offsets[self._settle_n] = offset
                self._settle_n += 1
                self._index += frames
                if self._stash_n >= self._settle_samples or self._settle_n == _SETTLE_MAX_CALLBACKS:
                    self._settle(frames)
                return
            self._settle(frames)
            offset = now - self._index / self._rate
        self._recent[self._recent_n % _RECENT_CALLBACKS] = offset
        self._recent_n += 1
        self._ring.write(indata)
        self._index += frames
        self._callbacks += 1

    def _settle(self, frames: int) -> None:
        """End of an overflow: mark the samples lost before the stash, then write the stash.

        The loss is how much later the samples after the overflow arrived than the stream
        time says, in whole callbacks (devices drop whole buffers). PortAudio's ADC times are
        not used for this: under JACK they come from jack_frame_time, which after a server
        stall runs ahead by the stall and drifts back over a second or more (measured:
        +10 000 samples for a 0.3 s stall that lost nothing).
        """
        level = float(self._settle_offsets[: self._settle_n].min())
        lost = round((level - self._baseline) * self._rate / frames) * frames
        if lost > 0:
            self._ring.mark_gap(lost)
            self._overflow_lost += lost
            self._index += lost
            self._recent_n = 0  # arrival offsets restart at the new level
        self._ring.write(self._stash[: self._stash_n])
        self._callbacks += self._settle_n
        self._settling = False
        self._next_anchor = self._index + int(_ANCHOR_SECONDS * self._rate)

    def _anchor(self, index: int, adc: float) -> None:
        slot = self._anchors_written % _ANCHOR_SLOTS
        self._anchor_index[slot] = index
        self._anchor_adc[slot] = adc
        self._anchors_written += 1

    def start(self) -> None:
        self.stream.start()
        self._adc_offset = time.time() - self.stream.time
        self._sender.start()

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            view = memoryview(data)
            while view:
                try:
                    written = os.write(self._out_fd, view)
                except BrokenPipeError:  # the daemon is gone
                    os._exit(0)
                view = view[written:]

    def _stats(self) -> bytes:
        counters = {
            "callbacks": self._callbacks,
            "overflows": self._overflows,
            "overflow_lost_samples": self._overflow_lost,
            "ring_overrun_samples": self._ring.overrun_samples,
            "status_flags": str(self._flags),
        }
        return json.dumps(counters).encode()

    def _send_loop(self) -> None:
        ring = self._ring
        stats_due = time.monotonic()
        overrun_seen = 0
        while True:
            result = ring.read(_SEND_SAMPLES, timeout=_POLL_SECONDS)
            while self._anchors_sent < self._anchors_written:
                slot = self._anchors_sent % _ANCHOR_SLOTS
                utc_ns = int((float(self._anchor_adc[slot]) + self._adc_offset) * 1e9)
                self._write(pack_frame(ANCHOR, b"", int(self._anchor_index[slot]), utc_ns))
                self._anchors_sent += 1
            if result.lost_before:
                overrun = ring.overrun_samples - overrun_seen
                cause = GAP_RING if overrun >= result.lost_before else GAP_OVERFLOW
                overrun_seen += min(overrun, result.lost_before)
                self._write(pack_frame(GAP, b"", result.lost_before, cause))
            n = result.samples.shape[0]
            if n:
                block = result.samples
                if self._selection is not None:
                    block = block[:, self._selection]
                payload = np.ascontiguousarray(block, dtype="<f4").tobytes()
                self._write(pack_frame(AUDIO, payload, n))
            if time.monotonic() >= stats_due:
                stats_due = time.monotonic() + _STATS_SECONDS
                self._write(pack_frame(STATS, self._stats()))
            if n == 0 and not result.lost_before and ring.closed and ring.available == 0:
                self._write(pack_frame(STATS, self._stats()))
                self._write(pack_frame(END))
                return

    def run(self) -> int:
        """Serve until stopped or failed; returns the exit code."""
        while not self.stopping.wait(_POLL_SECONDS):
            if not self.stream.active:
                message = f"input stream of {self.info.name!r} stopped (device lost?)"
                self._write(pack_frame(ERROR, message.encode()))
                return 3
        # Stop PortAudio (bounded: a dead device may never answer), then drain the ring.
        stopper = threading.Thread(target=self._abort, name="capture-stop", daemon=True)
        stopper.start()
        stopper.join(_STOP_SECONDS)
        if not stopper.is_alive() and self._settling:  # no more callbacks: flush the stash
            self._settle(max(1, self._stash_n // max(1, self._settle_n)))
        self._ring.close()
        self._sender.join(_STOP_SECONDS * 4)
        return 0

    def _abort(self) -> None:
        try:
            self.stream.abort()
        except self._sd.PortAudioError:
            pass


def _read_commands(process: _CaptureProcess | None, start: threading.Event) -> None:
    """Reads the daemon's commands (``start``, ``stop``) from stdin; EOF means stop."""
    for line in sys.stdin:
        command = line.strip()
        if command == "start":
            start.set()
        elif command == "stop":
            break
    if process is not None:
        process.stopping.set()
    start.set()


def _serve(settings_json: str) -> int:
    out_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints (of C libraries too) must not corrupt the frame stream

    def send(data: bytes) -> None:
        os.write(out_fd, data)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when to stop
    try:
        settings = CaptureSettings.from_json(settings_json)
        process = _CaptureProcess(settings, out_fd)
    except (CaptureError, ConfigError) as e:
        config_fault = 1 if str(e).startswith("source.") else 0
        send(pack_frame(ERROR, str(e).encode(), config_fault))
        return 2
    start = threading.Event()

    def on_sigterm(signum: int, frame: Any) -> None:
        process.stopping.set()
        start.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    threading.Thread(
        target=_read_commands, args=(process, start), name="capture-commands", daemon=True
    ).start()
    send(pack_frame(READY, process.ready_payload()))
    start.wait()
    if process.stopping.is_set():
        return 0
    try:
        process.start()
    except process._sd.PortAudioError as e:
        send(pack_frame(ERROR, f"cannot start input stream: {e}".encode()))
        return 2
    return process.run()


def main(argv: list[str] | None = None) -> int:
    """Entry of the capture process: ``python -m streamsep.sources.device.process
    SETTINGS_JSON``."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="capture: %(levelname)s %(message)s")
    code = _serve(args[0] if args else "{}")
    # Skip interpreter teardown: sounddevice's atexit Pa_Terminate can wait 10 minutes on a
    # stream whose server died.
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
