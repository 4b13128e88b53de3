"""Training batches: magnitude blocks of mixtures made on the fly (:class:`BlockGenerator`) or read
from a Spleeter CSV (:class:`CsvBlockGenerator`).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import soxr
from numpy.typing import NDArray

from streamsep.engine.audio import read_audio
from streamsep.engine.params import ModelParams
from streamsep.engine.spectral import stft
from streamsep.errors import ConfigError
from tools.dataset.mixtures import (
    NOISE_STEM,
    ORCA_STEM,
    Pool,
    make_mixture,
)
from tools.dataset.noisefloor import stream_input
from tools.dataset.synthnoise import DEFAULT_KINDS, check_kinds

_LOGGER = logging.getLogger(__name__)


def block_spectra(x: NDArray[np.floating], params: ModelParams) -> NDArray[np.complex64]:
    """Complex STFT ``(T, F, n_channels)`` of the ``T`` frames lying wholly inside ``x``.

    ``x`` (n_samples,) must hold ``(T + frame_length / frame_step - 1) * frame_step`` samples;
    Spleeter's STFT (:func:`streamsep.engine.spectral.stft`) frames ``r .. r + T - 1`` with
    ``r = frame_length / frame_step`` are the ones that see no padding.
    """
    ratio = params.frame_length // params.frame_step
    audio = np.repeat(np.asarray(x, np.float32)[:, None], params.n_channels, axis=1)
    spectra = stft(audio, params.frame_length, params.frame_step)
    return spectra[ratio : ratio + params.T, : params.F]


def block_magnitudes(x: NDArray[np.floating], params: ModelParams) -> NDArray[np.float32]:
    """Magnitudes of :func:`block_spectra`."""
    return np.abs(block_spectra(x, params))


def psa_target(source: NDArray[np.complex64], mix: NDArray[np.complex64]) -> NDArray[np.float32]:
    """Phase-sensitive target ``|S| cos(angle S - angle X) = Re(S conj X) / |X|``.

    A mask times ``|X|``, resynthesised with the mix phase, is closest to the source waveform
    (in the STFT domain) when it equals this; it is negative where the source opposes the mix.
    """
    magnitude = np.maximum(np.abs(mix), np.float32(1e-12))
    return np.asarray(np.real(source * np.conj(mix)) / magnitude, np.float32)


def block_samples(params: ModelParams) -> int:
    """Samples of audio behind one training block (see :func:`block_magnitudes`)."""
    return (params.T + params.frame_length // params.frame_step - 1) * params.frame_step


Batch = tuple[NDArray[np.float32], dict[str, NDArray[np.float32]]]


class BlockGenerator:
    """Unlimited training batches of synthetic mixtures, made on the fly.

    Batch ``index`` is drawn from ``numpy.random.default_rng([seed, index])`` only, so a batch
    does not depend on which batches were made before (resuming gives the same data).

    Parameters
    ----------
    pool : Pool
        Calls and noises at ``params.sample_rate``.
    params : ModelParams
        ``T``, ``F``, STFT and ``n_channels`` of the blocks.
    seed : int
    batch_size : int
    snr_range : (float, float)
        Input SNR in dB, uniform.
    level_range : (float, float)
        Mix RMS in dBFS, uniform (random gain).
    p_no_call : float
        Probability of a noise-only block (orca target zero).
    augment : bool
        See :func:`make_mixture`.
    psa : bool
        Also give each stem's phase-sensitive target (:func:`psa_target`) under
        ``"<stem>:psa"``, for the ``sdr`` loss.
    p_edge_silence : float
        Probability of a block whose first or last 1..T-1 frames are digital silence in the
        mix and every source, as the engine's blocks are at a stream's start and end and around
        a gap filled with silence. 0 draws nothing extra from the generator.
    noise_augment, call_resample, p_synthetic, p_colour, synthetic_kinds, p_aac, aac_kbps, \
    p_synthetic_call
        See :func:`make_mixture` (with ``augment``); the defaults draw nothing extra.
    context_seconds : (float, float)
        With ``model.params.context = "floor"``: each block comes after U(range) seconds of its
        noise (``context_samples`` of :func:`make_mixture`), and its input gets the running
        noise floor (:func:`tools.dataset.noisefloor.stream_floor`) of the whole as extra
        channels: ``(T, F, 2 C)``, the mix's ``C`` first.
    """

    def __init__(
        self,
        pool: Pool,
        params: ModelParams,
        *,
        seed: int = 0,
        batch_size: int = 8,
        snr_range: tuple[float, float] = (-10.0, 10.0),
        level_range: tuple[float, float] = (-55.0, -20.0),
        p_no_call: float = 0.1,
        augment: bool = True,
        psa: bool = False,
        p_edge_silence: float = 0.0,
        noise_augment: bool = False,
        call_resample: tuple[float, float] = (0.97, 1.03),
        p_synthetic: float = 0.0,
        p_colour: float = 0.0,
        context_seconds: tuple[float, float] = (0.0, 12.0),
        synthetic_kinds: Sequence[str] = DEFAULT_KINDS,
        p_aac: float = 0.0,
        aac_kbps: tuple[float, float] = (64.0, 160.0),
        p_synthetic_call: float = 0.0,
    ) -> None:
        if params.instrument_list != (ORCA_STEM, NOISE_STEM):
            raise ConfigError(
                f"expected instrument_list {[ORCA_STEM, NOISE_STEM]}, "
                f"got {list(params.instrument_list)}"
            )
        if pool.sample_rate != params.sample_rate:
            raise ConfigError(f"pool rate {pool.sample_rate} != model rate {params.sample_rate}")
        self.pool, self.params, self.seed, self.batch_size = pool, params, seed, batch_size
        self.snr_range, self.level_range = snr_range, level_range
        self.p_no_call, self.augment, self.psa = p_no_call, augment, psa
        self.p_edge_silence = p_edge_silence
        self.noise_augment = noise_augment and augment
        self.call_resample = call_resample
        self.p_synthetic = p_synthetic if augment else 0.0
        self.p_colour = p_colour if augment else 0.0
        self.synthetic_kinds = check_kinds(synthetic_kinds)
        self.p_aac = p_aac if augment else 0.0
        self.aac_kbps = aac_kbps
        self.p_synthetic_call = p_synthetic_call if augment else 0.0
        self.n_samples = block_samples(params)
        self.with_floor = params.context == "floor"
        self.context_seconds = context_seconds

    def example(self, rng: np.random.Generator) -> Batch:
        """One ``(mix (T, F, C), {stem: target (T, F, C)})`` block."""
        block_seconds = self.n_samples / self.pool.sample_rate
        step = self.params.frame_step
        n_context = 0
        if self.with_floor:
            n_context = (
                int(rng.uniform(*self.context_seconds) * self.pool.sample_rate) // step * step
            )
        mixture = make_mixture(
            self.pool,
            rng,
            self.n_samples,
            float(rng.uniform(*self.snr_range)),
            crop_seconds=(min(0.3, block_seconds / 2), block_seconds),
            augment=self.augment,
            allow_partial=True,
            level_db=float(rng.uniform(*self.level_range)),
            with_call=bool(rng.random() >= self.p_no_call),
            noise_augment=self.noise_augment,
            call_resample=self.call_resample,
            p_synthetic=self.p_synthetic,
            p_colour=self.p_colour,
            context_samples=n_context,
            synthetic_kinds=self.synthetic_kinds,
            p_aac=self.p_aac,
            aac_kbps=self.aac_kbps,
            p_synthetic_call=self.p_synthetic_call,
        )
        mix_wave, sources = mixture.mix, mixture.sources
        if self.p_edge_silence > 0 and rng.random() < self.p_edge_silence:
            n_silent = int(rng.integers(1, self.params.T)) * self.params.frame_step
            silent = (
                slice(n_context, n_context + n_silent)
                if rng.random() < 0.5
                else slice(-n_silent, None)
            )
            mix_wave = mix_wave.copy()
            mix_wave[silent] = 0.0
            sources = {k: v.copy() for k, v in sources.items()}
            for v in sources.values():
                v[silent] = 0.0
        x, mix = self._input(mix_wave, n_context)
        targets = {}
        for stem, source in sources.items():
            spectra = block_spectra(source[n_context:], self.params)
            targets[stem] = np.abs(spectra)
            if self.psa:
                targets[f"{stem}:psa"] = psa_target(spectra, mix)
        return x, targets

    def _input(
        self, mix_wave: NDArray[np.float32], n_context: int
    ) -> tuple[NDArray[np.float32], NDArray[np.complex64]]:
        """Network input ``(T, F, C)`` (or ``(T, F, 2 C)`` with the floor) and the block's
        complex mix spectra ``(T, F, C)``, for a block after ``n_context`` samples."""
        if not self.with_floor:
            mix = block_spectra(mix_wave, self.params)
            return np.abs(mix), mix
        audio = np.repeat(mix_wave[:, None], self.params.n_channels, axis=1)
        spectra, x = stream_input(audio, self.params)
        first = (
            self.params.frame_length // self.params.frame_step + n_context // self.params.frame_step
        )
        frames = slice(first, first + self.params.T)
        return x[frames], spectra[frames, : self.params.F]

    def batch(self, index: int) -> Batch:
        """Batch ``index``: ``(mix (B, T, F, C), {stem: (B, T, F, C)})``, float32."""
        rng = np.random.default_rng([self.seed, index])
        examples = [self.example(rng) for _ in range(self.batch_size)]
        x = np.stack([e[0] for e in examples])
        y = {stem: np.stack([e[1][stem] for e in examples]) for stem in examples[0][1]}
        return x, y

    def __iter__(self) -> Iterator[Batch]:
        index = 0
        while True:
            yield self.batch(index)
            index += 1


class CsvBlockGenerator(BlockGenerator):
    """Training batches from a built dataset (Spleeter CSV): random blocks of its mixtures.

    Same interface as :class:`BlockGenerator`; each example is a random ``T``-frame crop of a
    random row with a random gain from ``level_range`` (relative to the row's level).
    """

    def __init__(
        self,
        csv_path: str | Path,
        params: ModelParams,
        *,
        seed: int = 0,
        batch_size: int = 8,
        level_range: tuple[float, float] = (-10.0, 10.0),
    ) -> None:
        self.params, self.seed, self.batch_size = params, seed, batch_size
        self.level_range = level_range
        self.n_samples = block_samples(params)
        root = Path(csv_path).parent
        self.rows: list[dict[str, NDArray[np.float32]]] = []
        with Path(csv_path).open(newline="") as f:
            for row in csv.DictReader(f):
                entry = {}
                for key in ("mix", ORCA_STEM, NOISE_STEM):
                    audio, rate = read_audio(root / row[f"{key}_path"])
                    x = audio.mean(axis=1)
                    if rate != params.sample_rate:
                        x = np.asarray(soxr.resample(x, rate, params.sample_rate), np.float32)
                    entry[key] = x
                self.rows.append(entry)
        if not self.rows:
            raise ConfigError(f"no rows in {csv_path}")

    def example(self, rng: np.random.Generator) -> Batch:
        row = self.rows[int(rng.integers(len(self.rows)))]
        length = row["mix"].shape[0]
        start = int(rng.integers(0, max(length - self.n_samples, 0) + 1))
        gain = np.float32(10 ** (rng.uniform(*self.level_range) / 20))

        def cut(x: NDArray[np.float32]) -> NDArray[np.float32]:
            out = np.zeros(self.n_samples, np.float32)
            piece = x[start : start + self.n_samples]
            out[: piece.shape[0]] = piece * gain
            return block_magnitudes(out, self.params)

        return cut(row["mix"]), {stem: cut(row[stem]) for stem in (ORCA_STEM, NOISE_STEM)}
