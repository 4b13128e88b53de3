"""Orca/noise mixtures for training and evaluation, from the shared recordings.

Usage::

    python -m tools.dataset build --data /work/shared/data --split train --out runs/data/train \\
        [--params configs/orca-small.json] [--n-examples 100] [--seconds 8] \\
        [--snr-min -10] [--snr-max 10] [--seed 0]
    python -m tools.dataset summary --data /work/shared/data [--params P]
    python -m tools.dataset check-splits --data /work/shared/data    # content overlap, ~3 min

``build`` writes ``NNNNN/{mix,orca_vocals,noise}.flac`` under ``--out``, a Spleeter CSV
``<split>.csv`` (``mix_path,orca_vocals_path,noise_path,duration``, paths relative to ``--out``:
Spleeter's ``audio_path``), ``mixtures.jsonl`` (files, offsets, gains, SNR of every example) and
``build.json`` (arguments and source files). :class:`BlockGenerator` makes the same kind of
mixtures on the fly, as ``(mix, {stem: target})`` magnitude blocks for training.

Definitions (also in ``docs/training.md``):

* **Preparation**: every file is averaged to mono, its mean removed, resampled (soxr HQ) to the
  model rate and high-passed at 20 Hz (2nd-order Butterworth run forwards and backwards: zero
  phase, 4th-order slope). Several files are over 95 % DC by energy; without this an SNR is
  mostly DC.
* **Active frames** of a call file: non-overlapping frames of ``frame_samples`` samples whose
  energy is within ``ACTIVE_THRESHOLD_DB`` (20 dB) of the file's loudest frame. The threshold
  is fixed per file, so a crop that misses the call has no active frame.
* **Input SNR** = ``10 log10(sum(call^2) / sum(noise^2))`` over the active samples of the
  mixture (the union of the active frames of its calls), so it is the SNR while calls sound.
* **Splits** follow the manifest's ``split`` column, by file, except that files known to hold
  the same recording (:data:`SAME_RECORDING`, found with ``check-splits``) are kept together:
  a recording with any file in ``train`` is entirely ``train``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import soxr
from numpy.typing import NDArray
from scipy import signal

from streamsep.engine.audio import read_audio, write_audio
from streamsep.engine.params import ModelParams, load_params
from streamsep.engine.spectral import stft
from streamsep.errors import ConfigError

from .synthnoise import synthetic_noise

__all__ = [
    "ACTIVE_THRESHOLD_DB",
    "ORCA_STEM",
    "NOISE_STEM",
    "SAME_RECORDING",
    "Clip",
    "Pool",
    "Mixture",
    "BlockGenerator",
    "CsvBlockGenerator",
    "active_frames",
    "snr_db",
    "noise_gain_for_snr",
    "prepare_audio",
    "manifest_entries",
    "load_pool",
    "make_mixture",
    "probability",
    "block_magnitudes",
    "build",
    "main",
]

_LOGGER = logging.getLogger(__name__)

ORCA_STEM: Final = "orca_vocals"
NOISE_STEM: Final = "noise"
ACTIVE_THRESHOLD_DB: Final = 20.0
"""A frame of a call is active if its energy is within this many dB of the file's max frame."""
DC_CUTOFF_HZ: Final = 20.0
EXCLUDED_KINDS: Final = ("orca-call-clipped",)
"""Left out of every pool: ``someCallsPlus7db`` is ``someCalls`` clipped at +7 dB."""
SAME_RECORDING: Final = {
    "calls/riptideremix_G-clan-song-01.flac": "riptideremix G clan NAXYS segment07p",
    "calls/riptideremix_G-clan-song-02.flac": "riptideremix G clan NAXYS segment07p",
    "calls/riptideremix_Northern_Resident_Killer_Whales_G_Clan_NAXYS_02345_P008_"
    "20120206T084546.144Z_20120206T084546.144Z-segment07p.flac": "riptideremix G clan NAXYS "
    "segment07p",
    "calls/orca-autoencoder_someCalls.flac": "orca-autoencoder someCalls",
    "calls/orca-autoencoder_someCallsPlus7db.flac": "orca-autoencoder someCalls",
}
"""Files holding (parts of) one recording. G clan song 01/02 (manifest: val) are excerpts of
the NAXYS segment07p file (train): normalised cross-correlation 1.00 at the native rate."""
_FADE_SECONDS: Final = 0.01
_SECOND_NOISE_P: Final = 0.3


