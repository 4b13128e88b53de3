"""Spleeter-compatible model params (the JSON that travels next to every model file).

The keys are Spleeter's own (``sample_rate``, ``frame_length``, ``frame_step``, ``T``, ``F``,
``n_channels``, ``instrument_list``, ``mask_extension``, ``separation_exponent``, ``model``), so
a Spleeter params file such as the seed's ``2stems-finetune.json`` loads unchanged. streamsep adds
one optional key, ``highpass_hz``: the cut-off of the DC-blocking high-pass applied before the
spectral front end (absent or 0 for imported Spleeter models, so that parity holds), and
``stream``: the model's default streaming settings (``{"hop_frames": H, "lookahead_frames":
L}``, either optional), used wherever :class:`~streamsep.engine.settings.StreamSettings` leaves
them unset.
Keys this module does not use (``train_csv``, ``learning_rate``...) are kept in ``extra`` and
written back unchanged.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from streamsep.errors import ConfigError
from streamsep.validate import JsonTextError, decode_json

__all__ = ["ModelParams", "load_params", "MASK_EXTENSIONS", "CONTEXTS", "LIMITS"]

_LOGGER = logging.getLogger(__name__)

MASK_EXTENSIONS: Final = ("zeros", "average")
CONTEXTS: Final = ("none", "floor")
"""``model.params.context`` values (see :attr:`ModelParams.context`)."""

LIMITS: Final = {
    "sample_rate": 1_536_000,
    "frame_length": 1 << 16,
    "frame_step": 1 << 16,
    "T": 1 << 13,
    "F": (1 << 15) + 1,
    "n_channels": 16,
}
"""Largest accepted value of each integer key (far beyond any real model; a typo or a hostile
file must not make the engine allocate terabytes)."""
MAX_STEMS: Final = 16
"""Most stems a model may have."""
MAX_BLOCK_VALUES: Final = 1 << 25
"""Largest ``n_stems * T * F * n_channels`` (the masks of one block: 128 MiB of float32)."""
MAX_SPAN_VALUES: Final = 1 << 25
"""Largest ``n_stems * n_channels * T * frame_step``: the audio of one block span per stem,
which bounds the delay line (the latency) the engine must hold."""
MAX_SEPARATION_EXPONENT: Final = 16.0
"""Largest ``separation_exponent``; beyond it ``out ** p`` overflows float32 for any signal."""
MAX_PARAMS_BYTES: Final = 1 << 20
"""Largest params file read."""
_SPLEETER_DEFAULTED: Final = (
    "sample_rate",
    "frame_length",
    "frame_step",
    "T",
    "F",
    "n_channels",
    "mask_extension",
    "separation_exponent",
)
"""Keys that fall back to Spleeter's defaults when a params file lacks them."""

_INT_KEYS: Final = ("sample_rate", "frame_length", "frame_step", "T", "F", "n_channels")
_KNOWN_KEYS: Final = set(_INT_KEYS) | {
    "instrument_list",
    "mask_extension",
    "separation_exponent",
    "model",
    "mix_name",
    "highpass_hz",
    "stream",
}
STREAM_KEYS: Final = ("hop_frames", "lookahead_frames")
"""Keys of the params' ``stream`` section."""


