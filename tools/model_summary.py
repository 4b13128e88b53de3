"""The documented output of the bundled model on the bundled recording (model card, tests).

    python -m tools.model_summary [--write]
    python -m tools.model_summary --params P.json --model M.tflite   # a candidate, not written

Separates ``tests/fixtures/audio/acoustic-separation_20181202_25sec.flac`` with the default
``Separator()`` (bundled params and float32 model, default streaming settings) and, with
``--write``, the bundled int8 model too, and reports per stem its RMS level (dBFS) over the
whole file and per second. ``--write`` stores the result in
``tests/fixtures/models/default_model_expected.json``, which ``tests/test_default_model.py``
checks the installed model against.
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

from streamsep.engine.audio import read_audio
from streamsep.engine.offline import Separator
from streamsep.resources import DEFAULT_MODEL_NAME, data_path, default_model_paths

__all__ = ["FIXTURE", "EXPECTED", "rms_db", "summarize", "main"]

ROOT: Final = Path(__file__).resolve().parents[1]
FIXTURE: Final = ROOT / "tests" / "fixtures" / "audio" / "acoustic-separation_20181202_25sec.flac"
EXPECTED: Final = ROOT / "tests" / "fixtures" / "models" / "default_model_expected.json"


def rms_db(x: NDArray[np.floating]) -> float:
    """RMS level of ``x``, dBFS (mean square over every sample; silence reads -200)."""
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def summarize(separator: Separator, path: Path = FIXTURE) -> dict[str, Any]:
    """RMS (dBFS) of the input and of each stem, whole file and per second of ``path``."""
    audio, rate = read_audio(path)
    stems = {"mix": audio, **separator.separate(audio, rate)}
    return {
        "file": path.name,
        "sample_rate": rate,
        "rms_db": {k: round(rms_db(v), 3) for k, v in stems.items()},
        "rms_db_per_second": {
            k: [round(rms_db(v[i : i + rate]), 3) for i in range(0, v.shape[0] - rate + 1, rate)]
            for k, v in stems.items()
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tools.model_summary", description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {EXPECTED.name}")
    parser.add_argument("--params", type=Path, help="a candidate's params JSON (with --model)")
    parser.add_argument("--model", type=Path, help="a candidate's .tflite (with --params)")
    args = parser.parse_args(argv)
    if (args.params is None) != (args.model is None):
        parser.error("--params and --model go together")
    if args.model is not None:
        if args.write:
            parser.error("--write documents the bundled model: not with --model")
        result = {"model": args.model.name, **summarize(Separator(args.params, args.model))}
        print(json.dumps(result, indent=1))
        return 0
    params, model = default_model_paths()
    result = {"model": Path(model).name, **summarize(Separator())}
    int8 = data_path(f"{DEFAULT_MODEL_NAME}_int8.tflite")
    if int8.is_file():
        result["int8"] = {"model": int8.name, **summarize(Separator(params, int8))}
    text = json.dumps(result, indent=1) + "\n"
    if args.write:
        EXPECTED.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