@dataclass(frozen=True)
class Clip:
    """One prepared source file."""

    path: str
    """Path relative to the data folder (the manifest's ``path``)."""
    kind: str
    """Manifest ``kind`` (``orca-call``, ``noise-ship-tanker``...)."""
    recording: str
    """Recording id: files sharing it are never split apart."""
    audio: NDArray[np.float32] = field(repr=False)
    """Mono DC-free audio at the pool's rate, shape (n_samples,)."""
    active: NDArray[np.bool_] = field(repr=False)
    """Active frames (calls only; all True for noise), one per ``frame_samples``."""
    frame_samples: int
    """Samples per activity frame."""


@dataclass
class Pool:
    """Prepared calls and noises of one split at one sample rate."""

    sample_rate: int
    calls: list[Clip]
    noises: list[Clip]

    def files(self) -> set[str]:
        """Paths of every file in the pool."""
        return {c.path for c in self.calls} | {c.path for c in self.noises}

    def recordings(self) -> set[str]:
        """Recording ids of every file in the pool."""
        return {c.recording for c in self.calls} | {c.recording for c in self.noises}


@dataclass
class Mixture:
    """A synthetic mixture and its references (all shape (n_samples,), float32)."""

    mix: NDArray[np.float32]
    sources: dict[str, NDArray[np.float32]]
    snr_db: float | None
    """Input SNR over the active samples; None without a call."""
    active: NDArray[np.bool_]
    meta: dict[str, Any]