@dataclass(frozen=True)
class ModelParams:
    """DSP and model description of a separation model (Spleeter params JSON)."""

    instrument_list: tuple[str, ...]
    """Stem names in model output order, e.g. ``("orca_vocals", "noise")``."""
    sample_rate: int = 44100
    """Model sample rate in Hz."""
    frame_length: int = 4096
    """STFT window length in samples (also the FFT size)."""
    frame_step: int = 1024
    """STFT hop in samples."""
    T: int = 512
    """Frames per model block."""
    F: int = 1024
    """Frequency bins seen by the model (the lowest ``F`` of ``frame_length // 2 + 1``)."""
    n_channels: int = 2
    """Audio channels the model takes."""
    mask_extension: str = "zeros"
    """How masks are extended above ``F``: ``zeros`` or ``average``."""
    separation_exponent: float = 2.0
    """Exponent ``p`` of the ratio mask ``out_i^p / sum_j out_j^p``."""
    mix_name: str = "mix"
    """Spleeter's name of the mixture input."""
    highpass_hz: float = 0.0
    """DC-blocking high-pass cut-off in Hz applied before the STFT; 0 disables it."""
    model: dict[str, Any] = field(default_factory=lambda: {"type": "unet.unet", "params": {}})
    """Spleeter's model section: ``type`` and ``params`` (``conv_n_filters``, activations)."""
    stream: dict[str, int] = field(default_factory=dict)
    """Default ``hop_frames`` / ``lookahead_frames`` of this model (see the module docstring)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys streamsep does not use, kept so that the file round-trips."""

    def __post_init__(self) -> None:
        if not self.instrument_list:
            raise ConfigError("params: instrument_list must name at least one stem")
        if len(set(self.instrument_list)) != len(self.instrument_list):
            raise ConfigError(
                f"params: instrument_list has duplicates: {list(self.instrument_list)}"
            )
        for key in _INT_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"params: {key} must be a positive integer, got {value!r}")
            if value > LIMITS[key]:
                raise ConfigError(f"params: {key} must be <= {LIMITS[key]}, got {value}")
        if len(self.instrument_list) > MAX_STEMS:
            raise ConfigError(
                f"params: instrument_list must name at most {MAX_STEMS} stems, "
                f"got {len(self.instrument_list)}"
            )
        if self.frame_step > self.frame_length:
            raise ConfigError(
                f"params: frame_step must be <= frame_length, got {self.frame_step} > "
                f"{self.frame_length}"
            )
        if self.frame_length % self.frame_step != 0:
            raise ConfigError(
                f"params: frame_length must be a multiple of frame_step, got "
                f"{self.frame_length} and {self.frame_step}"
            )
        if self.F > self.n_bins:
            raise ConfigError(
                f"params: F must be <= frame_length // 2 + 1 = {self.n_bins}, got {self.F}"
            )
        block_values = self.n_stems * self.T * self.F * self.n_channels
        if block_values > MAX_BLOCK_VALUES:
            raise ConfigError(
                f"params: n_stems * T * F * n_channels must be <= {MAX_BLOCK_VALUES}, got "
                f"{self.n_stems} * {self.T} * {self.F} * {self.n_channels} = {block_values}"
            )
        span_values = self.n_stems * self.n_channels * self.T * self.frame_step
        if span_values > MAX_SPAN_VALUES:
            raise ConfigError(
                f"params: n_stems * n_channels * T * frame_step must be <= {MAX_SPAN_VALUES}, "
                f"got {self.n_stems} * {self.n_channels} * {self.T} * {self.frame_step} = "
                f"{span_values}"
            )
        if self.mask_extension not in MASK_EXTENSIONS:
            raise ConfigError(
                f"params: mask_extension must be one of {list(MASK_EXTENSIONS)}, "
                f"got {self.mask_extension!r}"
            )
        if not 0 < self.separation_exponent <= MAX_SEPARATION_EXPONENT:
            raise ConfigError(
                f"params: separation_exponent must be a finite number in "
                f"(0, {MAX_SEPARATION_EXPONENT:g}], got {self.separation_exponent!r}"
            )
        if not isinstance(self.stream, dict) or not set(self.stream) <= set(STREAM_KEYS):
            raise ConfigError(
                f"params: stream must be an object with keys {list(STREAM_KEYS)}, "
                f"got {self.stream!r}"
            )
        for key, value in self.stream.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"params: stream.{key} must be an integer >= 0, got {value!r}")
        hop, lookahead = self.stream.get("hop_frames"), self.stream.get("lookahead_frames")
        if hop is not None and not 1 <= hop <= self.T:
            raise ConfigError(f"params: stream.hop_frames must be in [1, T = {self.T}], got {hop}")
        if lookahead is not None and lookahead > self.T - 1:
            raise ConfigError(
                f"params: stream.lookahead_frames must be <= T - 1 = {self.T - 1}, got {lookahead}"
            )
        if hop is not None and lookahead is not None and hop > lookahead + 1:
            raise ConfigError(
                f"params: stream.hop_frames must be <= lookahead_frames + 1 = {lookahead + 1}, "
                f"got {hop}"
            )
        context = self.model_params.get("context", "none")
        if context not in CONTEXTS:
            raise ConfigError(
                f"params: model.params.context must be one of {list(CONTEXTS)}, got {context!r}"
            )
        if not 0 <= self.highpass_hz < self.sample_rate / 2:  # False for NaN
            raise ConfigError(
                f"params: highpass_hz must be a finite number in [0, {self.sample_rate / 2}), "
                f"got {self.highpass_hz}"
            )

    @property
    def n_bins(self) -> int:
        """Bins of the full one-sided spectrum, ``frame_length // 2 + 1``."""
        return self.frame_length // 2 + 1

    @property
    def n_stems(self) -> int:
        """Number of output stems."""
        return len(self.instrument_list)

    @property
    def hop_seconds(self) -> float:
        """STFT hop in seconds."""
        return self.frame_step / self.sample_rate

    @property
    def block_seconds(self) -> float:
        """Duration covered by one model block of ``T`` frames, in seconds."""
        return self.T * self.frame_step / self.sample_rate

    @property
    def model_params(self) -> dict[str, Any]:
        """The ``model.params`` section (filters, activations)."""
        params = self.model.get("params", {}) if isinstance(self.model, dict) else {}
        return dict(params or {})

    @property
    def context(self) -> str:
        """``model.params.context``: ``none`` (default), or ``floor``: the model also gets the
        running noise floor of every frame (:mod:`streamsep.engine.noisefloor`) as
        ``n_channels`` more input channels after the mix's."""
        return str(self.model_params.get("context", "none"))

    @property
    def input_channels(self) -> int:
        """Channels of a model input block: ``n_channels``, twice that with a floor context."""
        return self.n_channels * (2 if self.context == "floor" else 1)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "params") -> ModelParams:
        """Build from a Spleeter-style dict; unknown keys are kept in ``extra``."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        if "instrument_list" not in data:
            raise ConfigError(f"{source}: missing key 'instrument_list'")
        kwargs: dict[str, Any] = {}
        for key in _KNOWN_KEYS:
            if key in data:
                kwargs[key] = data[key]
        instruments = kwargs["instrument_list"]
        if not isinstance(instruments, list | tuple) or not all(
            isinstance(name, str) and name for name in instruments
        ):
            raise ConfigError(
                f"{source}: instrument_list must be a list of names, got {instruments!r}"
            )
        kwargs["instrument_list"] = tuple(instruments)
        for key in ("separation_exponent", "highpass_hz"):
            if key in kwargs:
                value = kwargs[key]
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
                try:
                    kwargs[key] = float(value)
                except OverflowError:
                    raise ConfigError(f"{source}: {key} is out of range: {value}") from None
                if not math.isfinite(kwargs[key]):
                    raise ConfigError(f"{source}: {key} must be a finite number, got {value!r}")
        if "model" in kwargs and not isinstance(kwargs["model"], dict):
            raise ConfigError(f"{source}: model must be an object, got {kwargs['model']!r}")
        extra = {k: v for k, v in data.items() if k not in _KNOWN_KEYS}
        try:
            params = cls(**kwargs, extra=extra)
        except ConfigError as e:
            raise ConfigError(str(e).replace("params:", f"{source}:", 1)) from None
        defaulted = [key for key in _SPLEETER_DEFAULTED if key not in data]
        if defaulted:
            _LOGGER.warning(
                "%s: no %s; using Spleeter's defaults %s (check that the model was trained so)",
                source,
                ", ".join(defaulted),
                ", ".join(f"{key}={getattr(params, key)}" for key in defaulted),
            )
        return params

    def to_dict(self) -> dict[str, Any]:
        """The Spleeter-style dict, ``extra`` keys included."""
        data: dict[str, Any] = dict(self.extra)
        data.update(
            {
                "mix_name": self.mix_name,
                "instrument_list": list(self.instrument_list),
                "sample_rate": self.sample_rate,
                "frame_length": self.frame_length,
                "frame_step": self.frame_step,
                "T": self.T,
                "F": self.F,
                "n_channels": self.n_channels,
                "separation_exponent": self.separation_exponent,
                "mask_extension": self.mask_extension,
                "model": self.model,
            }
        )
        if self.highpass_hz:
            data["highpass_hz"] = self.highpass_hz
        if self.stream:
            data["stream"] = dict(self.stream)
        return data

    def save(self, path: str | Path) -> None:
        """Write the params JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=4) + "\n")


def load_params(source: str | Path | dict[str, Any] | ModelParams) -> ModelParams:
    """Load params from a JSON file path, a dict, or pass a ``ModelParams`` through.

    Raises
    ------
    ConfigError
        If the file is missing, is not JSON, or a key is missing or invalid.
    """
    if isinstance(source, ModelParams):
        return source
    if isinstance(source, dict):
        return ModelParams.from_dict(source)
    path = Path(source)
    try:
        if not path.is_file():  # a FIFO or a device would block or never end
            if path.exists():
                raise ConfigError(f"params file {path} is not a regular file")
            raise ConfigError(f"params file not found: {path}")
        with path.open("rb") as f:
            raw = f.read(MAX_PARAMS_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read params file {path}: {e.strerror}") from e
    if len(raw) > MAX_PARAMS_BYTES:
        raise ConfigError(f"params file {path} is larger than {MAX_PARAMS_BYTES} bytes")
    try:
        data = decode_json(raw)
    except JsonTextError as e:
        raise ConfigError(f"params file {path} is {e}") from None
    return ModelParams.from_dict(data, source=str(path))
