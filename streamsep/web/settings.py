"""Settings of the web monitor (``streamsep web``, the daemon's ``[web]``) and of the live HLS
output (``--hls-dir``, the daemon's ``[hls_out]``).

Who may connect: the server listens on loopback by default; any other address needs an access
token (``token``), as publish and control need CURVE. Without one it is refused before anything
is opened, in one line.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

from streamsep.errors import ConfigError
from streamsep.validate import check_int, check_number, check_str

__all__ = ["WebSettings", "HlsOutSettings", "parse_listen", "is_loopback_host", "AAC_RATES"]

AAC_RATES: Final = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200,
                    96000)  # fmt: skip
"""Sample rates AAC (MPEG-4 audio) can signal; others are resampled to 48 kHz."""
_LOOPBACK_NAMES: Final = ("localhost", "ip6-localhost")
_MIN_TOKEN_CHARS: Final = 16


def parse_listen(listen: str, key: str = "web.listen") -> tuple[str, int]:
    """``"127.0.0.1:8080"`` / ``"[::1]:8080"`` -> ``(host, port)``.

    Raises
    ------
    ConfigError
        If it is not ``HOST:PORT`` with a port in [0, 65535] (0: any free port).
    """
    check_str(key, listen)
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f'{key} must be "HOST:PORT", got "{listen}"')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebSettings:
    """The web monitor: where it listens, who may connect, what it computes."""

    listen: str = "127.0.0.1:8080"
    """``HOST:PORT`` of the HTTP server; port 0 picks a free one (logged)."""
    token: str | None = None
    """Access token (>= 16 characters); required for a non-loopback ``listen``. Clients give it
    as ``?token=...`` (the page keeps it for its WebSocket) or ``Authorization: Bearer``."""
    columns_per_second: float = 20.0
    """Spectrogram columns per second of stream (the column hop), (0, 100]."""
    max_hz: float = 12000.0
    """Highest spectrogram frequency, Hz (capped at Nyquist)."""
    n_bins: int = 256
    """Spectrogram rows sent per column (at most), [16, 1024]."""
    db_min: float = -120.0
    """dBFS mapped to byte 0 (a full-scale sine is 0 dBFS)."""
    db_max: float = -20.0
    """dBFS mapped to byte 255."""
    audio_rate: int = 16000
    """Rate of the int16 audio sent to browsers, Hz (8000 to 48000)."""
    client_queue: int = 512
    """Messages queued per browser before the oldest are dropped (counted), >= 8."""
    client_sndbuf_bytes: int = 262144
    """Kernel send buffer per browser connection, bytes (bounds memory per slow client)."""
    max_clients: int = 64
    """Concurrent WebSocket clients; more are refused with HTTP 503."""

    def __post_init__(self) -> None:
        host, _ = parse_listen(self.listen)
        if self.token is not None:
            check_str("web.token", self.token)
            if len(self.token) < _MIN_TOKEN_CHARS:
                raise ConfigError(
                    f"web.token must have at least {_MIN_TOKEN_CHARS} characters, "
                    f"got {len(self.token)}"
                )
        elif not is_loopback_host(host):
            raise ConfigError(
                f"refusing to listen on {self.listen} without an access token: anyone who can "
                "reach it could watch and listen; set a token (--token / web.token)"
            )
        check_number("web.columns_per_second", self.columns_per_second, positive=True)
        if self.columns_per_second > 100:
            raise ConfigError(
                f"web.columns_per_second must be <= 100, got {self.columns_per_second}"
            )
        check_number("web.max_hz", self.max_hz, positive=True)
        check_int("web.n_bins", self.n_bins, minimum=16, maximum=1024)
        check_number("web.db_min", self.db_min)
        check_number("web.db_max", self.db_max)
        if self.db_max <= self.db_min:
            raise ConfigError(f"web.db_max must be > web.db_min, got {self.db_max}")
        check_int("web.audio_rate", self.audio_rate, minimum=8000, maximum=48000)
        check_int("web.client_queue", self.client_queue, minimum=8)
        check_int("web.client_sndbuf_bytes", self.client_sndbuf_bytes, minimum=0)
        check_int("web.max_clients", self.max_clients, minimum=1)

    @property
    def host(self) -> str:
        """The listen host (brackets of an IPv6 address removed)."""
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The listen port (0: any)."""
        return parse_listen(self.listen)[1]


@dataclass(frozen=True)
class HlsOutSettings:
    """A live HLS playlist of one stem: AAC in MPEG-TS segments, a rolling window."""

    directory: str = ""
    """Folder of ``live.m3u8``, the segments and ``state.json`` (created if missing)."""
    stem: str = "orca_vocals"
    """The published stem (``mix`` for the input)."""
    segment_seconds: float = 4.0
    """Target segment duration, seconds (cut at AAC frame boundaries), [0.5, 30]."""
    window_segments: int = 6
    """Segments listed in the playlist, >= 3."""
    bitrate: int = 64000
    """AAC bit rate, bits/s, [16000, 320000]."""
    max_fill_seconds: float = 10.0
    """Missing audio up to this long is filled with silence (the timeline stays continuous);
    a longer gap, or a new stream, starts a new period (``EXT-X-DISCONTINUITY``)."""

    def __post_init__(self) -> None:
        check_str("hls_out.directory", self.directory)
        check_str("hls_out.stem", self.stem)
        check_number("hls_out.segment_seconds", self.segment_seconds, positive=True)
        if not 0.5 <= self.segment_seconds <= 30:
            raise ConfigError(
                f"hls_out.segment_seconds must be in [0.5, 30], got {self.segment_seconds}"
            )
        check_int("hls_out.window_segments", self.window_segments, minimum=3)
        check_int("hls_out.bitrate", self.bitrate, minimum=16000, maximum=320000)
        check_number("hls_out.max_fill_seconds", self.max_fill_seconds, minimum=0)