def active_frames(
    x: NDArray[np.floating], frame_samples: int, threshold_db: float = ACTIVE_THRESHOLD_DB
) -> NDArray[np.bool_]:
    """Frames of ``x`` whose energy is within ``threshold_db`` of the loudest frame.

    Parameters
    ----------
    x : ndarray, shape (n_samples,), float
    frame_samples : int
        Non-overlapping frames; the last partial frame is zero-padded.

    Returns
    -------
    ndarray, shape (ceil(n_samples / frame_samples),), bool
    """
    n_frames = -(-x.shape[0] // frame_samples)
    padded = np.zeros(n_frames * frame_samples)
    padded[: x.shape[0]] = x
    energy = (padded.reshape(n_frames, frame_samples) ** 2).sum(axis=1)
    energy_db = 10 * np.log10(energy + 1e-30)
    return np.asarray(energy_db >= energy_db.max() - threshold_db)


def snr_db(
    call: NDArray[np.floating], noise: NDArray[np.floating], active: NDArray[np.bool_]
) -> float:
    """``10 log10(sum(call^2) / sum(noise^2))`` over the samples where ``active`` is True."""
    p_call = float(np.sum(np.square(call[active], dtype=np.float64)))
    p_noise = float(np.sum(np.square(noise[active], dtype=np.float64)))
    return 10 * np.log10(p_call / p_noise)


def noise_gain_for_snr(
    call: NDArray[np.floating],
    noise: NDArray[np.floating],
    active: NDArray[np.bool_],
    target_db: float,
) -> float:
    """Gain ``g`` such that ``snr_db(call, g * noise, active) == target_db``."""
    return float(10 ** ((snr_db(call, noise, active) - target_db) / 20))


def prepare_audio(audio: NDArray[np.floating], rate: int, sample_rate: int) -> NDArray[np.float32]:
    """Mono, mean removed, resampled to ``sample_rate``, zero-phase 20 Hz high-pass.

    Parameters
    ----------
    audio : ndarray, shape (n_samples, n_channels) or (n_samples,), float
    rate, sample_rate : int
        Rate of ``audio`` and the wanted rate, Hz.

    Returns
    -------
    ndarray, shape (n_out,), float32
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    x = x - x.mean()
    if rate != sample_rate:
        x = np.asarray(soxr.resample(x, rate, sample_rate, quality="HQ"), dtype=np.float64)
    sos = signal.butter(2, DC_CUTOFF_HZ, btype="highpass", fs=sample_rate, output="sos")
    return np.asarray(signal.sosfiltfilt(sos, x), dtype=np.float32)


def manifest_entries(data_dir: Path) -> list[dict[str, str]]:
    """Call and noise rows of ``manifest.csv`` (first row per path), split groups applied.

    Rows of a recording in :data:`SAME_RECORDING` get ``split = train`` if any of its files is
    ``train``; every row gets a ``recording`` key.
    """
    path = data_dir / "manifest.csv"
    if not path.is_file():
        raise ConfigError(f"manifest not found: {path}")
    with path.open(newline="") as f:
        rows: dict[str, dict[str, str]] = {}
        for row in csv.DictReader(f):
            if row["kind"].startswith(("orca-", "noise-")) and row["path"] not in rows:
                rows[row["path"]] = dict(row)
    for row in rows.values():
        row["recording"] = SAME_RECORDING.get(row["path"], row["path"])
    train_recordings = {r["recording"] for r in rows.values() if r["split"] == "train"}
    for row in rows.values():
        if row["recording"] in train_recordings and row["split"] != "train":
            _LOGGER.info("%s: moved to train (same recording as a train file)", row["path"])
            row["split"] = "train"
    return list(rows.values())


def load_pool(
    data_dir: str | Path, split: str, sample_rate: int, frame_samples: int = 1024
) -> Pool:
    """Load and prepare the calls and noises of ``split`` (``train`` or ``val``).

    Raises
    ------
    ConfigError
        If the manifest is missing or the split has no call or no noise file.
    """
    data = Path(data_dir)
    calls: list[Clip] = []
    noises: list[Clip] = []
    for row in manifest_entries(data):
        if row["split"] != split or row["kind"] in EXCLUDED_KINDS:
            continue
        audio, rate = read_audio(data / row["path"])
        x = prepare_audio(audio, rate, sample_rate)
        is_call = row["kind"].startswith("orca-")
        active = (
            active_frames(x, frame_samples)
            if is_call
            else np.ones(-(-x.shape[0] // frame_samples), dtype=bool)
        )
        clip = Clip(row["path"], row["kind"], row["recording"], x, active, frame_samples)
        (calls if is_call else noises).append(clip)
    if not calls or not noises:
        raise ConfigError(
            f"split {split!r}: expected calls and noises, got {len(calls)} and {len(noises)}"
        )
    return Pool(sample_rate, calls, noises)


def _fade(x: NDArray[np.float32], n_fade: int) -> NDArray[np.float32]:
    n = min(n_fade, x.shape[0] // 2)
    if n > 0:
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
        x = x.copy()
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _noise_segment(
    clip: Clip, rng: np.random.Generator, n_samples: int, *, augment: bool = False
) -> NDArray[np.float32]:
    """A random ``n_samples`` excerpt of ``clip`` (looped if shorter).

    With ``augment``, played faster or slower by a factor of U(0.8, 1.25) (resampling: a ship's
    engine and propeller at other speeds) and time-reversed with probability 0.5.
    """
    factor = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))) if augment else 1.0
    n_in = int(np.ceil(n_samples * factor)) + 64 if augment else n_samples
    x = clip.audio
    if x.shape[0] < n_in:
        x = np.tile(x, -(-n_in // x.shape[0]) + 1)
    start = int(rng.integers(0, x.shape[0] - n_in + 1))
    seg = x[start : start + n_in]
    if not augment:
        return seg
    rate = 48000  # any rate: only the ratio matters
    seg = np.asarray(soxr.resample(seg, rate * factor, rate), np.float32)[:n_samples]
    if seg.shape[0] < n_samples:  # soxr's rounding: pad the last few samples by reflection
        seg = np.pad(seg, (0, n_samples - seg.shape[0]), mode="reflect")
    return np.ascontiguousarray(seg[::-1]) if rng.random() < 0.5 else seg


def _place_call(
    clip: Clip,
    rng: np.random.Generator,
    n_samples: int,
    crop_samples: int,
    *,
    augment: bool,
    allow_partial: bool,
    sample_rate: int,
    resample_range: tuple[float, float] = (0.97, 1.03),
) -> tuple[NDArray[np.float32], NDArray[np.bool_], dict[str, Any]]:
    """A crop of ``clip`` around one of its active frames, placed in ``n_samples`` of silence."""
    active = np.repeat(clip.active, clip.frame_samples)[: clip.audio.shape[0]]
    crop = min(crop_samples, clip.audio.shape[0], n_samples)
    anchor = (int(rng.choice(np.flatnonzero(clip.active))) + 0.5) * clip.frame_samples
    start = int(np.clip(anchor - rng.integers(0, crop), 0, clip.audio.shape[0] - crop))
    seg, seg_active = clip.audio[start : start + crop], active[start : start + crop]
    factor, gain_db, sign = 1.0, 0.0, 1.0
    if augment:
        factor = float(rng.uniform(*resample_range))  # pitch and duration together
        seg = np.asarray(soxr.resample(seg, sample_rate, sample_rate * factor), np.float32)
        idx = np.minimum((np.arange(seg.shape[0]) / factor).astype(int), crop - 1)
        seg_active = seg_active[idx]
        gain_db, sign = float(rng.uniform(-6, 6)), float(rng.choice([-1.0, 1.0]))
        seg, seg_active = seg[:n_samples], seg_active[:n_samples]
    seg = _fade(seg * np.float32(sign * 10 ** (gain_db / 20)), int(_FADE_SECONDS * sample_rate))
    length = seg.shape[0]
    low, high = (
        (-(length // 2), n_samples - length // 2) if allow_partial else (0, n_samples - length)
    )
    offset = int(rng.integers(low, high + 1))
    out = np.zeros(n_samples, np.float32)
    out_active = np.zeros(n_samples, bool)
    a, b = max(offset, 0), min(offset + length, n_samples)
    out[a:b] = seg[a - offset : b - offset]
    out_active[a:b] = seg_active[a - offset : b - offset]
    meta = {
        "path": clip.path,
        "start": start,
        "samples": crop,
        "offset": offset,
        "resample": factor,
        "gain_db": gain_db,
    }
    return out, out_active, meta


def make_mixture(
    pool: Pool,
    rng: np.random.Generator,
    n_samples: int,
    snr: float,
    *,
    n_calls: int = 1,
    crop_seconds: tuple[float, float] = (1.0, 4.0),
    augment: bool = False,
    allow_partial: bool = False,
    level_db: float = -35.0,
    with_call: bool = True,
    noise_index: int | None = None,
    noise_augment: bool = False,
    call_resample: tuple[float, float] = (0.97, 1.03),
    p_synthetic: float = 0.0,
) -> Mixture:
    """One mixture of ``n_calls`` call crops (different files) in real noise at ``snr`` dB.

    Parameters
    ----------
    pool : Pool
    rng : numpy Generator
        The only source of randomness (deterministic given its seed).
    n_samples : int
        Length at ``pool.sample_rate``.
    snr : float
        Input SNR in dB over the active samples (see the module docstring).
    crop_seconds : (float, float)
        Range of each call crop's duration.
    augment : bool
        Resample calls by U(``call_resample``), gain U(-6, 6) dB and random polarity per call, and
        add a second noise file (different, p = 0.3) at U(-10, 0) dB.
    allow_partial : bool
        Calls may be cut by the mixture edges (time shift), at most half of each.
    level_db : float
        RMS of the mix in dB full scale (lowered if the peak would exceed 0.98).
    with_call : bool
        False gives noise only (orca reference all zeros, ``snr_db`` None).
    noise_index : int, optional
        Index in ``pool.noises`` of the noise file (default: drawn from ``rng``).
    noise_augment : bool
        Each noise excerpt sped up or slowed down by U(0.8, 1.25) and reversed with p = 0.5.
    call_resample : (float, float)
        With ``augment``, the range of the calls' resampling factor.
    p_synthetic : float
        Probability of adding one :mod:`tools.synthnoise` noise (kind uniform) to the noise at
        U(-10, 0) dB relative to it, before the SNR is set; 0 draws nothing extra.

    Returns
    -------
    Mixture
        Sources under :data:`ORCA_STEM` and :data:`NOISE_STEM`; ``mix`` is their sum.
    """
    rate = pool.sample_rate
    order = rng.permutation(len(pool.noises))
    if noise_index is not None:
        order = np.array([noise_index, *(i for i in order if i != noise_index)])
    noise = _noise_segment(pool.noises[order[0]], rng, n_samples, augment=noise_augment)
    noises = [{"path": pool.noises[order[0]].path, "gain_db": 0.0}]
    if augment and len(order) > 1 and rng.random() < _SECOND_NOISE_P:
        other = _noise_segment(pool.noises[order[1]], rng, n_samples, augment=noise_augment)
        rel_db = float(rng.uniform(-10, 0))
        power = np.mean(noise**2) / max(float(np.mean(other**2)), 1e-20)
        noise = noise + other * np.float32(np.sqrt(power) * 10 ** (rel_db / 20))
        noises.append({"path": pool.noises[order[1]].path, "gain_db": rel_db})
    if p_synthetic > 0 and rng.random() < p_synthetic:
        synth, kind = synthetic_noise(rng, n_samples, rate)
        rel_db = float(rng.uniform(-10, 0))
        noise = noise + synth * np.float32(np.sqrt(np.mean(noise**2)) * 10 ** (rel_db / 20))
        noises.append({"synthetic": kind, "gain_db": rel_db})
    orca = np.zeros(n_samples, np.float32)
    active = np.zeros(n_samples, bool)
    calls: list[dict[str, Any]] = []
    if with_call:
        for _ in range(100):  # retry until the placed crops keep an active frame
            chosen = rng.choice(len(pool.calls), size=min(n_calls, len(pool.calls)), replace=False)
            orca[:], active[:], calls = 0, False, []
            for i in chosen:
                crop = int(rng.uniform(*crop_seconds) * rate)
                placed, placed_active, meta = _place_call(
                    pool.calls[i],
                    rng,
                    n_samples,
                    crop,
                    augment=augment,
                    allow_partial=allow_partial,
                    sample_rate=rate,
                    resample_range=call_resample,
                )
                orca += placed
                active |= placed_active
                calls.append(meta)
            if active.any():
                break
        noise = noise * np.float32(noise_gain_for_snr(orca, noise, active, snr))
    mix = orca + noise
    gain = 10 ** (level_db / 20) / max(float(np.sqrt(np.mean(mix.astype(np.float64) ** 2))), 1e-12)
    gain = min(gain, 0.98 / max(float(np.abs(mix).max()), 1e-12))
    orca, noise, mix = (np.asarray(s * gain, np.float32) for s in (orca, noise, mix))
    meta = {
        "calls": calls,
        "noises": noises,
        "snr_db": snr if with_call else None,
        "gain": float(gain),
        "samples": n_samples,
        "sample_rate": rate,
    }
    sources = {ORCA_STEM: orca, NOISE_STEM: noise}
    return Mixture(mix, sources, snr if with_call else None, active, meta)


def probability(text: str) -> float:
    """argparse type of a probability option (``--synthetic-noise P``): a float in 0..1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"need a probability in 0..1, got {text!r}")
    return value


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
    noise_augment, call_resample, p_synthetic
        See :func:`make_mixture` (with ``augment``); the defaults draw nothing extra.
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
        self.n_samples = block_samples(params)

    def example(self, rng: np.random.Generator) -> Batch:
        """One ``(mix (T, F, C), {stem: target (T, F, C)})`` block."""
        block_seconds = self.n_samples / self.pool.sample_rate
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
        )
        mix_wave, sources = mixture.mix, mixture.sources
        if self.p_edge_silence > 0 and rng.random() < self.p_edge_silence:
            n_silent = int(rng.integers(1, self.params.T)) * self.params.frame_step
            silent = slice(0, n_silent) if rng.random() < 0.5 else slice(-n_silent, None)
            mix_wave = mix_wave.copy()
            mix_wave[silent] = 0.0
            sources = {k: v.copy() for k, v in sources.items()}
            for v in sources.values():
                v[silent] = 0.0
        mix = block_spectra(mix_wave, self.params)
        targets = {}
        for stem, source in sources.items():
            spectra = block_spectra(source, self.params)
            targets[stem] = np.abs(spectra)
            if self.psa:
                targets[f"{stem}:psa"] = psa_target(spectra, mix)
        return np.abs(mix), targets

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


