"""streamsep: real-time streaming source separation for live hydrophones."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import AudioFileError, CaptureError, ConfigError, ModelError, StreamsepError
from .offline import Separator, separate
from .params import ModelParams, load_params
from .settings import ModelSettings, StreamSettings
from .streamer import BlockSeparator

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
]
