"""Capture: settings, device listing through real PortAudio on JACK, the UTC clock, and the
device source's accounting of overflows and outages (with a scripted capture process)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from streamsep.engine.clock import CaptureClock
from streamsep.engine.ringbuffer import RingBuffer
from streamsep.errors import CaptureError, ConfigError
from streamsep.sources.device.capture import CaptureSettings, format_devices
from streamsep.sources.device.source import DeviceSource

from .jack import JackServer, jack_server, wait_for

__all__ = ["jack_server"]  # a fixture


def test_list_devices_through_portaudio_on_jack(jack_server: JackServer) -> None:
    for command in (
        [sys.executable, "-m", "streamsep.sources.device.capture", "--list-devices"],
        [sys.executable, "-m", "streamsep.cli.daemon", "devices"],
    ):
        result = subprocess.run(
            command, capture_output=True, text=True, env=jack_server.env, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "JACK Audio Connection Kit / system" in result.stdout, result.stdout
        assert result.stdout.splitlines()[1].startswith("*"), result.stdout  # the default


def test_check_a_device_config(jack_server: JackServer, tmp_path: Path) -> None:
    config = tmp_path / "ok.toml"
    config.write_text('[source]\ndevice = "system"\nchannels = [2]\nsample_rate = 48000\n')
    result = subprocess.run(
        [sys.executable, "-m", "streamsep.cli.daemon", "check", "-c", str(config)],
        capture_output=True,
        text=True,
        env=jack_server.env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "'system' (JACK Audio Connection Kit), 48000 Hz, channels [2]" in result.stdout
    assert result.stdout.rstrip().endswith("ok")


def test_format_devices() -> None:
    devices = [
        {"index": 3, "name": "Scarlett 2i2", "hostapi": "ALSA", "max_input_channels": 2,
         "default_samplerate": 96000, "default": True},
    ]  # fmt: skip
    assert "*     3         2   96000  ALSA / Scarlett 2i2" in format_devices(devices)
    assert format_devices([]) == "no capture devices found"


def test_capture_settings() -> None:
    assert CaptureSettings(channels=3).channels == (1, 2, 3)  # type: ignore[arg-type]
    settings = CaptureSettings(channels=(4, 2))
    assert settings.n_channels == 2 and settings.n_device_channels == 4
    assert CaptureSettings.from_json(settings.to_json()) == settings
    for kwargs, message in [
        ({"channels": (1, 1)}, "source.channels must be distinct channel numbers"),
        ({"device": True}, "source.device must be a device name or index, got true"),
        ({"latency": -1}, "source.latency must be a number > 0"),
        ({"reconnect_seconds": 5.0, "reconnect_max_seconds": 1.0}, "reconnect_max_seconds"),
    ]:
        with pytest.raises(ConfigError, match=message):
            CaptureSettings(**kwargs)  # type: ignore[arg-type]


def test_capture_clock() -> None:
    clock = CaptureClock(48000)
    clock.add(0, 1_000_000_000)
    assert clock(48000) == 2_000_000_000
    clock.add(96000, 3_500_000_000)  # re-anchored (e.g. after an outage)
    assert clock(48000) == 2_000_000_000 and clock(96000 + 24000) == 4_000_000_000
    assert clock.scaled(16000)(16000) == 2_000_000_000
    assert clock(-48000) == 0  # before the first anchor: extrapolated from it


# A stand-in for `python -m streamsep.sources.device.process`: speaks the frame protocol, scripted
# per session through files in $FAKE_CAPTURE_DIR.
_FAKE_CHILD = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    from streamsep.sources.device import process as cap

    folder = os.environ["FAKE_CAPTURE_DIR"]
    counter = os.path.join(folder, "sessions")
    session = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
    open(counter, "w").write(str(session))
    script = open(os.path.join(folder, "script")).read().split()[session - 1]
    out = sys.stdout.buffer
    t0 = int(open(os.path.join(folder, "t0")).read())

    def send(kind, payload=b"", a=0, b=0):
        out.write(cap.pack_frame(kind, payload, a, b))
        out.flush()

    def audio(first, n):
        x = np.arange(first, first + n, dtype=np.float32)[:, None] / 2**20
        send(cap.AUDIO, x.astype("<f4").tobytes(), n)

    if script == "fail":
        send(cap.ERROR, b"source.device: no input device matching \\"x\\"", 1)
        sys.exit(2)
    ready = b'{"index": 0, "name": "fake", "hostapi": "none", "sample_rate": 1000, '
    send(cap.READY, ready + b'"max_input_channels": 1}')
    assert sys.stdin.readline().strip() == "start"
    if script == "stall":  # 4000 samples, a 500-sample overflow, 1000 more, then silence
        send(cap.ANCHOR, b"", 0, t0)
        for i in range(4):
            audio(i * 1000, 1000)
        send(cap.GAP, b"", 500, cap.GAP_OVERFLOW)
        audio(4500, 1000)
        time.sleep(60)
    elif script == "resume":  # back 2.5 s (2500 samples) after the last sample was due
        send(cap.ANCHOR, b"", 0, t0 + 8_000_000_000)
        audio(8000, 1000)
        audio(9000, 1000)
        sys.stdin.readline()  # "stop"
        send(cap.STATS, b'{"overflows": 1}')
        send(cap.END)
    """
)


