"""streamsep: real-time streaming source separation for live hydrophones."""

from __future__ import annotations

from streamsep.engine.offline import Separator, separate
from streamsep.engine.params import ModelParams, load_params
from streamsep.engine.settings import ModelSettings, StreamSettings
from streamsep.engine.streamer import BlockSeparator
from streamsep.errors import AudioFileError, CaptureError, ConfigError, ModelError, StreamsepError
from streamsep.version import __version__

_LAZY = {
    "Daemon": ("streamsep.daemon.supervisor", "Daemon"),
    "DaemonSettings": ("streamsep.daemon.config", "DaemonSettings"),
    "load_config": ("streamsep.daemon.config", "load_config"),
    "Pipeline": ("streamsep.engine.pipeline", "Pipeline"),
    "PublishSettings": ("streamsep.net.publish_settings", "PublishSettings"),
    "Publisher": ("streamsep.net.publish", "Publisher"),
    "Subscriber": ("streamsep.net.subscribe", "Subscriber"),
}


def __getattr__(name: str) -> object:
    """Import the daemon and ZeroMQ classes on first use (keeps ``import streamsep`` light)."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'streamsep' has no attribute {name!r}")


__all__ = [
    "__version__",
    "Separator",
    "separate",
    "BlockSeparator",
    "ModelParams",
    "load_params",
    "StreamSettings",
    "ModelSettings",
    "StreamsepError",
    "ConfigError",
    "ModelError",
    "CaptureError",
    "AudioFileError",
    *_LAZY,
]
