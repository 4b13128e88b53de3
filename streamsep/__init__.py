"""streamsep: real-time streaming source separation for live hydrophones."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import AudioFileError, CaptureError, ConfigError, ModelError, StreamsepError
from .offline import Separator, separate
from .params import ModelParams, load_params
from .settings import ModelSettings, StreamSettings
from .streamer import BlockSeparator

_LAZY = {
    "Daemon": ("streamsep.daemon", "Daemon"),
    "DaemonSettings": ("streamsep.config", "DaemonSettings"),
    "load_config": ("streamsep.config", "load_config"),
    "Pipeline": ("streamsep.pipeline", "Pipeline"),
    "PublishSettings": ("streamsep.publish", "PublishSettings"),
    "Publisher": ("streamsep.publish", "Publisher"),
    "Subscriber": ("streamsep.subscribe", "Subscriber"),
}


def __getattr__(name: str) -> object:
    """Import the daemon and ZeroMQ classes on first use (keeps ``import streamsep`` light)."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'streamsep' has no attribute {name!r}")


try:
    __version__ = version("streamsep")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

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
