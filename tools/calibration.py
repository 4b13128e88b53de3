"""Real spectrogram blocks for int8 calibration and for checking quantised models.

``real_blocks(params, n, data_dir)`` cuts ``n`` model input blocks ``(T, F, n_channels)`` (STFT
magnitudes, as the engine computes them) out of real recordings in ``data_dir`` (the shared
data set, ``/work/shared/data``): the ``split`` rows of ``manifest.csv`` of kinds ``orca-call*``,
``noise-*`` and ``real-mixture``, DC and sub-20 Hz drift removed (4th-order Butterworth
high-pass, both directions), resampled to the model rate, each block at a level drawn from
-40..-1 dBFS peak so the calibration covers quiet and loud inputs; channel ``c`` reads another
recording than channel 0. Never random noise: activation ranges of a real U-Net on real
spectrograms differ from those on ``|N(0, 1)|`` blocks.

``python -m tools.calibration --params P --reference R.tflite C.tflite...`` compares quantised
conversions with the float32 one on real blocks (:func:`compare_models`).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy.signal import butter, sosfiltfilt

from streamsep.engine.audio import read_audio, resample
from streamsep.engine.params import ModelParams
from streamsep.engine.spectral import stft
from streamsep.errors import ConfigError

__all__ = ["DEFAULT_DATA_DIR", "recordings", "real_blocks", "compare_models", "main"]

_LOGGER = logging.getLogger(__name__)

DEFAULT_DATA_DIR: Final = Path("/work/shared/data")
_KINDS: Final = ("orca-call", "noise-", "real-mixture")
_DRIFT_HZ: Final = 20.0


def recordings(data_dir: str | Path, split: str = "train") -> list[Path]:
    """Files of ``split`` in ``data_dir/manifest.csv`` whose kind is a call, noise or mixture."""
    directory = Path(data_dir)
    manifest = directory / "manifest.csv"
    if not manifest.is_file():
        raise ConfigError(f"calibration data: {manifest} not found")
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f))
    files = [
        directory / row["path"]
        for row in rows
        if row.get("split") == split and row.get("kind", "").startswith(_KINDS)
    ]
    files = [f for f in files if f.is_file()]
    if not files:
        raise ConfigError(f"calibration data: no {split} recordings listed in {manifest}")
    return sorted(files)


def _clean(path: Path, rate: int) -> NDArray[np.float32]:
    """Mono, at ``rate``, DC and sub-20 Hz drift removed, peak 1 (zeros if silent)."""
    audio, file_rate = read_audio(path)
    mono = audio.mean(axis=1).astype(np.float64)
    sos = butter(4, _DRIFT_HZ, btype="highpass", fs=file_rate, output="sos")
    mono = sosfiltfilt(sos, mono - mono.mean())
    x = resample(mono[:, None].astype(np.float32), file_rate, rate)[:, 0]
    peak = float(np.abs(x).max()) if x.size else 0.0
    return (x / peak).astype(np.float32) if peak > 0 else x


def real_blocks(
    params: ModelParams, n: int, data_dir: str | Path = DEFAULT_DATA_DIR, *, seed: int = 0
) -> list[NDArray[np.float32]]:
    """``n`` magnitude blocks ``(T, F, n_channels)`` float32 from real recordings.

    Raises
    ------
    ConfigError
        If ``data_dir`` has no manifest or no usable recordings.
    """
    rng = np.random.default_rng(seed)
    files = recordings(data_dir)
    rng.shuffle(files)  # type: ignore[arg-type]
    rate = params.sample_rate
    skip = params.frame_length // params.frame_step  # stft's leading half-empty frames
    block_samples = params.frame_length + (params.T + skip - 1) * params.frame_step
    # One long stream of the recordings, each channel starting at another file.
    stream = np.concatenate([_clean(f, rate) for f in files])
    if stream.shape[0] < block_samples:
        stream = np.tile(stream, block_samples // max(stream.shape[0], 1) + 1)
    _LOGGER.info("calibration: %d recordings, %.0f s", len(files), stream.shape[0] / rate)
    blocks = []
    for _ in range(n):
        channels = []
        for _c in range(params.n_channels):
            start = int(rng.integers(0, stream.shape[0] - block_samples + 1))
            channels.append(stream[start : start + block_samples])
        x = np.stack(channels, axis=1)
        x *= 10 ** (rng.uniform(-40.0, -1.0) / 20) / max(float(np.abs(x).max()), 1e-12)
        spectrum = stft(x, params.frame_length, params.frame_step)
        blocks.append(np.abs(spectrum[skip : skip + params.T, : params.F]).astype(np.float32))
    return blocks


def compare_models(
    params: ModelParams, reference: Path, candidates: Sequence[Path], n_blocks: int, data_dir: Path
) -> list[dict[str, object]]:
    """Masked-output error of each candidate ``.tflite`` against ``reference`` on real blocks,
    and its CPU seconds per block (1 LiteRT thread, ratio masks included).

    The error is ``10 log10(sum ||(m_cand - m_ref) X||^2 / sum ||m_ref X||^2)`` per stem, with
    ``m`` the ratio masks and ``X`` the block magnitudes: the relative error of the separated
    spectrogram (below ``F``), which the inverse STFT carries into the waveform.
    """
    from streamsep.engine.model import TFLiteModel

    blocks = real_blocks(params, n_blocks, data_dir, seed=7)
    ref = TFLiteModel(reference, params, num_threads=2)
    wanted = [ref.predict(b) for b in blocks]
    rows: list[dict[str, object]] = []
    for path in candidates:
        model = TFLiteModel(path, params, num_threads=1)
        model.predict(blocks[0])
        started = time.process_time()
        got = [model.predict(b) for b in blocks]
        cpu = (time.process_time() - started) / len(blocks)
        errors = []
        for s in range(params.n_stems):
            pairs = zip(got, wanted, blocks, strict=True)
            num = sum(_energy((g[s] - w[s]) * b) for g, w, b in pairs)
            den = sum(_energy(w[s] * b) for w, b in zip(wanted, blocks, strict=True))
            errors.append(round(10 * np.log10(num / den), 1) if num > 0 else float("-inf"))
        rows.append({"model": str(path), "cpu_seconds_per_block": round(cpu, 3), "rel_db": errors})
    return rows


def _energy(x: NDArray[np.float32]) -> float:
    return float(np.sum(np.square(x, dtype=np.float64)))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.calibration --params P --reference R.tflite CANDIDATE.tflite...``."""
    from streamsep.engine.params import load_params

    parser = argparse.ArgumentParser(prog="python -m tools.calibration", description=__doc__)
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--reference", required=True, type=Path, help="float32 .tflite")
    parser.add_argument("candidates", nargs="+", type=Path, help=".tflite files to compare")
    parser.add_argument("--blocks", type=int, default=4, help="real blocks to compare on")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    params = load_params(args.params)
    for row in compare_models(params, args.reference, args.candidates, args.blocks, args.data):
        errors = " / ".join(f"{e:.1f}" for e in row["rel_db"])  # type: ignore[attr-defined]
        print(
            f"{row['model']}: {row['cpu_seconds_per_block']:.3f} CPU s per block (1 thread), "
            f"masked output vs reference {errors} dB per stem"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
