"""What a model's orca stem keeps of real recordings that have no references.

    python -m tools.evaluate.recordings FILE [FILE ...] \\
        [--candidate NAME PARAMS.json MODEL.tflite ...] [--out results.json]

Separates each recording with the bundled model and each candidate (default streaming
settings, ``Separator.separate``) and prints, per recording and model, the orca stem's level
(dBFS) over the whole file and per second in two bands: below 500 Hz and 0.5-15 kHz (the
detector's band), beside the mix's (the mix first through the model's 20 Hz DC-blocking
high-pass, as the engine sees it). A candidate that moves what the bundled model keeps into the
noise stem shows as seconds where its level drops. Used for the bundled model's ship checks
(``docs/model-card.md``): the reference recording ``acoustic-separation_20181202_25sec`` and
``mixtures/orcacnn_long_sample_01`` (calls and click trains throughout).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy.signal import butter, sosfiltfilt

from streamsep.engine.audio import read_audio
from streamsep.engine.highpass import HighPass
from streamsep.engine.offline import Separator
from streamsep.errors import StreamsepError
from tools.model_summary import rms_db

__all__ = ["BANDS_HZ", "band_levels", "main"]

BANDS_HZ: Final = {"below_500": (0.0, 500.0), "500_15000": (500.0, 15000.0)}
"""Band name -> (low, high) Hz; 0 low: a low-pass."""


def _band(x: NDArray[np.floating], rate: int, low: float, high: float) -> NDArray[np.float64]:
    high = min(high, 0.95 * rate / 2)
    if low <= 0:
        sos = butter(4, high, "lowpass", fs=rate, output="sos")
    else:
        sos = butter(4, [low, high], "bandpass", fs=rate, output="sos")
    return np.asarray(sosfiltfilt(sos, x.astype(np.float64)))


def band_levels(x: NDArray[np.floating], rate: int) -> dict[str, dict[str, Any]]:
    """Per band of :data:`BANDS_HZ`: ``whole`` (dBFS) and ``per_second`` (dBFS, whole seconds)
    of mono ``x`` at ``rate`` Hz (zero-phase 4th-order Butterworth filters)."""
    out = {}
    for name, (low, high) in BANDS_HZ.items():
        y = _band(x, rate, low, high)
        out[name] = {
            "whole": round(rms_db(y), 2),
            "per_second": [
                round(rms_db(y[i : i + rate]), 1) for i in range(0, len(y) - rate + 1, rate)
            ],
        }
    return out


def _measure(files: Sequence[Path], models: dict[str, Separator]) -> list[dict[str, Any]]:
    results = []
    for path in files:
        audio, rate = read_audio(path)
        cutoff = models["bundled"].params.highpass_hz
        mix = HighPass(cutoff, rate, 1).process(audio[:, :1])[:, 0] if cutoff else audio[:, 0]
        rows = {"mix": band_levels(mix, rate)}
        for name, separator in models.items():
            orca = separator.separate(audio, rate)[separator.params.instrument_list[0]][:, 0]
            rows[name] = band_levels(orca, rate)
        results.append({"file": path.name, "sample_rate": rate, "seconds": len(mix) / rate,
                        "orca_stem": rows})  # fmt: skip
    return results


def _table(result: dict[str, Any]) -> str:
    lines = [f"{result['file']} ({result['seconds']:.1f} s): orca stem dBFS (mix: the input)"]
    for band in BANDS_HZ:
        lines.append(f"  {band} Hz: whole file | per second")
        for name, levels in result["orca_stem"].items():
            per = " ".join(f"{v:4.0f}" for v in levels[band]["per_second"])
            lines.append(f"    {name:>14s} {levels[band]['whole']:7.2f} | {per}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.evaluate.recordings", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="audio recordings")
    parser.add_argument(
        "--candidate", nargs=3, action="append", default=[],
        metavar=("NAME", "PARAMS", "MODEL"), help="a candidate model (repeatable)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="also write the numbers as JSON here")
    args = parser.parse_args(argv)
    for path in args.files:
        if not path.is_file():
            parser.error(f"recording not found: {path}")
    names = ["bundled"] + [c[0] for c in args.candidate]
    if len(set(names)) != len(names) or "mix" in names:
        parser.error(f"--candidate names must differ from each other, 'bundled' and 'mix': {names}")
    try:
        models = {"bundled": Separator()}
        for name, params, model in args.candidate:
            models[name] = Separator(Path(params), Path(model))
    except StreamsepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = _measure(args.files, models)
    for result in results:
        print(_table(result))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
