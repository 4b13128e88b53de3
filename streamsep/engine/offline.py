"""Offline separation with the streaming engine (the very same scheduler and combiner).

``Separator(params, model).separate(waveform, sample_rate)`` mirrors the seed project's
``Separator(params_json, checkpoint_dir).return_source_directory(waveform, sample_rate)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.audio import adapt_channels, resample
from streamsep.engine.checkpoint import cached_tflite_for_checkpoint
from streamsep.engine.model import PASSTHROUGH, MaskModel, load_model
from streamsep.engine.params import ModelParams, load_params
from streamsep.engine.settings import StreamSettings
from streamsep.engine.streamer import BlockSeparator
from streamsep.errors import ConfigError, ModelError
from streamsep.resources import default_model_paths

__all__ = ["Separator", "separate", "is_checkpoint_dir"]

_LOGGER = logging.getLogger(__name__)

_CHUNK_SAMPLES: Final = 1 << 17

ProgressCallback = Callable[[int, int], None]
"""Called with (samples done, samples total) at the model rate."""


class Separator:
    """Loads a model once and separates whole waveforms.

    Parameters
    ----------
    params : path, dict or ModelParams, optional
        Spleeter-style params; default: the bundled model's.
    model : path or "passthrough", optional
        A ``.tflite`` file, a Spleeter checkpoint directory (converted once and cached), or
        ``passthrough``; default: the bundled model.
    stream : StreamSettings, optional
        Block scheduling. Default: Spleeter's own segmentation (``StreamSettings.spleeter()``:
        non-overlapping ``T``-frame blocks, flat weights; the output Spleeter gives) for a
        Spleeter checkpoint directory, the model's streaming defaults for anything else.
        ``StreamSettings()`` (overlapping Hann-weighted blocks) avoids Spleeter's block-edge
        artefacts at about 2-4x the model time (``T / hop_frames`` blocks per ``T`` frames).
    num_threads : int
        LiteRT interpreter threads.

    Raises
    ------
    ConfigError, ModelError
        If the params or the model are missing, invalid, or disagree.
    """

    def __init__(
        self,
        params: str | Path | dict[str, object] | ModelParams | None = None,
        model: str | Path | MaskModel | None = None,
        *,
        stream: StreamSettings | None = None,
        num_threads: int = 2,
    ) -> None:
        if params is None or model is None:
            default_params, default_model = default_model_paths()
            params = default_params if params is None else params
            if model is None:
                model = default_model
        self.params = load_params(params)
        from_checkpoint = is_checkpoint_dir(model)
        if isinstance(model, str | Path):
            self.model: MaskModel = _load_any_model(model, self.params, num_threads)
        else:
            self.model = model
        if self.model.params != self.params:
            raise ModelError("the model was built for other params than the ones given")
        if stream is None:
            stream = StreamSettings.spleeter() if from_checkpoint else StreamSettings()
        self.stream = stream
        self._engine = BlockSeparator(self.model, self.stream)

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency of the streaming configuration, samples at the model rate."""
        return self._engine.latency_samples

    def separate(
        self,
        waveform: NDArray[np.floating],
        sample_rate: int,
        *,
        progress: ProgressCallback | None = None,
    ) -> dict[str, NDArray[np.float32]]:
        """Separate a whole waveform.

        Parameters
        ----------
        waveform : ndarray, shape (n_samples, n_channels) or (n_samples,), float
        sample_rate : int
            Rate of ``waveform`` in Hz; resampled to the model rate and back.
        progress : callable, optional
            ``progress(done, total)`` in model-rate samples.

        Returns
        -------
        dict
            ``{stem: ndarray (n_samples, model n_channels) float32}`` at ``sample_rate``,
            with the input's length.
        """
        x = np.asarray(waveform)
        if x.ndim not in (1, 2) or x.size == 0 and x.ndim == 2 and x.shape[1] == 0:
            raise ConfigError(f"waveform: expected shape (n_samples, n_channels), got {x.shape}")
        if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
            raise ConfigError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        n_samples = x.shape[0]
        audio = adapt_channels(x, self.params.n_channels)
        audio = resample(audio, int(sample_rate), self.params.sample_rate)
        stems = self._run(audio, progress)
        out: dict[str, NDArray[np.float32]] = {}
        for name, stem in zip(self.params.instrument_list, stems, strict=True):
            back = resample(stem, self.params.sample_rate, int(sample_rate))
            fitted = np.zeros((n_samples, back.shape[1]), dtype=np.float32)
            fitted[: min(n_samples, back.shape[0])] = back[:n_samples]
            out[name] = fitted
        return out

    def return_source_directory(
        self, waveform: NDArray[np.floating], sample_rate: int
    ) -> dict[str, NDArray[np.float32]]:
        """The seed project's name for :meth:`separate`."""
        return self.separate(waveform, sample_rate)

    def _run(
        self, audio: NDArray[np.float32], progress: ProgressCallback | None
    ) -> NDArray[np.float32]:
        engine = self._engine
        engine.reset()
        latency = engine.latency_samples
        n = audio.shape[0]
        pieces = []
        for start in range(0, n, _CHUNK_SAMPLES):
            pieces.append(engine.feed(audio[start : start + _CHUNK_SAMPLES]))
            if progress is not None:
                progress(min(n, start + _CHUNK_SAMPLES), n)
        pieces.append(engine.flush())
        stems = np.concatenate(pieces, axis=1)
        return stems[:, latency : latency + n]


def is_checkpoint_dir(model: object) -> bool:
    """Whether ``model`` names a Spleeter checkpoint directory (not a ``.tflite`` file)."""
    return isinstance(model, str | Path) and str(model) != PASSTHROUGH and Path(model).is_dir()


def _load_any_model(model: str | Path, params: ModelParams, num_threads: int) -> MaskModel:
    if is_checkpoint_dir(model):
        # A Spleeter checkpoint directory: converted once, then the cached .tflite is loaded.
        model = cached_tflite_for_checkpoint(model, params)
    return load_model(model, params, num_threads)


def separate(
    waveform: NDArray[np.floating],
    sample_rate: int,
    *,
    separator: Separator | None = None,
) -> dict[str, NDArray[np.float32]]:
    """Separate ``waveform`` with ``separator`` (default: the bundled model)."""
    return (separator or Separator()).separate(waveform, sample_rate)
