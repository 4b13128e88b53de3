"""What is evaluated: ideal ratio masks, noisereduce, the models (offline, Spleeter segments,
streaming), and the seeded evaluation mixtures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.highpass import HighPass
from streamsep.engine.model import load_model
from streamsep.engine.offline import Separator
from streamsep.engine.params import ModelParams
from streamsep.engine.settings import StreamSettings
from streamsep.engine.spectral import apply_masks, istft, ratio_masks, stft
from streamsep.engine.streamer import BlockSeparator
from tools.dataset.mixtures import (
    NOISE_STEM,
    ORCA_STEM,
    Mixture,
    load_pool,
    make_mixture,
)
from tools.dataset.synthnoise import DEFAULT_KINDS
from tools.evaluate.metrics import sdr, si_sdr, spectrogram_mad

_LOGGER = logging.getLogger(__name__)

STEMS: Final = (ORCA_STEM, NOISE_STEM)
BAND_HZ: Final = (500.0, 15000.0)
"""Band of the orca-energy detection score."""
METRICS: Final = ("si_sdr", "si_sdri", "sdr", "mad")

Estimates = dict[str, NDArray[np.float32]]
Method = Callable[[NDArray[np.float32]], Estimates]


def _highpass(x: NDArray[np.floating], params: ModelParams) -> NDArray[np.float32]:
    """``x`` (n,) through the engine's DC-blocking high-pass (identity without one)."""
    if not params.highpass_hz:
        return np.asarray(x, np.float32)
    return HighPass(params.highpass_hz, params.sample_rate, 1).process(x[:, None])[:, 0]


def ideal_ratio_mask(
    mix: NDArray[np.floating],
    references: dict[str, NDArray[np.floating]],
    params: ModelParams,
    *,
    band_limited: bool = True,
) -> Estimates:
    """Oracle separation: Spleeter ratio masks of the true references applied to the mix.

    Parameters
    ----------
    mix : ndarray, shape (n_samples,), float
    references : dict of ndarray, shape (n_samples,)
        True sources, in ``params.instrument_list`` order.
    params : ModelParams
        STFT, ``separation_exponent``; with ``band_limited`` also ``F`` and ``mask_extension``.

    Returns
    -------
    dict
        ``{stem: ndarray (n_samples,) float32}``.
    """
    fl, fs = params.frame_length, params.frame_step
    spectra = stft(np.asarray(mix, np.float32)[:, None], fl, fs)
    n_bins = params.F if band_limited else params.n_bins
    mags = np.stack(
        [
            np.abs(stft(np.asarray(r, np.float32)[:, None], fl, fs))[:, :n_bins]
            for r in references.values()
        ]
    )
    masks = ratio_masks(mags, params.separation_exponent)
    masked = apply_masks(masks, spectra, params.mask_extension)
    n = mix.shape[0]
    return {stem: istft(masked[i], fl, fs, n)[:, 0] for i, stem in enumerate(references)}


def _noisereduce(stationary: bool, sample_rate: int) -> Method:
    try:
        import noisereduce
    except ImportError as e:
        raise ImportError("noisereduce must be installed for the noisereduce baseline") from e

    def run(mix: NDArray[np.float32]) -> Estimates:
        orca = noisereduce.reduce_noise(y=mix, sr=sample_rate, stationary=stationary, n_jobs=1)
        orca = np.asarray(orca, np.float32)[: mix.shape[0]]
        return {ORCA_STEM: orca, NOISE_STEM: mix - orca}

    return run


