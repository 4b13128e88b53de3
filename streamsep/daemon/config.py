"""Daemon configuration: a TOML file validated into frozen dataclasses.

Sections and the settings class each one becomes::

    [source]   SourceSettings: kind = "device" (CaptureSettings keys), "file" (FileSettings keys),
               "hls" (HlsSettings keys) or "orcasound" (OrcasoundSettings + HlsSettings keys)
    [model]    ModelSettings      params, model, num_threads
    [stream]   StreamSettings     hop_frames, lookahead_frames, window, segmentation
    [publish]  PublishSettings    (its fields) + rate = "capture" | "model"
    [control]  ControlSettings    enabled + (its fields)
    [archive]  ArchiveSettings
    [metrics]  MetricsSettings
    [logging]  LoggingSettings
    [web]      WebSettings        enabled + (its fields)        (issue 20, docs/web.md)
    [hls_out]  HlsOutSettings     enabled + (its fields)
    [events]   EventsSettings     (its fields; webhook_* keys: WebhookSettings; detector keys:
               DetectorSettings)

Every section and key is optional; a missing one keeps its default. Unknown sections and keys,
wrong types and bad values are errors of one line that name the file and the key, e.g.
``config.toml: source.sample_rate must be a positive integer, got "fast"``. Numbers must be
finite (TOML allows ``nan`` and ``inf``) and within sane bounds (``model.num_threads`` at most
256, ``source.sample_rate`` at most 768000, ...), so that ``check`` refuses what ``run`` would
fail on later (:mod:`streamsep.daemon.limits`).

Relative paths (model files, the input file, key files, the archive folder) are relative to the
folder of the config file, whatever the working directory; ``~`` is expanded.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from streamsep.daemon.archive import ArchiveSettings
from streamsep.daemon.limits import check_endpoints, check_numbers
from streamsep.daemon.metrics import MetricsSettings
from streamsep.daemon.tables import build, no_unknown
from streamsep.engine.model import PASSTHROUGH
from streamsep.engine.params import load_params
from streamsep.engine.settings import ModelSettings, StreamSettings
from streamsep.errors import ConfigError
from streamsep.events.detector import DetectorSettings  # [events]
from streamsep.events.settings import EventsSettings, WebhookSettings  # [events]
from streamsep.net.control import ControlSettings
from streamsep.net.publish import PublishSettings
from streamsep.sources.device.capture import CaptureSettings
from streamsep.sources.hls.orcasound import OrcasoundSettings
from streamsep.sources.hls.settings import HlsSettings
from streamsep.validate import check_bool, check_choice, check_int, check_number, check_str, fail
from streamsep.web.settings import HlsOutSettings, WebSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "SOURCE_KINDS",
    "PUBLISH_RATES",
    "LOG_LEVELS",
    "FileSettings",
    "SourceSettings",
    "LoggingSettings",
    "DaemonSettings",
    "load_config",
    "parse_config",
]

SOURCE_KINDS: Final = ("device", "file", "hls", "orcasound")
PUBLISH_RATES: Final = ("capture", "model")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class FileSettings:
    """An audio file played as a live source (the ``[source]`` table with ``kind = "file"``)."""

    path: str = ""
    """WAV/FLAC file (relative paths: relative to the config file's folder)."""
    realtime: bool = True
    """Pace the file at its sample rate like a live device (else as fast as possible)."""
    loops: int = 1
    """Times to play it, >= 1; 0 plays it forever."""
    wait_subscribers: int = 0
    """Before reading, wait for this many subscriptions (one per topic prefix per subscriber,
    as ``streamsep stream --wait-subscribers``): a replay that must reach its listeners from
    sample 0. 0: start at once."""
    wait_seconds: float = 60.0
    """Give up (a start-up error) when the subscriptions have not come within this, seconds."""

    def __post_init__(self) -> None:
        check_str("source.path", self.path)
        check_bool("source.realtime", self.realtime)
        check_int("source.loops", self.loops, minimum=0)
        check_int("source.wait_subscribers", self.wait_subscribers, minimum=0)
        check_number("source.wait_seconds", self.wait_seconds, positive=True)


@dataclass(frozen=True)
class SourceSettings:
    """Where the audio comes from."""

    kind: str = "device"
    """``device`` (a sound card through PortAudio), ``file``, ``hls`` (an HLS playlist URL) or
    ``orcasound`` (an Orcasound node's current HLS stream)."""
    device: CaptureSettings = field(default_factory=CaptureSettings)
    """The device settings (used with ``kind = "device"``)."""
    file: FileSettings | None = None
    """The file settings (required with ``kind = "file"``)."""
    hls: HlsSettings | None = None
    """How the stream is followed (``kind = "hls"``: required, with ``url``; ``kind =
    "orcasound"``: default settings when None)."""
    orcasound: OrcasoundSettings | None = None
    """Which node (``kind = "orcasound"``; the default node when None)."""

    def __post_init__(self) -> None:
        check_choice("source.kind", self.kind, SOURCE_KINDS)
        if self.kind == "file" and self.file is None:
            raise ConfigError('source.path is required with kind = "file"')
        if self.kind == "hls" and (self.hls is None or not self.hls.url):
            raise ConfigError('source.url is required with kind = "hls"')
        if self.kind == "orcasound":  # frozen: fill the defaults in place, once
            if self.hls is None:
                object.__setattr__(self, "hls", HlsSettings())
            if self.orcasound is None:
                object.__setattr__(self, "orcasound", OrcasoundSettings())


@dataclass(frozen=True)
class LoggingSettings:
    """The ``[logging]`` table."""

    level: str = "info"
    """``debug``, ``info``, ``warning`` or ``error``."""
    timestamps: bool | None = None
    """Prefix log lines with the time; unset: yes, except under systemd (the journal stamps
    them)."""

    def __post_init__(self) -> None:
        check_choice("logging.level", self.level, LOG_LEVELS)
        if self.timestamps is not None:
            check_bool("logging.timestamps", self.timestamps)


@dataclass(frozen=True)
class DaemonSettings:
    """Everything ``streamsep run`` needs, composed from the component settings."""

    source: SourceSettings = field(default_factory=SourceSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    stream: StreamSettings = field(default_factory=StreamSettings)
    publish: PublishSettings = field(default_factory=PublishSettings)
    publish_rate: str = "capture"
    """Rate of the published stems: ``capture`` (the device's rate) or ``model``."""
    control: ControlSettings | None = None
    """The control endpoint, or None when disabled."""
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    web: WebSettings | None = None
    """The web monitor (``[web] enabled = true``), or None."""
    hls_out: HlsOutSettings | None = None
    """The live HLS output (``[hls_out] enabled = true``), or None."""
    events: EventsSettings = field(default_factory=EventsSettings)
    """Orca activity events (``[events]``)."""
    config_path: str | None = None
    """The file these settings came from (for messages)."""

    def __post_init__(self) -> None:
        check_choice("publish.rate", self.publish_rate, PUBLISH_RATES)


# -- loading --------------------------------------------------------------------------------

_DEVICE_KEYS: Final = tuple(f.name for f in fields(CaptureSettings))
_FILE_KEYS: Final = tuple(f.name for f in fields(FileSettings))
_HLS_KEYS: Final = tuple(f.name for f in fields(HlsSettings))
_ORCASOUND_KEYS: Final = tuple(f.name for f in fields(OrcasoundSettings))
# The [source] keys of each kind (sample_rate and channels are shared by device and HLS kinds
# and mean the same: the rate and channel count written into the pipeline).
_KIND_KEYS: Final = {
    "device": _DEVICE_KEYS,
    "file": _FILE_KEYS,
    "hls": _HLS_KEYS,
    "orcasound": tuple(k for k in _HLS_KEYS if k != "url") + _ORCASOUND_KEYS,
}
_SOURCE_KEYS: Final = tuple(dict.fromkeys(k for keys in _KIND_KEYS.values() for k in keys))
_SECTIONS: Final = (
    "source",
    "model",
    "stream",
    "publish",
    "control",
    "archive",
    "metrics",
    "logging",
    "web",
    "hls_out",
    "events",
)


def load_config(path: str | Path | None) -> DaemonSettings:
    """Read and validate a TOML config; None gives the defaults.

    Raises
    ------
    ConfigError
        One line naming the file and the key at fault.
    """
    if path is None:
        return DaemonSettings()
    name = str(path)
    p = Path(path).expanduser()
    try:
        text = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{name}: config file not found") from None
    except OSError as e:
        raise ConfigError(f"{name}: cannot read config file: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{name}: invalid TOML: {e}") from None
    return parse_config(data, name=name, base_dir=p.resolve().parent)


def parse_config(data: dict[str, Any], *, name: str, base_dir: Path) -> DaemonSettings:
    """Validate parsed TOML ``data`` (see :func:`load_config`); ``name`` prefixes messages and
    relative paths are resolved against ``base_dir``."""
    try:
        return _Parser(base_dir).parse(data, name)
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None


class _Parser:
    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir

    def path(self, key: str, value: Any, *, must_exist: bool = True) -> str:
        check_str(key, value)
        p = Path(value).expanduser()
        if not p.is_absolute():
            p = self.base_dir / p
        p = Path(os.path.normpath(p))
        if must_exist and not p.exists():
            raise ConfigError(f"{key}: no such file or folder: {p}")
        return str(p)

    def parse(self, data: dict[str, Any], name: str) -> DaemonSettings:
        no_unknown("", data, _SECTIONS)
        check_numbers(data)
        tables = {}
        for section in _SECTIONS:
            table = data.get(section, {})
            if not isinstance(table, dict):
                raise fail(section, "a table", table)
            tables[section] = table
        publish = dict(tables["publish"])
        rate = publish.pop("rate", "capture")
        control = dict(tables["control"])
        check_endpoints("publish.endpoints", publish.get("endpoints"))
        check_endpoints("control.endpoint", control.get("endpoint"))
        control_enabled = check_bool("control.enabled", control.pop("enabled", False))
        return DaemonSettings(
            source=self.source(tables["source"]),
            model=self.model(tables["model"]),
            stream=build(StreamSettings, "stream", tables["stream"]),
            publish=build(PublishSettings, "publish", self.keys_paths("publish", publish)),
            publish_rate=rate,
            control=(
                build(ControlSettings, "control", self.keys_paths("control", control))
                if control_enabled
                else None
            ),
            archive=self.archive(tables["archive"]),
            metrics=build(MetricsSettings, "metrics", tables["metrics"], checked=True),
            logging=build(LoggingSettings, "logging", tables["logging"], checked=True),
            web=self.web(tables["web"]),
            hls_out=self.hls_out(tables["hls_out"]),
            events=self.events(tables["events"]),
            config_path=name,
        )

    def source(self, table: dict[str, Any]) -> SourceSettings:
        table = dict(table)
        kind = check_choice("source.kind", table.pop("kind", "device"), SOURCE_KINDS)
        no_unknown("source", table, ("kind", *_SOURCE_KEYS))
        for key in table:
            if key not in _KIND_KEYS[kind]:
                raise ConfigError(f'source.{key} does not apply to kind = "{kind}"')
        if kind == "device":
            device = build(CaptureSettings, "source", table, checked=True)
            return SourceSettings(kind, device=device)
        if kind == "hls":
            if "url" not in table:
                raise ConfigError('source.url is required with kind = "hls"')
            return SourceSettings(kind, hls=build(HlsSettings, "source", table, checked=True))
        if kind == "orcasound":
            node = {k: table.pop(k) for k in _ORCASOUND_KEYS if k in table}
            return SourceSettings(
                kind,
                hls=build(HlsSettings, "source", table, checked=True),
                orcasound=build(OrcasoundSettings, "source", node, checked=True),
            )
        if "path" not in table:
            raise ConfigError('source.path is required with kind = "file"')
        table["path"] = self.path("source.path", table["path"])
        return SourceSettings(kind, file=build(FileSettings, "source", table, checked=True))

    def model(self, table: dict[str, Any]) -> ModelSettings:
        table = dict(table)
        no_unknown("model", table, tuple(f.name for f in fields(ModelSettings)))
        if "params" in table:
            table["params"] = self.path("model.params", table["params"])
            try:
                load_params(table["params"])
            except ConfigError as e:
                raise ConfigError(f"model.params: {e}") from None
        if "model" in table and table["model"] != PASSTHROUGH:
            table["model"] = self.path("model.model", table["model"])
        return build(ModelSettings, "model", table)

    def keys_paths(self, section: str, table: dict[str, Any]) -> dict[str, Any]:
        table = dict(table)
        for key in ("server_secret_key_file", "authorized_keys_dir"):
            if key in table:
                table[key] = self.path(f"{section}.{key}", table[key])
        return table

    def archive(self, table: dict[str, Any]) -> ArchiveSettings:
        table = dict(table)
        if "directory" in table:
            table["directory"] = self.path(
                "archive.directory", table["directory"], must_exist=False
            )
        else:
            table["directory"] = str(self.base_dir / ArchiveSettings.directory)
        return build(ArchiveSettings, "archive", table, checked=True)

    # -- issue 20: [web] and [hls_out] --------------------------------------------------------

    def web(self, table: dict[str, Any]) -> WebSettings | None:
        table = dict(table)
        if not check_bool("web.enabled", table.pop("enabled", False)):
            no_unknown("web", table, tuple(f.name for f in fields(WebSettings)))
            return None
        return build(WebSettings, "web", table)  # type: ignore[no-any-return]

    def hls_out(self, table: dict[str, Any]) -> HlsOutSettings | None:
        table = dict(table)
        if not check_bool("hls_out.enabled", table.pop("enabled", False)):
            no_unknown("hls_out", table, tuple(f.name for f in fields(HlsOutSettings)))
            return None
        table["directory"] = self.path(
            "hls_out.directory", table.get("directory", "hls"), must_exist=False
        )
        return build(HlsOutSettings, "hls_out", table)  # type: ignore[no-any-return]

    # -- [events] (orca activity events) ---------------------------------------------------

    def events(self, table: dict[str, Any]) -> EventsSettings:
        """``[events]``: its own keys, ``webhook_<key>`` for WebhookSettings and the detector's
        keys, one flat table."""
        table = dict(table)
        detector_keys = tuple(f.name for f in fields(DetectorSettings))
        webhook_keys = tuple(f"webhook_{f.name}" for f in fields(WebhookSettings))
        own = tuple(f.name for f in fields(EventsSettings) if f.name not in ("webhook", "detector"))
        no_unknown("events", table, own + webhook_keys + detector_keys)
        detector = {k: table.pop(k) for k in detector_keys if k in table}
        webhook = {k[len("webhook_") :]: table.pop(k) for k in webhook_keys if k in table}
        if "directory" in table:
            table["directory"] = self.path("events.directory", table["directory"], must_exist=False)
        else:
            table["directory"] = str(self.base_dir / EventsSettings.directory)
        return build(
            EventsSettings,
            "events",
            {
                **table,
                "webhook": build(WebhookSettings, "events.webhook", webhook, checked=True),
                "detector": build(DetectorSettings, "events", detector, checked=True),
            },
            checked=True,
        )
