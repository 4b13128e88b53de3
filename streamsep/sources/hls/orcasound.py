"""Orcasound live hydrophones: node name -> ``latest.txt`` -> HLS playlist URL.

An Orcasound node (``rpi_orcasound_lab``, ``rpi_bush_point``, ``rpi_port_townsend``,
``rpi_sunset_bay``, ...) publishes to ``<base_url>/<node>/``: ``latest.txt`` holds the Unix time
at which its current stream started, and that stream is the HLS playlist
``<node>/hls/<timestamp>/live.m3u8`` with segments ``live%03d.ts`` (AAC in MPEG-TS, 48 kHz,
about 10 s each, written by ffmpeg). When a node restarts it starts a new folder and rewrites
``latest.txt`` (after its first segment is uploaded). :class:`OrcasoundResolver` is the
:class:`~streamsep.sources.hls.settings.Resolver` that reads it;
:class:`~streamsep.sources.hls.follower.HlsSource` asks it again
whenever the playlist stalls, ends or fails, and treats a new folder as a stream restart.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from streamsep.engine.ringbuffer import RingLike
from streamsep.sources.hls.fetch import SCHEMES, Fetch, HttpFetcher
from streamsep.sources.hls.follower import HlsSource
from streamsep.sources.hls.playlist import HlsError
from streamsep.sources.hls.settings import HlsSettings
from streamsep.validate import check_str, fail

__all__ = [
    "DEFAULT_BASE_URL",
    "NODES",
    "OrcasoundSettings",
    "OrcasoundResolver",
    "orcasound_source",
]

DEFAULT_BASE_URL: Final = "https://s3-us-west-2.amazonaws.com/audio-orcasound-net"
"""Orcasound's public S3 bucket of live streams."""
NODES: Final = ("rpi_orcasound_lab", "rpi_bush_point", "rpi_port_townsend", "rpi_sunset_bay")
"""Some node names (not a closed list: any ``[A-Za-z0-9_.-]`` name is accepted)."""

_NODE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_TIMESTAMP: Final = re.compile(r"\d{1,12}")
_LATEST_BYTES: Final = 4096


@dataclass(frozen=True)
class OrcasoundSettings:
    """Which node (the ``[source]`` keys of ``kind = "orcasound"`` besides the HLS ones)."""

    node: str = "rpi_orcasound_lab"
    """Node name, e.g. ``rpi_bush_point``."""
    base_url: str = DEFAULT_BASE_URL
    """URL of the folder holding the nodes (``http`` or ``https``)."""

    def __post_init__(self) -> None:
        check_str("source.node", self.node)
        if not _NODE.fullmatch(self.node):
            raise fail("source.node", "a node name like rpi_orcasound_lab", self.node)
        check_str("source.base_url", self.base_url)
        if self.base_url.split(":", 1)[0].lower() not in SCHEMES:
            raise fail("source.base_url", "an http or https URL", self.base_url)


class OrcasoundResolver:
    """Resolves a node's current playlist from its ``latest.txt``.

    Parameters
    ----------
    node : str
        Node name.
    base_url : str
        Folder of the nodes.
    fetch : callable, optional
        ``fetch(url) -> bytes`` raising :class:`~streamsep.sources.hls.fetch.FetchError`;
        default: an :class:`~streamsep.sources.hls.fetch.HttpFetcher` with
        ``timeout_seconds`` and ``cancel``.
    timeout_seconds : float
        Total deadline of a request of the default fetch, seconds.
    cancel : threading.Event, optional
        Ends a request of the default fetch at once when set: pass the
        :class:`~streamsep.sources.hls.follower.HlsSource`'s ``cancel``.
    """

    def __init__(
        self,
        node: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        fetch: Fetch | None = None,
        timeout_seconds: float = 10.0,
        cancel: threading.Event | None = None,
    ) -> None:
        settings = OrcasoundSettings(node, base_url)  # validates
        self.node = settings.node
        self.base_url = settings.base_url.rstrip("/")
        self._fetch: Fetch = fetch or HttpFetcher(timeout_seconds, _LATEST_BYTES, cancel=cancel)
        self.timestamp: int | None = None
        """The stream folder found by the last :meth:`resolve` (Unix seconds)."""

    @property
    def latest_url(self) -> str:
        """URL of the node's ``latest.txt``."""
        return f"{self.base_url}/{self.node}/latest.txt"

    def playlist_url(self, timestamp: int) -> str:
        """URL of the playlist of the stream started at ``timestamp``."""
        return f"{self.base_url}/{self.node}/hls/{timestamp}/live.m3u8"

    def resolve(self) -> str:
        """Read ``latest.txt`` and return the current playlist URL.

        Raises
        ------
        FetchError
            If ``latest.txt`` cannot be fetched.
        HlsError
            If it does not hold a Unix timestamp.
        """
        text = self._fetch(self.latest_url).decode("ascii", errors="replace").strip()
        if not _TIMESTAMP.fullmatch(text):
            raise HlsError(f"{self.latest_url}: expected a Unix timestamp, got {text[:40]!r}")
        timestamp = int(text)
        self.timestamp = timestamp
        return self.playlist_url(timestamp)

    def __str__(self) -> str:
        return f"orcasound node {self.node} ({self.latest_url})"


def orcasound_source(
    settings: OrcasoundSettings,
    hls: HlsSettings | None = None,
    ring: RingLike | None = None,
    *,
    fetch: Fetch | None = None,
    on_anchor: Callable[[int, int], None] | None = None,
) -> HlsSource:
    """An :class:`~streamsep.sources.hls.follower.HlsSource` following node ``settings.node``;
    ``fetch`` (also used for ``latest.txt``) and ``on_anchor`` are passed on to it. Its
    :meth:`~streamsep.sources.hls.follower.HlsSource.stop` also cancels a ``latest.txt``
    request in flight."""
    hls = hls or HlsSettings()
    cancel = threading.Event()
    resolver = OrcasoundResolver(
        settings.node,
        settings.base_url,
        fetch=fetch,
        timeout_seconds=hls.timeout_seconds,
        cancel=cancel,
    )
    return HlsSource(resolver, ring, hls, fetch=fetch, on_anchor=on_anchor, cancel=cancel)
