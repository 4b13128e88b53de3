"""Exceptions raised by streamsep.

Every error carries a short lowercase message naming what is wrong, with the expected and the
actual value where there is one.
"""

from __future__ import annotations

__all__ = [
    "StreamsepError",
    "ConfigError",
    "ModelError",
    "CaptureError",
    "AudioFileError",
]


class StreamsepError(Exception):
    """Base class of every error streamsep raises on purpose."""


class ConfigError(StreamsepError):
    """A configuration value or a params JSON key is missing or invalid."""


class ModelError(StreamsepError):
    """A model file cannot be loaded or disagrees with its params."""


class CaptureError(StreamsepError):
    """An audio input device or stream failed."""


class AudioFileError(StreamsepError):
    """An audio file cannot be read or written."""
