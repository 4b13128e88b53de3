"""The installed package's version (``0.0.0`` when running from a source tree without metadata)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("streamsep")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
