"""Live HLS audio as a pipeline source: follow a playlist, decode its segments, survive outages.

:class:`HlsSource` polls a media playlist, fetches new segments in sequence order, decodes them
with one persistent AAC decoder (:mod:`streamsep.sources.hls.decode`) and writes the PCM into the
pipeline's ring on its ``streamsep-hls-source`` thread. It keeps one timeline for the whole
run: every sample index counts decoded samples and samples marked lost alike, and every loss
becomes a gap mark (``ring.mark_gap``) at its place, so it reaches subscribers as a gap flag
with a count. :meth:`HlsSource.probe` learns the rate and channels first (the pipeline needs
them up front).

Every loss is a gap at its place; the rules are in :mod:`streamsep.sources.hls.timeline`.
Requests have a total deadline and only ``http``/``https`` URIs are fetched
(:mod:`streamsep.sources.hls.fetch`); the reload interval taken from a playlist is kept within
``MIN_POLL_SECONDS`` .. ``MAX_POLL_SECONDS`` (:mod:`streamsep.sources.hls.settings`).

Playlist and network failures are retried with back-off, each distinct failure logged once
(:mod:`streamsep.sources.hls.retry`); the source only ends on
:meth:`HlsSource.stop` or at the ``EXT-X-ENDLIST`` of a fixed URL (a VOD or a finished
stream).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from streamsep.engine.ringbuffer import RingLike
from streamsep.errors import ConfigError
from streamsep.sources.hls.decode import DecodedAudio
from streamsep.sources.hls.fetch import Fetch, FetchError, HttpFetcher
from streamsep.sources.hls.playlist import HlsError, Playlist, Segment, parse_playlist
from streamsep.sources.hls.retry import Backoff, SegmentFetcher
from streamsep.sources.hls.settings import (
    MAX_POLL_SECONDS,
    MIN_POLL_SECONDS,
    HlsInfo,
    HlsSettings,
    HlsStats,
    Resolver,
)
from streamsep.sources.hls.timeline import Timeline
from streamsep.sources.hls.window import Window
from streamsep.threads import join_thread

__all__ = ["HlsSource"]

_LOGGER = logging.getLogger(__name__)

_MAX_BODY_BYTES: Final = 64 << 20
_DEFAULT_TARGET_SECONDS: Final = 10.0


class _FixedUrl:
    def __init__(self, url: str) -> None:
        self.url = url

    def resolve(self) -> str:
        return self.url

    def __str__(self) -> str:
        return self.url


class HlsSource:
    """Follows an HLS stream into a ring buffer, on its own thread.

    Parameters
    ----------
    url_or_resolver : str or Resolver, optional
        A playlist URL (live or VOD), or a :class:`Resolver` (e.g.
        :class:`~streamsep.sources.hls.orcasound.OrcasoundResolver`) that is asked again when
        the stream stalls or fails, to follow a restarted stream. None: ``settings.url``.
    ring : RingLike, optional
        Destination (may be given to :meth:`start` instead); ``n_channels`` must match.
    settings : HlsSettings, optional
        Polling, retry and gap policy.
    fetch : callable, optional
        ``fetch(url) -> bytes`` raising :class:`FetchError` (a seam for tests); default: an
        :class:`~streamsep.sources.hls.fetch.HttpFetcher` with ``settings.timeout_seconds``,
        cancelled by :meth:`stop`.
    on_anchor : callable, optional
        ``on_anchor(index, utc_ns)``: sample ``index`` of the timeline was recorded at UTC
        ``utc_ns``; called on the source thread at the first sample and after each restart or
        capped gap (e.g. ``CaptureClock.add``).
    monotonic : callable
        Clock of the wall-clock rules (a seam for tests).
    cancel : threading.Event, optional
        The stop event (set by :meth:`stop`); pass the one a resolver's fetcher was given so
        that its requests are cancelled too. Default: a new one.

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
        cancel: threading.Event | None = None,
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
        self._stop = cancel if cancel is not None else threading.Event()
        self._fetch: Fetch = fetch or HttpFetcher(
            s.timeout_seconds, _MAX_BODY_BYTES, cancel=self._stop
        )
        self._monotonic = monotonic
        self.stats = HlsStats()
        self.done = threading.Event()
        """Set when the thread has closed the ring."""
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._timeline = Timeline(s, self.stats, self._stop, monotonic)
        self._timeline.ring = ring
        self._timeline.on_anchor = on_anchor
        self._backoff = Backoff(s.reconnect_seconds, s.reconnect_max_seconds)
        self._segments = SegmentFetcher(
            self._fetch,
            s.segment_retries,
            s.reconnect_seconds,
            s.reconnect_max_seconds,
            wait=lambda seconds: self._wait(seconds),
            stopped=self._stop.is_set,
        )
        # Follower state (source thread only, after probe()).
        self._resolved: str | None = None
        self._primed: tuple[Playlist, float] | None = None
        self._cached: tuple[str, DecodedAudio] | None = None
        self._window = Window(s, self.stats, self._timeline, self._follows_restarts)
        self._last_growth = monotonic()
        self._stalled = False
        self._ended = False
        self._resolve_now = False

    # -- what the timeline holds -------------------------------------------------------------

    @property
    def ring(self) -> RingLike | None:
        """The ring written into."""
        return self._timeline.ring

    @ring.setter
    def ring(self, ring: RingLike | None) -> None:
        self._timeline.ring = ring

    @property
    def on_anchor(self) -> Callable[[int, int], None] | None:
        """``on_anchor(index, utc_ns)``, called on the source thread (see the class)."""
        return self._timeline.on_anchor

    @on_anchor.setter
    def on_anchor(self, on_anchor: Callable[[int, int], None] | None) -> None:
        self._timeline.on_anchor = on_anchor

    @property
    def sample_rate(self) -> int:
        """Rate written into the ring, Hz (0 until probed)."""
        return self._timeline.sample_rate

    @property
    def n_channels(self) -> int:
        """Channels written into the ring (0 until probed)."""
        return self._timeline.n_channels

    @property
    def start_utc_ns(self) -> int | None:
        """UTC of timeline sample 0, ns (program date-time, else a wall-clock estimate); set
        when the first segment is written."""
        return self._timeline.start_utc_ns

    # -- lifecycle ---------------------------------------------------------------------------

    def probe(self) -> HlsInfo:
        """Fetch the playlist and the segment the follower starts with, decode it, and learn
        the rate and channels (the segment is kept and written first).

        Each request has the total deadline ``settings.timeout_seconds``, and :meth:`stop`
        (from another thread or a signal handler) ends the probe at once.

        Raises
        ------
        HlsError
            If the stream cannot be reached or decoded, unless ``settings.sample_rate`` and
            ``settings.channels`` are both set (then those are used, with a warning), or if
            :meth:`stop` was called (always).
        """
        s = self.settings
        try:
            resolved = self._resolver.resolve()
            playlist, fetched = self._get_playlist(resolved)
            if not playlist.segments:
                raise HlsError("the playlist lists no segment yet")
            segment = playlist.segments[self._window.start_offset(playlist)]
            decoded = self._timeline.decoder.decode(self._segments(segment.uri, tries=1))
        except HlsError as e:
            if self._stop.is_set():
                raise HlsError(f"probe of {self._resolver} stopped") from e
            self._count_refusal(e)
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
        self._timeline.sample_rate = s.sample_rate or decoded.sample_rate
        self._timeline.n_channels = s.channels or decoded.n_channels
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
        """Stop following (thread- and signal-safe): a probe or a request in flight ends at
        once; the thread closes the ring so the pipeline drains and ends."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; False on timeout."""
        return join_thread(self._thread, timeout)

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
                    self._count_refusal(e)
                    delay = self._failed(str(e))
                except Exception as e:  # noqa: BLE001 - a live source outlives its bugs
                    if self._backoff.failure != repr(e):
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

    def _count_refusal(self, error: BaseException) -> None:
        if isinstance(error, FetchError) and error.permanent:
            self.stats.refused += 1

    def _failed(self, message: str, *, logged: bool = False) -> float:
        self.stats.playlist_failures += 1
        self.stats.connected = False
        self.stats.last_error = message
        self._resolve_now = True
        return self._backoff.failed(message, logged=logged)

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
        self._backoff.recovered(playlist.url)
        self._resolve_now = False
        self.stats.connected = True
        self.stats.playlist_url = playlist.url
        pending = self._window.select(playlist, fetched)
        for segment in pending:
            if self._stop.is_set():
                return None
            self._consume(segment)
        # The server's target duration, kept within bounds (a hostile or broken playlist must
        # not make us poll hundreds of times a second, nor never).
        target = playlist.target_duration_seconds or _DEFAULT_TARGET_SECONDS
        target = min(max(target, MIN_POLL_SECONDS), MAX_POLL_SECONDS)
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
            self._window.next_seq is None or self._window.next_seq > playlist.last_sequence
        )
        if self._ended and not self._follows_restarts:
            _LOGGER.info("hls: %s ended", playlist.url)
            return None
        if self.settings.poll_seconds:
            interval = self.settings.poll_seconds / (1 if pending else 2)
        else:
            interval = target if pending else max(target / 2, MIN_POLL_SECONDS)
        return max(0.0, fetched + interval - self._monotonic())

    def _resolve(self) -> None:
        url = self._resolver.resolve()
        if url != self._resolved:
            if self._resolved is not None:
                _LOGGER.warning("hls: %s moved to a new stream: %s", self._resolver, url)
                self.stats.restarts += 1
                self._window.new_stream()
                self._ended = False
            self._resolved = url

    def _get_playlist(self, url: str) -> tuple[Playlist, float]:
        playlist = parse_playlist(self._fetch(url), url)
        if playlist.variants and not playlist.segments:
            playlist = parse_playlist(self._fetch(playlist.variants[0]), playlist.variants[0])
            if playlist.variants and not playlist.segments:
                raise HlsError(f"{url}: master playlist of master playlists")
        return playlist, self._monotonic()

    def _consume(self, segment: Segment) -> None:
        """Fetch, decode and write one segment (or mark it lost)."""
        end_wall = self._window.end_wall(segment.sequence, self._monotonic())
        self._timeline.before(segment, end_wall)
        try:
            if self._cached is not None and self._cached[0] == segment.uri:
                decoded = self._cached[1]
            else:
                decoded = self._timeline.decoder.decode(self._segments(segment.uri))
        except HlsError as e:
            self._count_refusal(e)
            self._timeline.lose_segment(segment, str(e), end_wall)
        else:
            self._timeline.write_segment(segment, decoded, end_wall)
        finally:
            self._cached = None
        self._window.played(segment)

    def __repr__(self) -> str:
        return f"HlsSource({self._resolver}, {self.sample_rate} Hz, {self.n_channels} ch)"
