"""Live HLS audio as a pipeline source: follow a playlist, decode its segments, survive outages.

:class:`HlsSource` polls a media playlist, fetches new segments in sequence order, decodes them
with one persistent AAC decoder (:mod:`streamsep.sources.hls.decode`) and writes the PCM into the
pipeline's ring on its ``streamsep-hls-source`` thread. It keeps one timeline for the whole
run: every sample index counts decoded samples and samples marked lost alike, and every loss
becomes a gap mark (``ring.mark_gap``) at its place, so it reaches subscribers as a gap flag
with a count. :meth:`HlsSource.probe` learns the rate and channels first (the pipeline needs
them up front).

Gap rules (``rate`` is the source rate; every gap is capped at ``max_gap_seconds``):

* **missing segment** (HTTP error after ``segment_retries`` tries), **undecodable segment**:
  its ``EXTINF`` x rate.
* **truncated segment**: what decodes is written, then ``EXTINF`` x rate minus the decoded
  samples (when more than 50 ms short).
* **behind the live edge** (more than ``max_behind_segments`` pending): all but the last
  ``live_edge_segments`` are skipped, their ``EXTINF`` sum x rate.
* **segments gone unseen** (a sliding playlist moved past them, e.g. during an outage or a
  malformed playlist): their count x the playlist's mean ``EXTINF`` x rate.
* **stream restart** (a new folder from the resolver, or a media sequence that went back):
  the time between the end of the last written segment and the start of the next, x rate;
  from ``EXT-X-PROGRAM-DATE-TIME`` when both have one, else from the wall clock: a segment
  ends when it first shows up in the playlist (less the duration of the segments listed after
  it), so the estimate is good to about one poll interval.
* **discontinuity** (``EXT-X-DISCONTINUITY``): the date-time difference as for a restart when
  both segments have one; without date-times nothing is known to be lost and no gap is
  marked (the decoder is reset either way).
* **stall** (no new segment for ``stall_target_durations`` target durations): logged, and the
  resolver is asked again at every poll (for Orcasound: ``latest.txt``). A stall costs samples
  only if the stream does not resume where it stopped; then one of the rules above counts
  them. If the playlist resumes with the next segment, nothing was lost and no gap is marked.

Playlist and network failures are retried with back-off (``reconnect_seconds`` doubling up to
``reconnect_max_seconds``), each distinct failure logged once; the source only ends on
:meth:`HlsSource.stop` or at the ``EXT-X-ENDLIST`` of a fixed URL (a VOD or a finished
stream).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.audio import StreamResampler, adapt_channels
from streamsep.engine.ringbuffer import RingLike
from streamsep.errors import ConfigError
from streamsep.sources.hls.decode import DecodedAudio, SegmentDecoder
from streamsep.sources.hls.playlist import (
    Fetch,
    FetchError,
    HlsError,
    Playlist,
    Segment,
    UrlFetcher,
    parse_playlist,
)
from streamsep.validate import check_int, check_number, check_str, fail

__all__ = [
    "HlsSettings",
    "HlsInfo",
    "HlsStats",
    "HlsSource",
    "Resolver",
    "HlsError",
    "FetchError",
]

_LOGGER = logging.getLogger(__name__)

_WRITE_SAMPLES: Final = 8192
_SPACE_WAIT_SECONDS: Final = 0.1
_SHORT_TOLERANCE_SECONDS: Final = 0.05
_MAX_BODY_BYTES: Final = 64 << 20
_RECENT_SEGMENTS: Final = 64
_DEFAULT_TARGET_SECONDS: Final = 10.0


@dataclass(frozen=True)
class HlsSettings:
    """How an HLS stream is followed (the ``[source]`` keys of ``kind = "hls"`` and
    ``kind = "orcasound"``)."""

    url: str = ""
    """Playlist URL (``http``, ``https`` or ``file``) of ``kind = "hls"``."""
    poll_seconds: float = 0.0
    """Playlist reload interval, seconds (>= 0); 0: the playlist's ``EXT-X-TARGETDURATION``.
    After a reload without a new segment the next one comes after half of it."""
    timeout_seconds: float = 10.0
    """Timeout of each HTTP request, seconds (> 0)."""
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
        if self.url and self.url.split(":", 1)[0] not in ("http", "https", "file"):
            raise fail("source.url", "an http, https or file URL", self.url)


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
    """Segments lost to fetch or decode errors."""
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


class _FixedUrl:
    def __init__(self, url: str) -> None:
        self.url = url

    def resolve(self) -> str:
        return self.url

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class _Written:
    """The last segment written: where its audio ends, by date-time and by wall clock."""

    sequence: int
    end_utc_ns: int | None
    end_wall: float


class HlsSource:
    """Follows an HLS stream into a ring buffer, on its own thread.

    Parameters
    ----------
    url_or_resolver : str or Resolver, optional
        A playlist URL (live or VOD), or a :class:`Resolver` (e.g.
        :class:`~streamsep.sources.hls.orcasound.OrcasoundResolver`) that is asked again when the
        stream
        stalls or fails, to follow a restarted stream. None: ``settings.url``.
    ring : RingLike, optional
        Destination (may be given to :meth:`start` instead); ``n_channels`` must match.
    settings : HlsSettings, optional
        Polling, retry and gap policy.
    fetch : callable, optional
        ``fetch(url) -> bytes`` raising :class:`FetchError` (a seam for tests); default: a
        :class:`~streamsep.sources.hls.playlist.UrlFetcher` with ``settings.timeout_seconds``.
    on_anchor : callable, optional
        ``on_anchor(index, utc_ns)``: sample ``index`` of the timeline was recorded at UTC
        ``utc_ns``; called on the source thread at the first sample and after each restart or
        capped gap (e.g. ``CaptureClock.add``).
    monotonic : callable
        Clock of the wall-clock rules (a seam for tests).

    Raises
    ------
    ConfigError
        If no URL is given.
    """

    def __init__(
        self,
        url_or_resolver: str | Resolver | None,
        ring: RingLike | None = None,
        settings: HlsSettings | None = None,
        *,
        fetch: Fetch | None = None,
        on_anchor: Callable[[int, int], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = s = settings or HlsSettings()
        target = s.url if url_or_resolver is None else url_or_resolver
        if isinstance(target, str):
            if not target:
                raise ConfigError("source.url must name a playlist URL")
            self._resolver: Resolver = _FixedUrl(target)
        else:
            self._resolver = target
        self._follows_restarts = not isinstance(self._resolver, _FixedUrl)
        self._fetch: Fetch = fetch or UrlFetcher(s.timeout_seconds, _MAX_BODY_BYTES)
        self.ring = ring
        self.on_anchor = on_anchor
        self._monotonic = monotonic
        self.sample_rate = s.sample_rate or 0
        """Rate written into the ring, Hz (0 until probed)."""
        self.n_channels = s.channels or 0
        """Channels written into the ring (0 until probed)."""
        self.start_utc_ns: int | None = None
        """UTC of timeline sample 0, ns (program date-time, else a wall-clock estimate); set
        when the first segment is written."""
        self.stats = HlsStats()
        self.done = threading.Event()
        """Set when the thread has closed the ring."""
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._decoder = SegmentDecoder()
        self._resampler: StreamResampler | None = None
        # Follower state (source thread only, after probe()).
        self._resolved: str | None = None
        self._primed: tuple[Playlist, float] | None = None
        self._cached: tuple[str, DecodedAudio] | None = None
        self._next_seq: int | None = None
        self._first_stream = True
        self._break = False
        self._anchor_next = True
        self._last: _Written | None = None
        self._end_wall: dict[int, float] = {}
        self._recent: dict[int, str] = {}
        self._last_growth = monotonic()
        self._stalled = False
        self._ended = False
        self._resolve_now = False
        self._failure: str | None = None
        self._failures = 0
        self._delay = s.reconnect_seconds

    # -- lifecycle ---------------------------------------------------------------------------

    def probe(self) -> HlsInfo:
        """Fetch the playlist and the segment the follower starts with, decode it, and learn
        the rate and channels (the segment is kept and written first).

        Raises
        ------
        HlsError
            If the stream cannot be reached or decoded, unless ``settings.sample_rate`` and
            ``settings.channels`` are both set (then those are used, with a warning).
        """
        s = self.settings
        try:
            resolved = self._resolver.resolve()
            playlist, fetched = self._get_playlist(resolved)
            if not playlist.segments:
                raise HlsError("the playlist lists no segment yet")
            segment = playlist.segments[self._start_offset(playlist)]
            decoded = self._decoder.decode(self._fetch(segment.uri))
        except HlsError as e:
            if s.sample_rate and s.channels:
                _LOGGER.warning(
                    "hls: cannot probe %s (%s); using %d Hz, %d channel(s) from the settings",
                    *(self._resolver, e, s.sample_rate, s.channels),
                )
                return HlsInfo(s.sample_rate, s.channels, None, None, None)
            raise HlsError(f"cannot probe {self._resolver}: {e}") from e
        self._resolved = resolved
        self._primed = (playlist, fetched)
        self._cached = (segment.uri, decoded)
        self.sample_rate = s.sample_rate or decoded.sample_rate
        self.n_channels = s.channels or decoded.n_channels
        _LOGGER.info(
            "hls: %s: %d Hz, %d channel(s), target duration %g s, %d segment(s) listed%s",
            *(playlist.url, decoded.sample_rate, decoded.n_channels),
            *(playlist.target_duration_seconds, len(playlist.segments)),
            ", ended" if playlist.endlist else "",
        )
        return HlsInfo(
            self.sample_rate,
            self.n_channels,
            playlist.url,
            decoded.sample_rate,
            decoded.n_channels,
        )

    def start(self, ring: RingLike | None = None) -> None:
        """Start following into ``ring`` (or the constructor's); probes first if needed.

        Raises
        ------
        HlsError
            If the probe fails or the ring's channel count differs.
        """
        if ring is not None:
            self.ring = ring
        if self.ring is None:
            raise HlsError("hls source has no ring to write into")
        if not self.sample_rate or not self.n_channels:
            self.probe()
        if self.ring.n_channels != self.n_channels:
            raise HlsError(
                f"ring has {self.ring.n_channels} channels, source delivers {self.n_channels}"
            )
        self._thread = threading.Thread(target=self._run, name="streamsep-hls-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following; the thread closes the ring so the pipeline drains and ends."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; False on timeout."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def __enter__(self) -> HlsSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.join()

    # -- source thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    delay = self._step()
                except HlsError as e:
                    delay = self._failed(str(e))
                except Exception as e:  # noqa: BLE001 - a live source outlives its bugs
                    if self._failure != repr(e):
                        _LOGGER.exception("hls: unexpected error (retrying)")
                    delay = self._failed(repr(e), logged=True)
                if delay is None:
                    break
                self._wait(delay)
        except BaseException as e:  # noqa: BLE001 - surfaced through .error and the log
            _LOGGER.exception("hls source failed")
            self.error = e
        finally:
            self.stats.connected = False
            if self.ring is not None:
                self.ring.close()
            self.done.set()

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stop.wait(seconds)

    def _failed(self, message: str, *, logged: bool = False) -> float:
        self.stats.playlist_failures += 1
        self.stats.connected = False
        self.stats.last_error = message
        if message != self._failure and not logged:
            _LOGGER.warning(
                "hls: %s (retrying, back-off up to %g s)",
                message,
                self.settings.reconnect_max_seconds,
            )
        self._failure = message
        self._failures += 1
        self._resolve_now = True
        delay = self._delay
        self._delay = min(delay * 2, self.settings.reconnect_max_seconds)
        return delay

    def _step(self) -> float | None:
        """One poll: resolve if needed, reload the playlist, write what is new. Returns the
        wait before the next poll, or None at the end of a fixed-URL stream."""
        if self._primed is not None:
            playlist, fetched = self._primed
            self._primed = None
        else:
            if self._resolved is None or (
                self._follows_restarts and (self._resolve_now or self._stalled or self._ended)
            ):
                self._resolve()
            assert self._resolved is not None
            playlist, fetched = self._get_playlist(self._resolved)
        if self._failure is not None:
            _LOGGER.info(
                "hls: %s reachable again after %d failure(s)", playlist.url, self._failures
            )
        self._failure, self._failures, self._resolve_now = None, 0, False
        self._delay = self.settings.reconnect_seconds
        self.stats.connected = True
        self.stats.playlist_url = playlist.url
        pending = self._select(playlist, fetched)
        for segment in pending:
            if self._stop.is_set():
                return None
            self._consume(segment)
        target = playlist.target_duration_seconds or _DEFAULT_TARGET_SECONDS
        if pending:
            if self._stalled:
                _LOGGER.info("hls: new segments after %.1f s", fetched - self._last_growth)
            self._last_growth, self._stalled = fetched, False
        elif not self._stalled:
            quiet = self._monotonic() - self._last_growth
            if quiet > self.settings.stall_target_durations * target and not playlist.endlist:
                self._stalled = True
                self.stats.stalls += 1
                _LOGGER.warning(
                    "hls: no new segment for %.1f s: stalled%s",
                    quiet,
                    f"; asking {self._resolver} again" if self._follows_restarts else "",
                )
        self._ended = playlist.endlist and (
            self._next_seq is None or self._next_seq > playlist.last_sequence
        )
        if self._ended and not self._follows_restarts:
            _LOGGER.info("hls: %s ended", playlist.url)
            return None
        interval = self.settings.poll_seconds or target
        if not pending:
            interval /= 2
        return max(0.0, fetched + interval - self._monotonic())

    def _resolve(self) -> None:
        url = self._resolver.resolve()
        if url != self._resolved:
            if self._resolved is not None:
                _LOGGER.warning("hls: %s moved to a new stream: %s", self._resolver, url)
                self.stats.restarts += 1
                self._new_stream()
            self._resolved = url

    def _get_playlist(self, url: str) -> tuple[Playlist, float]:
        playlist = parse_playlist(self._fetch(url), url)
        if playlist.variants and not playlist.segments:
            playlist = parse_playlist(self._fetch(playlist.variants[0]), playlist.variants[0])
            if playlist.variants and not playlist.segments:
                raise HlsError(f"{url}: master playlist of master playlists")
        return playlist, self._monotonic()

    def _new_stream(self) -> None:
        self._next_seq = None
        self._break = self._last is not None
        self._end_wall.clear()
        self._recent.clear()
        self._ended = False

    def _start_offset(self, playlist: Playlist) -> int:
        """Index of the first segment to play in a stream just found."""
        n = len(playlist.segments)
        if self._first_stream and playlist.endlist and not self._follows_restarts:
            return 0  # a VOD (or finished) playlist given by URL: all of it
        if not self._first_stream:
            return 0  # a restarted stream: from its start (the skip-ahead rule applies)
        return max(0, n - self.settings.live_edge_segments)

    def _select(self, playlist: Playlist, fetched: float) -> list[Segment]:
        """The segments to write now, in order; marks what was skipped or left unseen."""
        s = self.settings
        segments = playlist.segments
        if not segments:
            return []
        if self._next_seq is not None and playlist.last_sequence < self._next_seq - 1:
            if all(self._recent.get(g.sequence) == g.uri for g in segments):
                return []  # an older copy of the playlist (a cache): ignore it
            _LOGGER.warning(
                "hls: media sequence went back from %d to %d: the stream restarted",
                *(self._next_seq - 1, playlist.last_sequence),
            )
            self.stats.restarts += 1
            self._new_stream()
        # End of each segment by the wall clock, at first sight. Orcasound playlists list every
        # segment since the node started, so stop at those already played.
        oldest = -1 if self._next_seq is None else self._next_seq - 1
        later = 0.0
        for segment in reversed(segments):
            if segment.sequence < oldest:
                break
            self._end_wall.setdefault(segment.sequence, fetched - later)
            later += segment.duration_seconds
        first = segments[0].sequence
        if self._next_seq is None:
            self._next_seq = first + self._start_offset(playlist)
            self._first_stream = False
        elif self._next_seq < first:
            n = first - self._next_seq
            self._lose(
                n * playlist.mean_duration_seconds,
                f"{n} segment(s) left the playlist before they were fetched",
                segments=n,
            )
            self._next_seq = first
        pending = [g for g in segments if g.sequence >= self._next_seq]
        vod = playlist.endlist and not self._follows_restarts
        if not vod and len(pending) > s.max_behind_segments:
            skipped, pending = (
                pending[: -s.live_edge_segments],
                pending[-s.live_edge_segments :],
            )
            reason = f"{len(skipped) + len(pending)} segments behind the live edge"
            if self._break:  # counted in the restart gap, from the next segment's start
                _LOGGER.info("hls: %s: skipped %d", reason, len(skipped))
                self.stats.segments_lost += len(skipped)
            else:
                seconds = sum(g.duration_seconds for g in skipped)
                self._lose(seconds, f"{reason}: skipped {len(skipped)}", segments=len(skipped))
            self._next_seq = pending[0].sequence
        for sequence in [k for k in self._end_wall if k < self._next_seq - 1]:
            del self._end_wall[sequence]
        self.stats.behind_segments = len(pending)
        return pending

    def _consume(self, segment: Segment) -> None:
        """Fetch, decode and write one segment (or mark it lost)."""
        last = self._last
        if last is not None and self._break:
            seconds, how = self._outage_seconds(segment)
            self._break = False
            self._anchor_next = True
            self._lose(seconds, f"stream restart before {segment.name} ({how})")
        elif segment.discontinuity:
            self._decoder.reset()
            if last is not None and last.end_utc_ns and segment.program_date_time_ns:
                self._anchor_next = True
                seconds = (segment.program_date_time_ns - last.end_utc_ns) / 1e9
                self._lose(seconds, f"discontinuity before {segment.name} (program date-time)")
        try:
            if self._cached is not None and self._cached[0] == segment.uri:
                decoded = self._cached[1]
            else:
                decoded = self._decoder.decode(self._fetch_segment(segment))
        except HlsError as e:
            self.stats.segment_failures += 1
            self._lose(segment.duration_seconds, f"segment {segment.name}: {e}", segments=1)
            self._done_with(segment, None)
            return
        finally:
            self._cached = None
        self.stats.bad_packets += decoded.bad_packets
        x = self._conform(decoded)
        expected = round(segment.duration_seconds * self.sample_rate)
        if self._anchor_next:
            self._anchor(segment)
        self._write(x)
        self.stats.segments += 1
        short = expected - x.shape[0]
        if short > _SHORT_TOLERANCE_SECONDS * self.sample_rate:
            self._lose(
                short / self.sample_rate,
                f"segment {segment.name} decoded {x.shape[0]} of {expected} samples "
                f"({decoded.bad_packets} bad packet(s))",
            )
        self._done_with(segment, x.shape[0])

    def _done_with(self, segment: Segment, n_written: int | None) -> None:
        end_utc = None
        if segment.program_date_time_ns is not None:
            end_utc = segment.program_date_time_ns + round(segment.duration_seconds * 1e9)
        end_wall = self._end_wall.get(segment.sequence, self._monotonic())
        self._last = _Written(segment.sequence, end_utc, end_wall)
        self._next_seq = segment.sequence + 1
        self._recent[segment.sequence] = segment.uri
        if len(self._recent) > _RECENT_SEGMENTS:
            del self._recent[min(self._recent)]

    def _outage_seconds(self, segment: Segment) -> tuple[float, str]:
        last = self._last
        assert last is not None
        if last.end_utc_ns is not None and segment.program_date_time_ns is not None:
            return (segment.program_date_time_ns - last.end_utc_ns) / 1e9, "program date-time"
        start_wall = self._end_wall.get(segment.sequence, self._monotonic())
        return start_wall - segment.duration_seconds - last.end_wall, "wall clock"

    def _anchor(self, segment: Segment) -> None:
        if segment.program_date_time_ns is not None:
            utc_ns = segment.program_date_time_ns
        else:
            start_wall = self._end_wall.get(segment.sequence, self._monotonic())
            start_wall -= segment.duration_seconds
            utc_ns = time.time_ns() - round((self._monotonic() - start_wall) * 1e9)
        index = self.stats.timeline_samples
        if self.start_utc_ns is None:
            self.start_utc_ns = utc_ns - index * 1_000_000_000 // self.sample_rate
        self._anchor_next = False
        if self.on_anchor is not None:
            self.on_anchor(index, utc_ns)

    def _fetch_segment(self, segment: Segment) -> bytes:
        delay = self.settings.reconnect_seconds
        tries = self.settings.segment_retries
        for attempt in range(1, tries + 1):
            try:
                return self._fetch(segment.uri)
            except FetchError as e:
                if attempt == tries or self._stop.is_set():
                    raise HlsError(f"{e} ({attempt} tries)") from e
            self._wait(delay)
            delay = min(delay * 2, self.settings.reconnect_max_seconds)
        raise AssertionError("unreachable")

    def _conform(self, decoded: DecodedAudio) -> NDArray[np.float32]:
        """The decoded audio at the ring's rate and channel count."""
        x = adapt_channels(decoded.samples, self.n_channels)
        if decoded.sample_rate == self.sample_rate:
            self._resampler = None
            return x
        if self._resampler is None or self._resampler.from_rate != decoded.sample_rate:
            _LOGGER.warning(
                "hls: resampling the stream from %d to %d Hz", decoded.sample_rate, self.sample_rate
            )
            self._resampler = StreamResampler(decoded.sample_rate, self.sample_rate, x.shape[1])
        return self._resampler.process(x)

    def _write(self, x: NDArray[np.float32]) -> None:
        """Write into the ring, waiting for space (the playlist buffers upstream and the
        skip-ahead rule bounds the latency)."""
        ring = self.ring
        assert ring is not None
        for start in range(0, x.shape[0], _WRITE_SAMPLES):
            block = np.ascontiguousarray(x[start : start + _WRITE_SAMPLES])
            while not ring.wait_for_space(block.shape[0], _SPACE_WAIT_SECONDS):
                if self._stop.is_set():
                    return
            ring.write(block)
            self.stats.samples_written += block.shape[0]
            self.stats.timeline_samples += block.shape[0]

    def _lose(self, seconds: float, reason: str, *, segments: int = 0) -> None:
        """Mark ``seconds`` of audio lost here (capped), and break decoder continuity."""
        self.stats.segments_lost += segments
        self._decoder.reset()
        self._resampler = None
        n = round(seconds * self.sample_rate)
        if n <= 0:
            _LOGGER.info("hls: %s; no samples lost", reason)
            return
        cap = round(self.settings.max_gap_seconds * self.sample_rate)
        if n > cap:
            _LOGGER.warning(
                "hls: %s: %.1f s lost, marked as %.1f s (max_gap_seconds); clock re-anchored",
                *(reason, seconds, self.settings.max_gap_seconds),
            )
            n = cap
            self._anchor_next = True
        else:
            _LOGGER.warning("hls: %s: %d samples (%.3f s) lost", reason, n, n / self.sample_rate)
        assert self.ring is not None
        self.ring.mark_gap(n)
        self.stats.gaps += 1
        self.stats.samples_lost += n
        self.stats.timeline_samples += n

    def __repr__(self) -> str:
        return f"HlsSource({self._resolver}, {self.sample_rate} Hz, {self.n_channels} ch)"
