"""Pack the training audio into the working tree for a run on the accelerator machine.

Usage::

    python -m tools.train.pack --data ../shared/data --params streamsep/data/orca_unet.json \\
        --out .pack/data [--max-mib 48]

Writes the ``train`` and ``val`` call and noise files of ``manifest.csv`` (never the held-out
``test`` split, :mod:`tools.dataset.splits`) as mono 16-bit FLAC at their own rate capped at the
model's, with a ``manifest.csv`` of those rows, so that ``python -m tools.train --data
.pack/data`` reads them as it reads ``../shared/data``. Mono and the rate cap change nothing the
training sees (:func:`tools.dataset.mixtures.prepare_audio` averages to mono and resamples to
the model rate anyway). ``.pack/`` is ignored by git; name it in the device tool's ``carry``.
Fails if the pack would exceed ``--max-mib`` (the device tool carries 64 MiB in all, the working
tree and wheels included).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from streamsep.engine.audio import read_audio
from streamsep.engine.params import load_params
from streamsep.errors import StreamsepError
from tools.dataset.mixtures import EXCLUDED_KINDS, manifest_entries

__all__ = ["pack", "main"]

_LOGGER = logging.getLogger(__name__)


def pack(data_dir: Path, out_dir: Path, max_rate: int, max_bytes: int) -> int:
    """Write the pack; return its size in bytes.

    Raises
    ------
    StreamsepError
        As soon as the pack exceeds ``max_bytes`` (the partial pack is left, without a manifest).
    """
    rows = [
        r
        for r in manifest_entries(data_dir)
        if r["split"] in ("train", "val") and r["kind"] not in EXCLUDED_KINDS
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    total = 0
    for row in rows:
        audio, rate = read_audio(data_dir / row["path"])
        mono = audio.mean(axis=1, dtype=np.float64).astype(np.float32)
        if rate > max_rate:
            mono = soxr.resample(mono, rate, max_rate, quality="HQ").astype(np.float32)
            rate = max_rate
        peak = float(np.abs(mono).max()) if mono.size else 0.0
        if peak > 1.0:  # keep 16-bit FLAC from clipping: level does not matter to mixing
            mono /= peak
        target = out_dir / row["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(target), mono, rate, subtype="PCM_16")
        total += target.stat().st_size
        if total > max_bytes:
            raise StreamsepError(
                f"pack is over --max-mib {max_bytes / 2**20:g} at {row['path']} "
                f"({total / 2**20:.1f} MiB so far)"
            )
    fields = ["path", "seconds", "sample_rate", "channels", "kind", "split"]
    with (out_dir / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "channels": "1"})
    _LOGGER.info("packed %d files, %.1f MiB, into %s", len(rows), total / 2**20, out_dir)
    return total


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tools.train.pack", description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--params", type=Path, required=True, help="params JSON (model rate)")
    parser.add_argument("--out", type=Path, default=Path(".pack/data"), help="pack folder")
    parser.add_argument("--max-mib", type=float, default=48.0, help="size limit, MiB")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        params = load_params(args.params)
        pack(args.data, args.out, params.sample_rate, int(args.max_mib * 2**20))
    except StreamsepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
