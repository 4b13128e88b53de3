"""The timeline of an HLS source: decoded segments and lost samples, one index for the whole run.

:class:`Timeline` turns what the follower hands it (a decoded segment, or a segment that could
not be had) into ring writes and gap marks at their place: it conforms the audio to the ring's
rate and channels, writes it while waiting for space, marks every loss with
``ring.mark_gap(n)`` (capped at ``max_gap_seconds``), counts the outage of a restart or a dated
discontinuity from ``EXT-X-PROGRAM-DATE-TIME`` or the wall clock, and anchors the clock at the
first sample and after each restart, dated discontinuity or capped gap. Source thread only.

Gap rules (``rate`` is the source rate; every gap is capped at ``max_gap_seconds``):

* **missing segment** (HTTP error after ``segment_retries`` tries; a refused URI: not
  http/https, a redirect to one, a body over the size limit), **undecodable segment**: its
  ``EXTINF`` x rate.
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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.audio import StreamResampler, adapt_channels
from streamsep.engine.ringbuffer import RingLike
from streamsep.sources.hls.decode import DecodedAudio, SegmentDecoder
from streamsep.sources.hls.playlist import Segment
from streamsep.sources.hls.settings import HlsSettings, HlsStats

__all__ = ["Timeline"]

_LOGGER = logging.getLogger(__name__)

_WRITE_SAMPLES: Final = 8192
_SPACE_WAIT_SECONDS: Final = 0.1
_SHORT_TOLERANCE_SECONDS: Final = 0.05


@dataclass(frozen=True)
class _Written:
    """The last segment written: where its audio ends, by date-time and by wall clock."""

    sequence: int
    end_utc_ns: int | None
    end_wall: float


class Timeline:
    """Decodes, conforms and writes segments; marks and counts what is lost.

    Parameters
    ----------
    settings : HlsSettings
        ``sample_rate``, ``channels`` (None: set :attr:`sample_rate` and :attr:`n_channels`
        after the probe) and ``max_gap_seconds``.
    stats : HlsStats
        Counters, updated here.
    stop : threading.Event
        Set when the source stops: a write waiting for ring space gives up.
    monotonic : callable
        The wall clock of the outage and anchor rules, seconds.
    """

    def __init__(
        self,
        settings: HlsSettings,
        stats: HlsStats,
        stop: threading.Event,
        monotonic: Callable[[], float],
    ) -> None:
        self.max_gap_seconds = settings.max_gap_seconds
        self.stats = stats
        self.ring: RingLike | None = None
        self.on_anchor: Callable[[int, int], None] | None = None
        self.sample_rate = settings.sample_rate or 0
        """Rate written into the ring, Hz (0 until probed)."""
        self.n_channels = settings.channels or 0
        """Channels written into the ring (0 until probed)."""
        self.start_utc_ns: int | None = None
        """UTC of timeline sample 0, ns; set when the first segment is written."""
        self.decoder = SegmentDecoder()
        self._stop = stop
        self._monotonic = monotonic
        self._resampler: StreamResampler | None = None
        self._anchor_next = True
        self._break = False
        self._last: _Written | None = None

    @property
    def breaking(self) -> bool:
        """A restart is pending: the next segment is preceded by the outage's gap."""
        return self._break

    def restart(self) -> None:
        """A new stream begins: the next segment starts after an outage (if any was written)."""
        self._break = self._last is not None

    def before(self, segment: Segment, end_wall: float) -> None:
        """Mark the gap in front of ``segment``: a restart's outage or a dated discontinuity
        (the decoder is reset at any discontinuity). ``end_wall``: when it ended, by the wall
        clock (first seen in a playlist)."""
        last = self._last
        if last is not None and self._break:
            seconds, how = self._outage_seconds(segment, end_wall)
            self._break = False
            self._anchor_next = True
            self.lose(seconds, f"stream restart before {segment.name} ({how})")
        elif segment.discontinuity:
            self.decoder.reset()
            if last is not None and last.end_utc_ns and segment.program_date_time_ns:
                self._anchor_next = True
                seconds = (segment.program_date_time_ns - last.end_utc_ns) / 1e9
                self.lose(seconds, f"discontinuity before {segment.name} (program date-time)")

    def write_segment(self, segment: Segment, decoded: DecodedAudio, end_wall: float) -> None:
        """Write ``segment``'s audio; a segment decoding short of its ``EXTINF`` by more than
        50 ms is followed by a gap of the difference."""
        self.stats.bad_packets += decoded.bad_packets
        x = self._conform(decoded)
        expected = round(segment.duration_seconds * self.sample_rate)
        if self._anchor_next:
            self._anchor(segment, end_wall)
        self._write(x)
        self.stats.segments += 1
        short = expected - x.shape[0]
        if short > _SHORT_TOLERANCE_SECONDS * self.sample_rate:
            self.lose(
                short / self.sample_rate,
                f"segment {segment.name} decoded {x.shape[0]} of {expected} samples "
                f"({decoded.bad_packets} bad packet(s))",
            )
        self._written(segment, end_wall)

    def lose_segment(self, segment: Segment, reason: str, end_wall: float) -> None:
        """``segment`` could not be had (missing, refused, undecodable): a gap of its
        ``EXTINF``."""
        self.stats.segment_failures += 1
        self.lose(segment.duration_seconds, f"segment {segment.name}: {reason}", segments=1)
        self._written(segment, end_wall)

    def lose(self, seconds: float, reason: str, *, segments: int = 0) -> None:
        """Mark ``seconds`` of audio lost here (capped), and break decoder continuity."""
        self.stats.segments_lost += segments
        self.decoder.reset()
        self._resampler = None
        n = round(seconds * self.sample_rate)
        if n <= 0:
            _LOGGER.info("hls: %s; no samples lost", reason)
            return
        cap = round(self.max_gap_seconds * self.sample_rate)
        if n > cap:
            _LOGGER.warning(
                "hls: %s: %.1f s lost, marked as %.1f s (max_gap_seconds); clock re-anchored",
                *(reason, seconds, self.max_gap_seconds),
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

    def _written(self, segment: Segment, end_wall: float) -> None:
        end_utc = None
        if segment.program_date_time_ns is not None:
            end_utc = segment.program_date_time_ns + round(segment.duration_seconds * 1e9)
        self._last = _Written(segment.sequence, end_utc, end_wall)

    def _outage_seconds(self, segment: Segment, end_wall: float) -> tuple[float, str]:
        last = self._last
        assert last is not None
        if last.end_utc_ns is not None and segment.program_date_time_ns is not None:
            return (segment.program_date_time_ns - last.end_utc_ns) / 1e9, "program date-time"
        return end_wall - segment.duration_seconds - last.end_wall, "wall clock"

    def _anchor(self, segment: Segment, end_wall: float) -> None:
        if segment.program_date_time_ns is not None:
            utc_ns = segment.program_date_time_ns
        else:
            start_wall = end_wall - segment.duration_seconds
            utc_ns = time.time_ns() - round((self._monotonic() - start_wall) * 1e9)
        index = self.stats.timeline_samples
        if self.start_utc_ns is None:
            self.start_utc_ns = utc_ns - index * 1_000_000_000 // self.sample_rate
        self._anchor_next = False
        if self.on_anchor is not None:
            self.on_anchor(index, utc_ns)

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
