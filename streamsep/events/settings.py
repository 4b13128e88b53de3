"""The ``[events]`` settings: detector, event log, clips, notifications."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from streamsep.events.detector import DetectorSettings
from streamsep.validate import check_bool, check_int, check_number, check_str, fail

__all__ = ["EventsSettings", "WebhookSettings"]


@dataclass(frozen=True)
class WebhookSettings:
    """HTTP notifications (the ``webhook_*`` keys of ``[events]``)."""

    url: str = ""
    """``http://`` or ``https://`` URL receiving a JSON POST per notified event; empty: off."""
    min_interval_seconds: float = 900.0
    """At most one notification per this many seconds (per node); events in between are
    counted in the next notification's ``suppressed`` and stay in the log (>= 0)."""
    timeout_seconds: float = 10.0
    """Deadline of one POST, seconds (> 0)."""
    retries: int = 5
    """Attempts after a failed POST (>= 0), with back-off."""
    backoff_seconds: float = 2.0
    """First wait before a retry, doubled each time up to 300 s (> 0)."""
    queue_events: int = 100
    """Notifications waiting for the sender thread before the oldest is dropped (>= 1)."""

    def __post_init__(self) -> None:
        check_str("events.webhook_url", self.url, empty=True)
        if self.url:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise fail("events.webhook_url", "an http:// or https:// URL", self.url)
        check_number("events.webhook_min_interval_seconds", self.min_interval_seconds, minimum=0)
        check_number("events.webhook_timeout_seconds", self.timeout_seconds, positive=True)
        check_int("events.webhook_retries", self.retries, minimum=0)
        check_number("events.webhook_backoff_seconds", self.backoff_seconds, positive=True)
        check_int("events.webhook_queue_events", self.queue_events, minimum=1)


@dataclass(frozen=True)
class EventsSettings:
    """The ``[events]`` table."""

    enabled: bool = False
    """Run the detector in the daemon."""
    directory: str = "events"
    """Folder of ``events.jsonl`` and the clips (relative: to the config file's folder)."""
    orca_stem: str = "orca_vocals"
    """Stem scored as the orca signal."""
    noise_stem: str = "noise"
    """Stem scored as the noise reference; empty: background term only."""
    node: str = ""
    """Name of this hydrophone in events and notifications (e.g. ``orcasound_lab``)."""
    clips: bool = True
    """Keep FLAC clips of the mix and the orca stem of each event."""
    pre_roll_seconds: float = 5.0
    """Clip audio before the event's start, seconds (>= 0)."""
    post_roll_seconds: float = 5.0
    """Clip audio after the event's end, seconds (>= 0)."""
    max_clip_seconds: float = 120.0
    """Longest clip; a longer event's clip is cut at this length, seconds (> 0)."""
    queue_events: int = 64
    """Events (with their clips) waiting for the writer thread before new ones are written to
    the log without clips (>= 1)."""
    exec_command: tuple[str, ...] = ()
    """Optional command run per event (argv list; the event JSON on its stdin); empty: off."""
    exec_timeout_seconds: float = 30.0
    """The exec hook is killed after this long, seconds (> 0)."""
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    detector: DetectorSettings = field(default_factory=DetectorSettings)

    def __post_init__(self) -> None:
        check_bool("events.enabled", self.enabled)
        check_str("events.directory", self.directory)
        check_str("events.orca_stem", self.orca_stem)
        check_str("events.noise_stem", self.noise_stem, empty=True)
        check_str("events.node", self.node, empty=True)
        if "/" in self.node or "\\" in self.node:
            raise fail("events.node", "a name without path separators", self.node)
        check_bool("events.clips", self.clips)
        check_number("events.pre_roll_seconds", self.pre_roll_seconds, minimum=0)
        check_number("events.post_roll_seconds", self.post_roll_seconds, minimum=0)
        check_number("events.max_clip_seconds", self.max_clip_seconds, positive=True)
        check_int("events.queue_events", self.queue_events, minimum=1)
        if not isinstance(self.exec_command, list | tuple):
            raise fail("events.exec_command", "a list of strings", self.exec_command)
        object.__setattr__(self, "exec_command", tuple(self.exec_command))
        for arg in self.exec_command:
            check_str("events.exec_command", arg)
        check_number("events.exec_timeout_seconds", self.exec_timeout_seconds, positive=True)
