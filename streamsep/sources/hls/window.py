"""Which segments of a playlist an HLS source plays next.

:class:`Window` keeps the follower's place in the stream: where a stream just found starts
(``live_edge_segments`` before a live end; a VOD given by URL, or a restarted stream, from its
start), the skip-ahead when more than ``max_behind_segments`` are pending, segments that left a
sliding playlist unseen, a media sequence that went back (a restart, unless it is an older
cached copy of segments already played), and when each segment ended by the wall clock (at its
first sight in a playlist, less the durations listed after it). Losses go to the
:class:`~streamsep.sources.hls.timeline.Timeline` as gaps. Source thread only.
"""

from __future__ import annotations

import logging
from typing import Final

from streamsep.sources.hls.playlist import Playlist, Segment
from streamsep.sources.hls.settings import HlsSettings, HlsStats
from streamsep.sources.hls.timeline import Timeline

__all__ = ["Window"]

_LOGGER = logging.getLogger(__name__)

_RECENT_SEGMENTS: Final = 64


class Window:
    """The follower's place in the stream.

    Parameters
    ----------
    settings : HlsSettings
        ``live_edge_segments`` and ``max_behind_segments``.
    stats : HlsStats
        ``restarts``, ``segments_lost`` and ``behind_segments`` are updated here.
    timeline : Timeline
        Where skipped and unseen segments are marked lost.
    follows_restarts : bool
        The URL comes from a resolver (a VOD rule applies to fixed URLs only).
    """

    def __init__(
        self, settings: HlsSettings, stats: HlsStats, timeline: Timeline, follows_restarts: bool
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._timeline = timeline
        self._follows_restarts = follows_restarts
        self.next_seq: int | None = None
        """Sequence number of the next segment to play; None in a stream not seen yet."""
        self._first_stream = True
        self._end_wall: dict[int, float] = {}
        self._recent: dict[int, str] = {}

    def end_wall(self, sequence: int, default: float) -> float:
        """When segment ``sequence`` ended by the wall clock (``default`` if unknown)."""
        return self._end_wall.get(sequence, default)

    def played(self, segment: Segment) -> None:
        """``segment`` was written or marked lost: the next one follows it."""
        self.next_seq = segment.sequence + 1
        self._recent[segment.sequence] = segment.uri
        if len(self._recent) > _RECENT_SEGMENTS:
            del self._recent[min(self._recent)]

    def new_stream(self) -> None:
        """A new stream begins (a new URL, a media sequence reset): start from its start."""
        self.next_seq = None
        self._timeline.restart()
        self._end_wall.clear()
        self._recent.clear()

    def start_offset(self, playlist: Playlist) -> int:
        """Index of the first segment to play in a stream just found."""
        n = len(playlist.segments)
        if self._first_stream and playlist.endlist and not self._follows_restarts:
            return 0  # a VOD (or finished) playlist given by URL: all of it
        if not self._first_stream:
            return 0  # a restarted stream: from its start (the skip-ahead rule applies)
        return max(0, n - self._settings.live_edge_segments)

    def select(self, playlist: Playlist, fetched: float) -> list[Segment]:
        """The segments to write now, in order; marks what was skipped or left unseen."""
        s = self._settings
        segments = playlist.segments
        if not segments:
            return []
        if self.next_seq is not None and playlist.last_sequence < self.next_seq - 1:
            if all(self._recent.get(g.sequence) == g.uri for g in segments):
                return []  # an older copy of the playlist (a cache): ignore it
            _LOGGER.warning(
                "hls: media sequence went back from %d to %d: the stream restarted",
                *(self.next_seq - 1, playlist.last_sequence),
            )
            self._stats.restarts += 1
            self.new_stream()
        # End of each segment by the wall clock, at first sight. Orcasound playlists list every
        # segment since the node started, so stop at those already played.
        oldest = -1 if self.next_seq is None else self.next_seq - 1
        later = 0.0
        for segment in reversed(segments):
            if segment.sequence < oldest:
                break
            self._end_wall.setdefault(segment.sequence, fetched - later)
            later += segment.duration_seconds
        first = segments[0].sequence
        if self.next_seq is None:
            self.next_seq = first + self.start_offset(playlist)
            self._first_stream = False
        elif self.next_seq < first:
            n = first - self.next_seq
            self._timeline.lose(
                n * playlist.mean_duration_seconds,
                f"{n} segment(s) left the playlist before they were fetched",
                segments=n,
            )
            self.next_seq = first
        pending = [g for g in segments if g.sequence >= self.next_seq]
        vod = playlist.endlist and not self._follows_restarts
        if not vod and len(pending) > s.max_behind_segments:
            skipped, pending = (
                pending[: -s.live_edge_segments],
                pending[-s.live_edge_segments :],
            )
            reason = f"{len(skipped) + len(pending)} segments behind the live edge"
            if self._timeline.breaking:  # counted in the restart gap, from the next start
                _LOGGER.info("hls: %s: skipped %d", reason, len(skipped))
                self._stats.segments_lost += len(skipped)
            else:
                seconds = sum(g.duration_seconds for g in skipped)
                self._timeline.lose(
                    seconds, f"{reason}: skipped {len(skipped)}", segments=len(skipped)
                )
            self.next_seq = pending[0].sequence
        for sequence in [k for k in self._end_wall if k < self.next_seq - 1]:
            del self._end_wall[sequence]
        self._stats.behind_segments = len(pending)
        return pending
