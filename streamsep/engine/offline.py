"""Offline separation with the streaming engine (the very same scheduler and combiner).

``Separator(params, model).separate(waveform, sample_rate)`` mirrors the seed project's
``Separator(params_json, checkpoint_dir).return_source_directory(waveform, sample_rate)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.batch import BLOCK_SAMPLES, SeparationReport, StreamJob
from streamsep.engine.checkpoint import cached_tflite_for_checkpoint
from streamsep.engine.model import PASSTHROUGH, MaskModel, load_model
from streamsep.engine.params import ModelParams, load_params
from streamsep.engine.settings import StreamSettings
from streamsep.engine.streamer import BlockSeparator
from streamsep.errors import ConfigError, ModelError
from streamsep.resources import default_model_paths

__all__ = ["Separator", "separate", "is_checkpoint_dir"]

_LOGGER = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
"""Called with (samples done, samples total) at the input rate."""


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
        self.last_report: SeparationReport | None = None
        """Repairs made to the last input (non-finite samples, clipping, model blocks)."""

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
            ``progress(done, total)`` in input samples.

        Returns
        -------
        dict
            ``{stem: ndarray (n_samples, model n_channels) float32}`` at ``sample_rate``,
            with the input's length.

        Notes
        -----
        The waveform goes through the engine in pieces (:class:`~streamsep.engine.batch.
        StreamJob`); besides the input only the outputs are whole-file arrays. Non-finite input
        samples become silence and extreme ones are clipped (:mod:`streamsep.engine.sanitize`);
        :attr:`last_report` counts them.
        """
        x = np.asarray(waveform)
        if x.ndim not in (1, 2) or x.size == 0 and x.ndim == 2 and x.shape[1] == 0:
            raise ConfigError(f"waveform: expected shape (n_samples, n_channels), got {x.shape}")
        if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
            raise ConfigError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        n_samples = x.shape[0]
        p = self.params
        stems = np.zeros((p.n_stems, n_samples, p.n_channels), dtype=np.float32)
        job = StreamJob(self._engine, int(sample_rate), "waveform")
        for start in range(0, n_samples, BLOCK_SAMPLES):
            out = job.feed(x[start : start + BLOCK_SAMPLES])
            stems[:, job.n_out - out.shape[1] : job.n_out] = out
            if progress is not None:
                progress(job.n_in, n_samples)
        out = job.finish()
        stems[:, job.n_out - out.shape[1] : job.n_out] = out
        self.last_report = job.report()
        return dict(zip(p.instrument_list, stems, strict=True))

    def return_source_directory(
        self, waveform: NDArray[np.floating], sample_rate: int
    ) -> dict[str, NDArray[np.float32]]:
        """The seed project's name for :meth:`separate`."""
        return self.separate(waveform, sample_rate)


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