def build(
    data_dir: str | Path,
    split: str,
    out_dir: str | Path,
    params: ModelParams,
    *,
    n_examples: int = 100,
    seconds: float = 8.0,
    snr_range: tuple[float, float] = (-10.0, 10.0),
    calls_range: tuple[int, int] = (1, 3),
    seed: int = 0,
    augment: bool = True,
) -> Path:
    """Write ``n_examples`` mixtures and the Spleeter CSV; return the CSV path.

    Example ``i`` is drawn from ``default_rng([seed, i])``: 1-3 calls (``calls_range``), SNR
    uniform in ``snr_range``, mix RMS uniform in -45..-25 dBFS, noise files rotating so that
    consecutive examples use different noise files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pool = load_pool(data_dir, split, params.sample_rate, params.frame_length)
    n_samples = int(round(seconds * params.sample_rate))
    csv_path = out / f"{split}.csv"
    with csv_path.open("w", newline="") as f_csv, (out / "mixtures.jsonl").open("w") as f_meta:
        writer = csv.writer(f_csv)
        writer.writerow(["mix_path", f"{ORCA_STEM}_path", f"{NOISE_STEM}_path", "duration"])
        for i in range(n_examples):
            rng = np.random.default_rng([seed, i])
            mixture = make_mixture(
                pool,
                rng,
                n_samples,
                float(rng.uniform(*snr_range)),
                n_calls=int(rng.integers(calls_range[0], calls_range[1] + 1)),
                augment=augment,
                level_db=float(rng.uniform(-45, -25)),
                noise_index=i % len(pool.noises),
            )
            folder = out / f"{i:05d}"
            folder.mkdir(exist_ok=True)
            paths = []
            for name, audio in (("mix", mixture.mix), *mixture.sources.items()):
                path = folder / f"{name}.flac"
                write_audio(path, audio[:, None], params.sample_rate)
                paths.append(path.relative_to(out).as_posix())
            writer.writerow([*paths, f"{seconds:.3f}"])
            f_meta.write(json.dumps({"index": i, **mixture.meta}) + "\n")
    info = {
        "data": str(data_dir),
        "split": split,
        "n_examples": n_examples,
        "seconds": seconds,
        "snr_range": snr_range,
        "calls_range": calls_range,
        "seed": seed,
        "augment": augment,
        "sample_rate": params.sample_rate,
        "calls": sorted(c.path for c in pool.calls),
        "noises": sorted(c.path for c in pool.noises),
    }
    (out / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    return csv_path


def _probe_overlap(a: NDArray[np.float64], b: NDArray[np.float64], rate: int) -> float:
    """Max normalised cross-correlation of the central second of the shorter signal."""
    if a.shape[0] > b.shape[0]:
        a, b = b, a
    n = min(a.shape[0], rate)
    probe = a[(a.shape[0] - n) // 2 :][:n]
    corr = signal.fftconvolve(b, probe[::-1], mode="valid")
    energy = np.convolve(b**2, np.ones(n), mode="valid")
    return float(np.max(np.abs(corr) / np.sqrt(energy * np.sum(probe**2) + 1e-20)))


def check_splits(data_dir: str | Path, rate: int = 8000, threshold: float = 0.5) -> int:
    """Print train/val file pairs whose audio overlaps; return how many exceed ``threshold``.

    Every val file's central second (8 kHz, high-passed at 150 Hz) is cross-correlated with
    every train file.
    """
    data = Path(data_dir)
    rows = [r for r in manifest_entries(data) if r["kind"] not in EXCLUDED_KINDS]
    sos = signal.butter(4, 150, btype="highpass", fs=rate, output="sos")
    audio = {}
    for row in rows:
        x, file_rate = read_audio(data / row["path"])
        audio[row["path"]] = signal.sosfiltfilt(sos, prepare_audio(x, file_rate, rate))
    train = [r["path"] for r in rows if r["split"] == "train"]
    val = [r["path"] for r in rows if r["split"] == "val"]
    scores = sorted(
        ((_probe_overlap(audio[v], audio[t], rate), v, t) for v in val for t in train),
        reverse=True,
    )
    for score, v, t in scores[:10]:
        print(f"{score:.3f}  {v}  {t}")
    return sum(score > threshold for score, _, _ in scores)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dataset", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write mixtures, references and a Spleeter CSV")
    b.add_argument("--data", type=Path, required=True, help="shared data folder (manifest.csv)")
    b.add_argument("--split", choices=("train", "val"), required=True)
    b.add_argument("--out", type=Path, required=True, help="output folder")
    b.add_argument("--params", type=Path, default=Path("configs/orca-small.json"))
    b.add_argument("--n-examples", type=int, default=100, help="mixtures (default 100)")
    b.add_argument("--seconds", type=float, default=8.0, help="mixture length, s (default 8)")
    b.add_argument("--snr-min", type=float, default=-10.0, help="dB (default -10)")
    b.add_argument("--snr-max", type=float, default=10.0, help="dB (default 10)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--no-augment", action="store_true", help="no resampling/gain/second noise")
    s = sub.add_parser("summary", help="files and seconds per split after grouping")
    s.add_argument("--data", type=Path, required=True)
    c = sub.add_parser("check-splits", help="content overlap between train and val (~3 min)")
    c.add_argument("--data", type=Path, required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "summary":
        rows = manifest_entries(args.data)
        for split in ("train", "val"):
            for role in ("orca-", "noise-"):
                chosen = [r for r in rows if r["split"] == split and r["kind"].startswith(role)]
                chosen = [r for r in chosen if r["kind"] not in EXCLUDED_KINDS]
                seconds = sum(float(r["seconds"]) for r in chosen)
                print(f"{split:5s} {role[:-1]:5s} {len(chosen):3d} files {seconds:8.1f} s")
        return 0
    if args.command == "check-splits":
        return 1 if check_splits(args.data) else 0
    started = time.perf_counter()
    params = load_params(args.params)
    csv_path = build(
        args.data,
        args.split,
        args.out,
        params,
        n_examples=args.n_examples,
        seconds=args.seconds,
        snr_range=(args.snr_min, args.snr_max),
        seed=args.seed,
        augment=not args.no_augment,
    )
    print(f"{csv_path} ({args.n_examples} mixtures, {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
