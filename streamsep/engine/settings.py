"""Configuration dataclasses of the streaming engine (frozen; validated on construction)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from streamsep.errors import ConfigError

__all__ = ["StreamSettings", "ModelSettings", "WINDOWS"]

WINDOWS: Final = ("hann", "boxcar")
SEGMENTATIONS: Final = ("overlap", "spleeter")


@dataclass(frozen=True)
class StreamSettings:
    """How overlapping model blocks are scheduled and combined.

    ``None`` means "the model's default": its params' ``stream`` section where it has one (the
    bundled orca model: hop 64, lookahead 64), else derived from its ``T``:
    ``lookahead_frames = T // 2`` and ``hop_frames = min(T // 4, lookahead_frames + 1)``.
    """

    hop_frames: int | None = None
    """Frames between the starts of consecutive model blocks, ``1 <= hop_frames <= T``."""
    lookahead_frames: int | None = None
    """Future frames a frame's mask may depend on, ``hop_frames - 1 <= lookahead <= T - 1``.
    The algorithmic latency is ``frame_length - 1 + lookahead_frames * frame_step`` samples."""
    window: str = "hann"
    """Weighting of each block's masks over its contributing frames: ``hann`` (smooth, no zero
    ends) or ``boxcar`` (flat)."""
    segmentation: str = "overlap"
    """``overlap`` (the settings above) or ``spleeter``: non-overlapping blocks of ``T`` frames
    with flat weights, exactly as Spleeter segments (for parity checks; ignores the others)."""

    def __post_init__(self) -> None:
        for key in ("hop_frames", "lookahead_frames"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"stream.{key} must be an integer, got {value!r}")
        if self.hop_frames is not None and self.hop_frames < 1:
            raise ConfigError(f"stream.hop_frames must be >= 1, got {self.hop_frames}")
        if self.lookahead_frames is not None and self.lookahead_frames < 0:
            raise ConfigError(f"stream.lookahead_frames must be >= 0, got {self.lookahead_frames}")
        if self.window not in WINDOWS:
            raise ConfigError(f"stream.window must be one of {list(WINDOWS)}, got {self.window!r}")
        if self.segmentation not in SEGMENTATIONS:
            raise ConfigError(
                f"stream.segmentation must be one of {list(SEGMENTATIONS)}, "
                f"got {self.segmentation!r}"
            )

    @property
    def effective_window(self) -> str:
        """The weighting actually used (``boxcar`` under Spleeter segmentation)."""
        return "boxcar" if self.segmentation == "spleeter" else self.window

    @classmethod
    def spleeter(cls) -> StreamSettings:
        """Spleeter's own segmentation: non-overlapping blocks of ``T`` frames, flat weights."""
        return cls(segmentation="spleeter")

    def resolve(self, T: int, defaults: Mapping[str, int] | None = None) -> tuple[int, int]:
        """``(hop_frames, lookahead_frames)`` for a model of ``T`` frames, validated.

        Unset fields come from ``defaults`` (the params' ``stream`` section) where it has them
        (its ``hop_frames`` only while it fits the lookahead), else from ``T``: lookahead
        ``T // 2``, hop ``min(T // 4, lookahead + 1)``.
        """
        if self.segmentation == "spleeter":
            return T, T - 1
        defaults = defaults or {}
        lookahead = self.lookahead_frames
        if lookahead is None:
            lookahead = defaults.get("lookahead_frames", T // 2)
        hop = self.hop_frames
        if hop is None:
            default_hop = defaults.get("hop_frames")
            if default_hop is not None and 1 <= default_hop <= lookahead + 1:
                hop = default_hop
            else:
                hop = max(1, min(T // 4, lookahead + 1))
        if hop > T:
            raise ConfigError(f"stream.hop_frames must be <= T = {T}, got {hop}")
        if lookahead > T - 1:
            raise ConfigError(
                f"stream.lookahead_frames must be <= T - 1 = {T - 1}, got {lookahead}"
            )
        if hop > lookahead + 1:
            raise ConfigError(
                f"stream.hop_frames must be <= lookahead_frames + 1 = {lookahead + 1}, got {hop}"
            )
        return hop, lookahead


@dataclass(frozen=True)
class ModelSettings:
    """Which model runs and how."""

    params: str | None = None
    """Path of the Spleeter-style params JSON; ``None`` for the bundled default."""
    model: str | None = None
    """Path of the ``.tflite`` file, a Spleeter checkpoint directory, or ``passthrough``."""
    num_threads: int = 2
    """Interpreter threads (LiteRT ``num_threads``), >= 1."""

    def __post_init__(self) -> None:
        if isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int):
            raise ConfigError(f"model.num_threads must be an integer, got {self.num_threads!r}")
        if self.num_threads < 1:
            raise ConfigError(f"model.num_threads must be >= 1, got {self.num_threads}")
