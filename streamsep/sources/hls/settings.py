"""What an HLS source is told (:class:`HlsSettings`), what it learns (:class:`HlsInfo`), what it
counts (:class:`HlsStats`) and who names its playlist (:class:`Resolver`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from streamsep.errors import ConfigError
from streamsep.sources.hls.fetch import SCHEMES
from streamsep.validate import check_int, check_number, check_str, fail

__all__ = [
    "MIN_POLL_SECONDS",
    "MAX_POLL_SECONDS",
    "HlsSettings",
    "HlsInfo",
    "HlsStats",
    "Resolver",
]

MIN_POLL_SECONDS: Final = 0.5
"""Floor of the reload interval taken from a playlist's ``EXT-X-TARGETDURATION`` (and of its
half after a reload with nothing new), seconds: ``#EXT-X-TARGETDURATION:0.0001`` does not
make the source poll thousands of times a second."""
MAX_POLL_SECONDS: Final = 60.0
"""Ceiling of the reload interval taken from the playlist, seconds."""


@dataclass(frozen=True)
class HlsSettings:
    """How an HLS stream is followed (the ``[source]`` keys of ``kind = "hls"`` and
    ``kind = "orcasound"``)."""

    url: str = ""
    """Playlist URL (``http`` or ``https``) of ``kind = "hls"``."""
    poll_seconds: float = 0.0
    """Playlist reload interval, seconds (>= 0); 0: the playlist's ``EXT-X-TARGETDURATION``,
    kept within :data:`MIN_POLL_SECONDS` .. :data:`MAX_POLL_SECONDS` (a value set here is
    used as it is). After a reload without a new segment the next one comes after half of
    it, never sooner than :data:`MIN_POLL_SECONDS` after a target duration."""
    timeout_seconds: float = 10.0
    """Total deadline of each HTTP request (playlist, segment, ``latest.txt``), from its start
    to its last byte, seconds (> 0)."""
    live_edge_segments: int = 2
    """Start this many segments before the end of a live playlist (1-3 is usual), >= 1."""
    max_behind_segments: int = 4
    """More segments than this pending: skip to the live edge and mark the gap
    (>= live_edge_segments)."""
    stall_target_durations: float = 3.0
    """No new segment for this many target durations is a stall (> 0)."""
    segment_retries: int = 3
    """Tries to fetch a listed segment before it counts as lost, >= 1."""
    reconnect_seconds: float = 1.0
    """First wait after a failure, seconds (> 0); doubles on each further failure."""
    reconnect_max_seconds: float = 30.0
    """Longest wait between tries, seconds (>= reconnect_seconds)."""
    max_gap_seconds: float = 60.0
    """Cap of one gap mark, seconds (> 0); the clock is re-anchored after a capped gap (the
    pipeline allocates the silence of a gap at once, so hours of outage are not filled)."""
    sample_rate: int | None = None
    """Rate written into the ring, Hz; None: the stream's (probed). Other rates are
    resampled. Set it with ``channels`` to start without reaching the stream."""
    channels: int | None = None
    """Channels written into the ring; None: the stream's (probed). Mono is duplicated,
    more channels are averaged (like the pipeline does)."""

    def __post_init__(self) -> None:
        check_str("source.url", self.url, empty=True)
        check_number("source.poll_seconds", self.poll_seconds, minimum=0)
        for key in (
            "timeout_seconds",
            "stall_target_durations",
            "reconnect_seconds",
            "reconnect_max_seconds",
            "max_gap_seconds",
        ):
            check_number(f"source.{key}", getattr(self, key), positive=True)
        check_int("source.live_edge_segments", self.live_edge_segments, minimum=1)
        check_int("source.max_behind_segments", self.max_behind_segments, self.live_edge_segments)
        check_int("source.segment_retries", self.segment_retries, minimum=1)
        if self.reconnect_max_seconds < self.reconnect_seconds:
            raise ConfigError(
                f"source.reconnect_max_seconds must be >= reconnect_seconds = "
                f"{self.reconnect_seconds:g}, got {self.reconnect_max_seconds:g}"
            )
        if self.sample_rate is not None:
            check_int("source.sample_rate", self.sample_rate, minimum=1)
        if self.channels is not None:
            check_int("source.channels", self.channels, minimum=1)
        if self.url and self.url.split(":", 1)[0].lower() not in SCHEMES:
            raise fail("source.url", "an http or https URL", self.url)


@dataclass(frozen=True)
class HlsInfo:
    """What :meth:`HlsSource.probe` learnt."""

    sample_rate: int
    """Rate written into the ring, Hz (the stream's unless the settings say otherwise)."""
    n_channels: int
    """Channels written into the ring."""
    playlist_url: str | None
    """The media playlist followed; None if the stream could not be reached."""
    stream_sample_rate: int | None
    """The stream's own rate, Hz; None if not reached."""
    stream_n_channels: int | None
    """The stream's own channel count (of the probed segment); None if not reached."""


@dataclass
class HlsStats:
    """Counters of an HLS source (written on its thread, read from any)."""

    segments: int = 0
    """Segments decoded and written."""
    segments_lost: int = 0
    """Segments not written: missing, undecodable, skipped or gone from the playlist."""
    samples_written: int = 0
    """Decoded samples offered to the ring."""
    samples_lost: int = 0
    """Samples marked lost (gap marks), all causes."""
    timeline_samples: int = 0
    """Timeline length: written plus lost; the index of the next sample."""
    gaps: int = 0
    """Gap marks."""
    playlist_failures: int = 0
    """Failed playlist (or resolver) polls: network, HTTP and parse errors."""
    segment_failures: int = 0
    """Segments lost to fetch or decode errors (refused URIs included)."""
    refused: int = 0
    """Requests refused without being made, or cut short: a URI that is not http/https, a
    redirect to one, a body over the size limit."""
    bad_packets: int = 0
    """Packets the decoder refused."""
    restarts: int = 0
    """New streams: a new folder, a media sequence reset."""
    stalls: int = 0
    """Times the playlist stopped growing for ``stall_target_durations``."""
    behind_segments: int = 0
    """Segments pending after the last poll (1 or 2 at the live edge)."""
    connected: bool = False
    """The last playlist poll succeeded."""
    last_error: str | None = None
    """The last failure."""
    playlist_url: str | None = None
    """The media playlist followed now."""


class Resolver(Protocol):
    """Names the playlist to follow now; asked again on failures and stalls (a new URL is a
    new stream). ``str(resolver)`` names it in messages."""

    def resolve(self) -> str:
        """The playlist URL. Raises :class:`HlsError` (or :class:`FetchError`)."""
        ...
