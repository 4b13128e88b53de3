"""HLS media playlists (RFC 8216) as far as a live audio follower needs them.

:func:`parse_playlist` reads a media playlist (or a master playlist, whose variants it lists)
into a :class:`Playlist`: target duration, media sequence, segments with their sequence number,
absolute URI, ``EXTINF`` duration, ``EXT-X-DISCONTINUITY`` and ``EXT-X-PROGRAM-DATE-TIME``
(carried forward over the following segments by their durations, as RFC 8216 4.3.2.6 says),
and ``EXT-X-ENDLIST``. Encrypted segments (``EXT-X-KEY`` other than ``NONE``), byte ranges and
fMP4 initialisation sections (``EXT-X-MAP``) are refused with an :class:`HlsError`: Orcasound
and ffmpeg's HLS and segment muxers use none of them. URIs are resolved against the playlist's
URL but not checked here: :mod:`streamsep.sources.hls.fetch` refuses any that is not
``http``/``https`` when it is about to be fetched.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urljoin, urlsplit

from streamsep.errors import CaptureError

__all__ = [
    "HlsError",
    "Segment",
    "Playlist",
    "parse_playlist",
    "parse_program_date_time",
]

_DATE_TIME: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
    r"(Z|z|[+-]\d{2}(?::?\d{2})?)?"
)

_SIMPLE_NAME: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_NEVER: Final = re.compile(r"(?!)")


class HlsError(CaptureError):
    """A playlist or segment is unusable (malformed, unsupported, undecodable)."""


@dataclass(frozen=True)
class Segment:
    """One media segment of a playlist."""

    sequence: int
    """Media sequence number (``EXT-X-MEDIA-SEQUENCE`` + position)."""
    uri: str
    """Absolute URL."""
    duration_seconds: float
    """``EXTINF`` duration, seconds."""
    discontinuity: bool = False
    """An ``EXT-X-DISCONTINUITY`` precedes it."""
    program_date_time_ns: int | None = None
    """UTC of its first sample, ns (``EXT-X-PROGRAM-DATE-TIME``, carried forward); None if
    unknown."""

    @property
    def name(self) -> str:
        """The last path component of the URI (for messages)."""
        return urlsplit(self.uri).path.rsplit("/", 1)[-1] or self.uri


@dataclass(frozen=True)
class Playlist:
    """A parsed playlist: a media playlist (``segments``) or a master one (``variants``)."""

    url: str
    """Where it was fetched from (relative URIs are resolved against it)."""
    target_duration_seconds: float = 0.0
    """``EXT-X-TARGETDURATION``, seconds (0 in a master playlist)."""
    media_sequence: int = 0
    """Sequence number of the first segment."""
    segments: tuple[Segment, ...] = ()
    """In playlist order (increasing sequence)."""
    endlist: bool = False
    """``EXT-X-ENDLIST``: no segment will be added."""
    variants: tuple[str, ...] = field(default=())
    """Absolute URLs of the variant streams of a master playlist, in order."""

    @property
    def last_sequence(self) -> int:
        """Sequence number of the last segment (``media_sequence - 1`` when empty)."""
        return self.media_sequence + len(self.segments) - 1

    @property
    def mean_duration_seconds(self) -> float:
        """Mean ``EXTINF`` of the listed segments (the target duration when there are none)."""
        if not self.segments:
            return self.target_duration_seconds
        return sum(s.duration_seconds for s in self.segments) / len(self.segments)


def parse_program_date_time(text: str) -> int:
    """UTC nanoseconds of an ISO 8601 date-time as HLS writes it.

    Accepts ``2024-05-01T12:00:00.123Z``, ``...+00:00`` and ffmpeg's ``...-0700``; a missing
    offset is read as UTC.

    Raises
    ------
    HlsError
        If ``text`` is not such a date-time.
    """
    m = _DATE_TIME.fullmatch(text.strip())
    if m is None:
        raise HlsError(f"bad EXT-X-PROGRAM-DATE-TIME: {text.strip()!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, offset = m.group(7), m.group(8)
    try:
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError) as e:
        raise HlsError(f"bad EXT-X-PROGRAM-DATE-TIME: {text.strip()!r}") from e
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise HlsError(f"bad EXT-X-PROGRAM-DATE-TIME: {text.strip()!r}")
    ns = seconds * 1_000_000_000 + (int(fraction.ljust(9, "0")) if fraction else 0)
    if offset and offset not in ("Z", "z"):
        digits = offset[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
        ns -= (1 if offset[0] == "+" else -1) * minutes * 60_000_000_000
    return ns


def _number(line_no: int, tag: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise HlsError(f"line {line_no}: bad {tag} value {value!r}") from None
    if not number >= 0 or number == float("inf"):
        raise HlsError(f"line {line_no}: {tag} must be a finite number >= 0, got {value!r}")
    return number


def parse_playlist(text: str | bytes, url: str) -> Playlist:
    """Parse an M3U8 playlist fetched from ``url``.

    Raises
    ------
    HlsError
        If it is not an M3U8 playlist, a tag or URI is malformed, a segment has no ``EXTINF``,
        the target duration is missing, or it uses encryption, byte ranges or ``EXT-X-MAP``.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise HlsError("playlist is not UTF-8 text") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines or lines[0][1].lstrip("\ufeff") != "#EXTM3U":
        first = lines[0][1][:40] if lines else ""
        raise HlsError(f"not an m3u8 playlist: expected '#EXTM3U', got {first!r}")
    # Plain file names (``live042.ts``) resolve by concatenation: urljoin on every line of a
    # week-long Orcasound playlist (60 000 segments) would cost most of the parse.
    split = urlsplit(url)
    base = url.rsplit("/", 1)[0] + "/" if not (split.query or split.fragment) else ""
    simple = _SIMPLE_NAME if base and split.path else _NEVER
    target: float | None = None
    media_sequence = 0
    endlist = False
    raw: list[tuple[str, float, bool, int | None]] = []
    variants: list[str] = []
    duration: float | None = None
    discontinuity = False
    date_time: int | None = None
    variant_next = False
    for line_no, line in lines[1:]:
        if not line.startswith("#"):
            try:
                uri = base + line if simple.fullmatch(line) else urljoin(url, line)
            except ValueError:  # e.g. "http://[::1": urllib's "Invalid IPv6 URL"
                raise HlsError(f"line {line_no}: bad URI {line[:80]!r}") from None
            if variant_next:
                variants.append(uri)
                variant_next = False
            elif duration is None:
                raise HlsError(f"line {line_no}: segment {line!r} has no EXTINF")
            else:
                raw.append((uri, duration, discontinuity, date_time))
                duration, discontinuity, date_time = None, False, None
            continue
        tag, _, value = line.partition(":")
        if tag == "#EXTINF":
            duration = _number(line_no, tag, value.split(",", 1)[0])
        elif tag == "#EXT-X-TARGETDURATION":
            target = _number(line_no, tag, value)
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            media_sequence = int(_number(line_no, tag, value))
        elif tag == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif tag == "#EXT-X-PROGRAM-DATE-TIME":
            try:
                date_time = parse_program_date_time(value)
            except HlsError as e:
                raise HlsError(f"line {line_no}: {e}") from None
        elif tag == "#EXT-X-ENDLIST":
            endlist = True
        elif tag == "#EXT-X-STREAM-INF":
            variant_next = True
        elif tag == "#EXT-X-KEY" and "METHOD=NONE" not in value.upper():
            raise HlsError(f"line {line_no}: encrypted segments are not supported")
        elif tag in ("#EXT-X-BYTERANGE", "#EXT-X-MAP"):
            raise HlsError(f"line {line_no}: {tag} is not supported")
    if duration is not None:
        raise HlsError("playlist ends with an EXTINF and no segment URI (truncated?)")
    if variants and not raw:
        return Playlist(url, variants=tuple(variants))
    if target is None:
        raise HlsError("media playlist has no EXT-X-TARGETDURATION")
    segments: list[Segment] = []
    carried: int | None = None
    for i, (uri, seconds, disc, stamp) in enumerate(raw):
        if stamp is None and not disc:
            stamp = carried
        segments.append(Segment(media_sequence + i, uri, seconds, disc, stamp))
        carried = None if stamp is None else stamp + round(seconds * 1e9)
    return Playlist(url, target, media_sequence, tuple(segments), endlist, tuple(variants))
