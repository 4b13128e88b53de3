"""Orca/noise mixtures from the shared recordings: preparation, call pools, SNR, mixing
(definitions in :mod:`tools.dataset`).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import soxr
from numpy.typing import NDArray
from scipy import signal

from streamsep.engine.audio import read_audio
from streamsep.errors import ConfigError
from tools.dataset.codec import aac_round_trip
from tools.dataset.colour import apply_colour, random_colour
from tools.dataset.splits import TEST_SPLIT, is_test
from tools.dataset.synthcalls import synthetic_call
from tools.dataset.synthnoise import DEFAULT_KINDS, KINDS, synthetic_noise

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
    ``train``; the held-out files of :mod:`tools.dataset.splits` get ``split = test`` (they are
    whole recordings); every row gets a ``recording`` key.
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
    for row in rows.values():
        if is_test(row["path"]):
            row["split"] = TEST_SPLIT
    test_recordings = {r["recording"] for r in rows.values() if r["split"] == TEST_SPLIT}
    for row in rows.values():
        if row["recording"] in test_recordings and row["split"] != TEST_SPLIT:
            raise ConfigError(f"{row['path']}: same recording as a test file, but not in test")
    return list(rows.values())


def load_pool(
    data_dir: str | Path,
    split: str,
    sample_rate: int,
    frame_samples: int = 1024,
    exclude: Sequence[str] = (),
) -> Pool:
    """Load and prepare the calls and noises of ``split`` (``train``, ``val`` or ``test``).

    ``exclude`` holds shell-style patterns (``fnmatch``) of manifest paths to leave out, for
    example ``calls/orcacnn_*`` or every file of a non-commercial source.

    Raises
    ------
    ConfigError
        If the manifest is missing, a pattern matches no file of the split, or the split has
        no call or no noise file.
    """
    data = Path(data_dir)
    calls: list[Clip] = []
    noises: list[Clip] = []
    rows = [
        r for r in manifest_entries(data) if r["split"] == split and r["kind"] not in EXCLUDED_KINDS
    ]
    for pattern in exclude:
        if not any(fnmatch.fnmatchcase(r["path"], pattern) for r in rows):
            raise ConfigError(f"exclude pattern {pattern!r} matches no file of split {split!r}")
    for row in rows:
        if any(fnmatch.fnmatchcase(row["path"], p) for p in exclude):
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


def _synthetic_clip(rng: np.random.Generator, rate: int, frame_samples: int) -> Clip:
    """A :func:`tools.dataset.synthcalls.synthetic_call` as a call clip (its active frames as a
    file's: within :data:`ACTIVE_THRESHOLD_DB` of the loudest)."""
    audio, kind = synthetic_call(rng, rate)
    active = active_frames(audio, frame_samples)
    return Clip(f"synthetic:{kind}", "orca-synthetic", "synthetic", audio, active, frame_samples)


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
    p_colour: float = 0.0,
    context_samples: int = 0,
    synthetic_kinds: Sequence[str] = DEFAULT_KINDS,
    p_aac: float = 0.0,
    aac_kbps: tuple[float, float] = (64.0, 160.0),
    p_synthetic_call: float = 0.0,
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
        Probability of adding one :mod:`tools.dataset.synthnoise` noise (kind uniform from
        ``synthetic_kinds``) to the noise at U(-10, 0) dB relative to it, before the SNR is set;
        0 draws nothing extra.
    p_colour : float
        Probability of colouring the noise (:func:`tools.dataset.colour.random_colour`: tilt,
        bands, low-pass, slow gain swing) after everything above, before the SNR is set; 0
        draws nothing extra.
    context_samples : int
        Noise only (the same noise, gains and augmentation) before the ``n_samples`` that hold
        the calls: the mixture is ``context_samples + n_samples`` long, its first
        ``context_samples`` without calls (the background a running noise floor has heard).
    synthetic_kinds : sequence of str
        The synthetic kinds ``p_synthetic`` draws from
        (:data:`tools.dataset.synthnoise.DEFAULT_KINDS`).
    p_aac : float
        Probability of an AAC round trip of the mix (:func:`tools.dataset.codec.aac_round_trip`,
        at U(``aac_kbps``) kbit/s), last, after the level is set; the coding error joins the
        noise stem (so ``mix`` stays the sum of the stems; the orca stem is the uncoded call).
        0 draws nothing extra; the draws come after all others, so a mixture differs from the
        same seed's without it only by the coding.
    p_synthetic_call : float
        Probability that each call is a :mod:`tools.dataset.synthcalls` sound (pulsed call,
        whistle or click train) instead of the chosen call file, placed like a file's crop;
        0 draws nothing extra.

    Returns
    -------
    Mixture
        Sources under :data:`ORCA_STEM` and :data:`NOISE_STEM`; ``mix`` is their sum.
    """
    rate = pool.sample_rate
    n_calls_region, n_samples = n_samples, n_samples + context_samples
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
        synth, kind = synthetic_noise(rng, n_samples, rate, kinds=synthetic_kinds)
        rel_db = float(rng.uniform(-10, 0))
        noise = noise + synth * np.float32(np.sqrt(np.mean(noise**2)) * 10 ** (rel_db / 20))
        noises.append({"synthetic": kind, "gain_db": rel_db})
    if p_colour > 0 and rng.random() < p_colour:
        colour = random_colour(rng, rate)
        noise = apply_colour(noise, rate, colour)
        noises.append({"colour": colour.as_dict()})
    orca = np.zeros(n_samples, np.float32)
    active = np.zeros(n_samples, bool)
    calls: list[dict[str, Any]] = []
    if with_call:
        for _ in range(100):  # retry until the placed crops keep an active frame
            chosen = rng.choice(len(pool.calls), size=min(n_calls, len(pool.calls)), replace=False)
            orca[:], active[:], calls = 0, False, []
            for i in chosen:
                crop = int(rng.uniform(*crop_seconds) * rate)
                clip = pool.calls[i]
                if p_synthetic_call > 0 and rng.random() < p_synthetic_call:
                    clip = _synthetic_clip(rng, rate, clip.frame_samples)
                placed, placed_active, meta = _place_call(
                    clip,
                    rng,
                    n_calls_region,
                    crop,
                    augment=augment,
                    allow_partial=allow_partial,
                    sample_rate=rate,
                    resample_range=call_resample,
                )
                orca[context_samples:] += placed
                active[context_samples:] |= placed_active
                calls.append(meta)
            if active.any():
                break
        noise = noise * np.float32(noise_gain_for_snr(orca, noise, active, snr))
    mix = orca + noise
    gain = 10 ** (level_db / 20) / max(float(np.sqrt(np.mean(mix.astype(np.float64) ** 2))), 1e-12)
    gain = min(gain, 0.98 / max(float(np.abs(mix).max()), 1e-12))
    orca, noise, mix = (np.asarray(s * gain, np.float32) for s in (orca, noise, mix))
    if p_aac > 0 and rng.random() < p_aac:
        kbps = float(rng.uniform(*aac_kbps))
        mix = aac_round_trip(mix, rate, kbps)
        noise = mix - orca
        noises.append({"aac_kbps": kbps})
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


def add_synthetic_arguments(parser: argparse.ArgumentParser, target: str) -> None:
    """Add ``--synthetic-noise P`` and ``--synthetic-kinds KIND ...`` to ``parser``.

    ``target`` says what ``P`` applies to in the help ("a block", "each mixture").
    """
    parser.add_argument(
        "--synthetic-noise",
        type=probability,
        default=0.0,
        metavar="P",
        help=f"probability of adding a synthetic noise to {target} (0; kinds: --synthetic-kinds)",
    )
    parser.add_argument(
        "--synthetic-kinds",
        nargs="+",
        choices=KINDS,
        default=list(DEFAULT_KINDS),
        metavar="KIND",
        help=f"synthetic noise kinds, each drawn equally often: {', '.join(KINDS)} "
        f"(default: {' '.join(DEFAULT_KINDS)})",
    )
