"""Write a mixture data set to disk (``build``) and look for content shared between splits
(``check_splits``).
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from streamsep.engine.audio import read_audio, write_audio
from streamsep.engine.params import ModelParams
from tools.dataset.mixtures import (
    EXCLUDED_KINDS,
    NOISE_STEM,
    ORCA_STEM,
    load_pool,
    make_mixture,
    manifest_entries,
    prepare_audio,
)

_LOGGER = logging.getLogger(__name__)


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
    """Print file pairs of different splits whose audio overlaps; return how many exceed
    ``threshold``.

    Every val and test file's central second (8 kHz, high-passed at 150 Hz) is cross-correlated
    with every file of the splits before it (val with train; test with train and val).
    """
    data = Path(data_dir)
    rows = [r for r in manifest_entries(data) if r["kind"] not in EXCLUDED_KINDS]
    sos = signal.butter(4, 150, btype="highpass", fs=rate, output="sos")
    audio = {}
    for row in rows:
        x, file_rate = read_audio(data / row["path"])
        audio[row["path"]] = signal.sosfiltfilt(sos, prepare_audio(x, file_rate, rate))
    by_split = {s: [r["path"] for r in rows if r["split"] == s] for s in ("train", "val", "test")}
    pairs = [(v, t) for v in by_split["val"] for t in by_split["train"]]
    pairs += [(v, t) for v in by_split["test"] for t in by_split["train"] + by_split["val"]]
    scores = sorted(
        ((_probe_overlap(audio[v], audio[t], rate), v, t) for v, t in pairs), reverse=True
    )
    for score, v, t in scores[:10]:
        print(f"{score:.3f}  {v}  {t}")
    return sum(score > threshold for score, _, _ in scores)