@pytest.fixture
def fake_capture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake interpreter running the scripted capture process; returns its folder."""
    (tmp_path / "child.py").write_text(_FAKE_CHILD)
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{tmp_path / "child.py"}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "t0").write_text(str(1_800_000_000 * 10**9))
    monkeypatch.setenv("FAKE_CAPTURE_DIR", str(tmp_path))
    return tmp_path


def test_device_source_accounts_for_overflow_and_outage(fake_capture: Path) -> None:
    (fake_capture / "script").write_text("stall fail resume")
    settings = CaptureSettings(stall_seconds=0.5, reconnect_seconds=0.05, reconnect_max_seconds=0.1)
    ring = RingBuffer(100_000, 1)
    taps: list[tuple[int, int]] = []
    source = DeviceSource(
        settings, tap=lambda i, x: taps.append((i, x.shape[0])), python=str(fake_capture / "python")
    )
    with source:
        info = source.open(timeout=30)
        assert info.name == "fake" and info.sample_rate == 1000
        source.start(ring)
        wait_for(lambda: source.stats.samples_received == 7000, 30, "the resumed session")
        source.stop()
        assert source.join(10)
    stats = source.stats
    assert stats.failures == 1 and stats.reconnects == 1
    assert stats.last_error == "no audio for 0.5 s"
    assert stats.lost_overflow == 500 and stats.lost_outage == 2500
    assert stats.samples_captured == 10_000  # the timeline: 7000 received + 3000 lost
    # The ring holds the samples at their timeline places, gaps where they were lost.
    reads = []
    while (r := ring.read(100_000, timeout=0)).samples.shape[0] or r.lost_before:
        reads.append(r)
    assert [(r.start_index, r.samples.shape[0], r.lost_before) for r in reads] == [
        (0, 4000, 0), (4500, 1000, 500), (8000, 2000, 2500)
    ]  # fmt: skip
    x = np.concatenate([r.samples[:, 0] for r in reads]) * 2**20
    expected = np.concatenate([np.arange(0, 4000), np.arange(4500, 5500), np.arange(8000, 10000)])
    assert np.array_equal(x, expected)
    assert taps == [(0, 1000), (1000, 1000), (2000, 1000), (3000, 1000), (4500, 1000),
                    (8000, 1000), (9000, 1000)]  # fmt: skip
    assert source.clock is not None and source.clock(8000) == 1_800_000_008_000_000_000
    assert ring.closed


def test_device_source_open_error(fake_capture: Path) -> None:
    (fake_capture / "script").write_text("fail")
    source = DeviceSource(CaptureSettings(), python=str(fake_capture / "python"))
    with pytest.raises(CaptureError, match='source.device: no input device matching "x"'):
        source.open(timeout=30)
    source.close()


def test_capture_process_needs_no_stdout_for_logs() -> None:
    """The capture process keeps its frame pipe clean: a bad settings argument is reported
    as an ERROR frame, not as text on stdout."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamsep.sources.device.process",
            '{"device": null, "channels": [0]}',
        ],
        capture_output=True,
        timeout=60,
        env=dict(os.environ, JACK_NO_START_SERVER="1"),
    )
    from streamsep.sources.device import process as cap

    kind, n, a, _ = cap.FRAME.unpack_from(result.stdout)
    assert (kind, a, result.returncode) == (cap.ERROR, 1, 2)
    assert result.stdout[cap.FRAME.size :].decode().startswith("source.channels must be")