class _ModelRunner:
    """Offline and streaming runs of one ``.tflite`` model, with timing and agreement."""

    def __init__(
        self, path: Path, params: ModelParams, chunk: int, lookaheads: Sequence[int] = ()
    ) -> None:
        self.name = path.stem
        self.params = params
        self.chunk = chunk
        self.separator = Separator(params, path, num_threads=2)
        model = load_model(path, params, 2)
        self.segments = Separator(params, model, stream=StreamSettings.spleeter())
        """Spleeter's own segmentation (whole ``T``-frame blocks, no overlap): offline only."""
        self.engine = BlockSeparator(model, StreamSettings())
        self.sweep = {
            lookahead: BlockSeparator(model, StreamSettings(lookahead_frames=lookahead))
            for lookahead in lookaheads
        }
        """Extra streaming engines by ``lookahead_frames`` (hop derived), for the latency curve."""
        self.stream_seconds = 0.0
        self.audio_seconds = 0.0
        self.max_difference = 0.0
        self._offline: Estimates = {}

    def method_name(self, lookahead: int) -> str:
        """Row name of the sweep engine with ``lookahead`` frames."""
        return f"{self.name} streaming L={lookahead}"

    def swept(self, lookahead: int) -> Method:
        """The sweep engine of ``lookahead`` as a method (no timing, no agreement check)."""

        def run(mix: NDArray[np.float32]) -> Estimates:
            return _stream(self.sweep[lookahead], mix, self.chunk, self.params)

        return run

    def spleeter_segments(self, mix: NDArray[np.float32]) -> Estimates:
        stems = self.segments.separate(mix[:, None], self.params.sample_rate)
        return {k: v[:, 0] for k, v in stems.items()}

    def offline(self, mix: NDArray[np.float32]) -> Estimates:
        stems = self.separator.separate(mix[:, None], self.params.sample_rate)
        self._offline = {k: v[:, 0] for k, v in stems.items()}
        return self._offline

    def streaming(self, mix: NDArray[np.float32]) -> Estimates:
        started = time.perf_counter()
        stems = _stream(self.engine, mix, self.chunk, self.params)
        self.stream_seconds += time.perf_counter() - started
        self.audio_seconds += mix.shape[0] / self.params.sample_rate
        if self._offline:
            diff = max(float(np.max(np.abs(stems[s] - self._offline[s]))) for s in stems)
            self.max_difference = max(self.max_difference, diff)
        return stems

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / max(self.stream_seconds, 1e-9)


def _stream(
    engine: BlockSeparator, mix: NDArray[np.float32], chunk: int, params: ModelParams
) -> Estimates:
    """``mix`` (n,) through ``engine`` in ``chunk``-sample pieces, cropped by its latency."""
    n = mix.shape[0]
    engine.reset()
    pieces = [engine.feed(mix[i : i + chunk, None]) for i in range(0, n, chunk)]
    pieces.append(engine.flush())
    out = np.concatenate(pieces, axis=1)[:, engine.latency_samples : engine.latency_samples + n]
    return {stem: out[i, :, 0] for i, stem in enumerate(params.instrument_list)}


def _score(
    estimates: Estimates, refs: Estimates, mix: NDArray[np.float32], params: ModelParams
) -> dict[str, dict[str, float]]:
    out = {}
    for stem in STEMS:
        ref, est = refs[stem], estimates[stem]
        value = si_sdr(ref, est)
        out[stem] = {
            "si_sdr": value,
            "si_sdri": value - si_sdr(ref, mix),
            "sdr": sdr(ref, est),
            "mad": spectrogram_mad(ref, est, params),
        }
    return out


def _mixtures(
    data_dir: Path,
    split: str,
    params: ModelParams,
    snrs: Sequence[float],
    n_per_snr: int,
    seed: int,
    seconds: float,
    level_db: float,
    p_synthetic: float = 0.0,
    context_seconds: float = 0.0,
    synthetic_kinds: Sequence[str] = DEFAULT_KINDS,
    aac_kbps: float | None = None,
) -> list[tuple[float, Mixture]]:
    """The seeded evaluation mixtures, ``(snr, mixture)``; with ``context_seconds``, each after
    that much of its own noise (``context_samples`` of :func:`make_mixture`, whole hops)."""
    pool = load_pool(data_dir, split, params.sample_rate, params.frame_length)
    step = params.frame_step
    n_context = int(round(context_seconds * params.sample_rate)) // step * step
    n_samples = int(round(seconds * params.sample_rate))
    out = []
    for j, snr in enumerate(snrs):
        for k in range(n_per_snr):
            rng = np.random.default_rng([seed, j, k])
            mixture = make_mixture(
                pool,
                rng,
                n_samples,
                float(snr),
                n_calls=int(rng.integers(1, 4)),
                level_db=level_db,
                noise_index=(j + k) % len(pool.noises),
                p_synthetic=p_synthetic,
                context_samples=n_context,
                synthetic_kinds=synthetic_kinds,
                p_aac=0.0 if aac_kbps is None else 1.0,
                aac_kbps=(aac_kbps or 0.0, aac_kbps or 0.0),
            )
            out.append((float(snr), mixture))
    return out
