"""Sound-card capture with sounddevice (PortAudio): settings, device listing and checks.

PortAudio runs in a capture process (:mod:`streamsep.sources.device.process`), never in the daemon
itself; see there for why. :func:`check_device` is shared by ``streamsep check`` and the capture
process, so both report the same one-line errors naming the config key.

``python -m streamsep.sources.device.capture --list-devices`` lists the capture devices.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass
from typing import Any, Final

from streamsep.errors import CaptureError, ConfigError
from streamsep.validate import check_int, check_number, fail, show

__all__ = [
    "CaptureSettings",
    "DeviceInfo",
    "list_input_devices",
    "format_devices",
    "check_device",
    "main",
]

_LOGGER = logging.getLogger(__name__)

LATENCIES: Final = ("low", "high")


@dataclass(frozen=True)
class CaptureSettings:
    """Which device is captured and how (the ``[source]`` table with ``kind = "device"``)."""

    device: str | int | None = None
    """Device name (a substring, as ``streamsep devices`` shows it) or index; None: the
    default input device."""
    sample_rate: int | None = None
    """Capture rate in Hz (e.g. 48000, 96000, 192000); None: the device's default rate."""
    channels: tuple[int, ...] = (1,)
    """Device channels to capture, numbered from 1 (an integer ``n`` means 1..n)."""
    block_size: int = 0
    """Samples per PortAudio callback, >= 0; 0 lets the host API choose."""
    latency: str | float = "high"
    """PortAudio input latency: ``"low"``, ``"high"`` or seconds (> 0)."""
    buffer_seconds: float = 10.0
    """Capture ring capacity in the capture process, seconds (> 0)."""
    stall_seconds: float = 2.0
    """No audio for this long (s, > 0) means the device is lost: the capture restarts."""
    reconnect_seconds: float = 1.0
    """First wait before reopening a lost device, seconds (> 0); doubles on each failure."""
    reconnect_max_seconds: float = 30.0
    """Longest wait between reopening attempts, seconds (>= reconnect_seconds)."""

    def __post_init__(self) -> None:
        device = self.device
        if device is not None:
            if isinstance(device, bool) or not isinstance(device, str | int):
                raise fail("source.device", "a device name or index", device)
            if isinstance(device, int):
                check_int("source.device", device, minimum=0)
            elif not device:
                raise fail("source.device", "a device name or index", device)
        if self.sample_rate is not None:
            check_int("source.sample_rate", self.sample_rate, minimum=1)
        channels: Any = self.channels
        if isinstance(channels, int) and not isinstance(channels, bool):
            check_int("source.channels", channels, minimum=1)
            channels = tuple(range(1, channels + 1))
        expected = "a channel count or a list of channel numbers from 1"
        if not isinstance(channels, list | tuple) or not channels:
            raise fail("source.channels", expected, self.channels)
        for number in channels:
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise fail("source.channels", expected, list(channels))
        if len(set(channels)) != len(channels):
            raise fail("source.channels", "distinct channel numbers", list(channels))
        object.__setattr__(self, "channels", tuple(channels))
        check_int("source.block_size", self.block_size, minimum=0)
        if isinstance(self.latency, str):
            if self.latency not in LATENCIES:
                raise fail("source.latency", '"low", "high" or seconds', self.latency)
        else:
            check_number("source.latency", self.latency, positive=True)
        for key in ("buffer_seconds", "stall_seconds", "reconnect_seconds"):
            check_number(f"source.{key}", getattr(self, key), positive=True)
        check_number("source.reconnect_max_seconds", self.reconnect_max_seconds, positive=True)
        if self.reconnect_max_seconds < self.reconnect_seconds:
            raise ConfigError(
                f"source.reconnect_max_seconds must be >= reconnect_seconds = "
                f"{self.reconnect_seconds:g}, got {self.reconnect_max_seconds:g}"
            )

    @property
    def n_channels(self) -> int:
        """Channels delivered (the selection)."""
        return len(self.channels)

    @property
    def n_device_channels(self) -> int:
        """Channels opened on the device (up to the highest selected one)."""
        return max(self.channels)

    def to_json(self) -> str:
        """The settings as JSON (for the capture process's command line)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CaptureSettings:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        data["channels"] = tuple(data["channels"])
        return cls(**data)


@dataclass(frozen=True)
class DeviceInfo:
    """A capture device as resolved for a stream."""

    index: int
    """PortAudio device index (valid until PortAudio is re-initialised)."""
    name: str
    """Device name."""
    hostapi: str
    """Host API name (ALSA, JACK Audio Connection Kit, ...)."""
    sample_rate: int
    """The rate the stream runs at, Hz."""
    max_input_channels: int
    """Input channels the device has."""


def import_sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError("sounddevice must be installed for device capture") from e
    except OSError as e:  # the PortAudio library itself is missing
        raise CaptureError(f"cannot load PortAudio (install libportaudio2): {e}") from e
    return sounddevice


def list_input_devices() -> list[dict[str, Any]]:
    """Capture devices: ``index, name, hostapi, max_input_channels, default_samplerate,
    default`` for each device with at least one input channel.

    Raises
    ------
    CaptureError
        If PortAudio cannot be loaded.
    """
    sd = import_sounddevice()
    try:
        default = sd.default.device[0]
        hostapis = sd.query_hostapis()
        out = []
        for device in sd.query_devices():
            if device["max_input_channels"] < 1:
                continue
            out.append(
                {
                    "index": device["index"],
                    "name": device["name"],
                    "hostapi": hostapis[device["hostapi"]]["name"],
                    "max_input_channels": device["max_input_channels"],
                    "default_samplerate": int(device["default_samplerate"]),
                    "default": device["index"] == default,
                }
            )
    except sd.PortAudioError as e:
        raise CaptureError(f"cannot list audio devices: {e}") from e
    return out


def format_devices(devices: list[dict[str, Any]]) -> str:
    """A table of :func:`list_input_devices` (``*`` marks the default input)."""
    if not devices:
        return "no capture devices found"
    lines = [f"{'':2}{'index':>5}  {'channels':>8}  {'rate':>6}  host API / name"]
    for d in devices:
        mark = "*" if d["default"] else " "
        lines.append(
            f"{mark:2}{d['index']:>5}  {d['max_input_channels']:>8}  "
            f"{d['default_samplerate']:>6}  {d['hostapi']} / {d['name']}"
        )
    return "\n".join(lines)


def check_device(settings: CaptureSettings, sd: Any = None) -> DeviceInfo:
    """Resolve the device and check that it takes the channels and rate asked for.

    Opens nothing. The messages name the config key at fault.

    Raises
    ------
    CaptureError
        No such device, too few channels, or a rate the device refuses.
    """
    sd = sd or import_sounddevice()
    try:
        device = sd.query_devices(settings.device, "input")
    except (ValueError, sd.PortAudioError) as e:
        what = (
            "there is no default input device"
            if settings.device is None
            else f"no input device matching {show(settings.device)}"
        )
        raise CaptureError(f"source.device: {what} ({e}; see `streamsep devices`)") from e
    name = str(device["name"])
    hostapi = str(sd.query_hostapis(device["hostapi"])["name"])
    if settings.n_device_channels > device["max_input_channels"]:
        raise CaptureError(
            f"source.channels: device {name!r} has {device['max_input_channels']} input "
            f"channels, channel {settings.n_device_channels} requested"
        )
    rate = settings.sample_rate or int(device["default_samplerate"])
    try:
        sd.check_input_settings(
            device=device["index"],
            channels=settings.n_device_channels,
            dtype="float32",
            samplerate=rate,
        )
    except (ValueError, sd.PortAudioError) as e:
        raise CaptureError(f"source.sample_rate: device {name!r} refuses {rate} Hz: {e}") from e
    return DeviceInfo(int(device["index"]), name, hostapi, rate, int(device["max_input_channels"]))


def main(argv: list[str] | None = None) -> int:
    """``python -m streamsep.sources.device.capture --list-devices``."""
    parser = argparse.ArgumentParser(
        prog="python -m streamsep.sources.device.capture", description="List capture devices."
    )
    parser.add_argument("--list-devices", action="store_true", help="list capture devices")
    parser.parse_args(argv)
    try:
        print(format_devices(list_input_devices()))
    except CaptureError as e:
        print(f"streamsep: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
