"""Write the tiny random-weight U-Net models used by the runtime tests.

Usage::

    python -m tools.make_fixtures [--out tests/fixtures/models]

Writes ``tiny_unet.{tflite,json}`` (stereo, ``mask_extension`` "zeros") and
``tiny_unet_mono.{tflite,json}`` (mono, "average"): 8 kHz, frame_length 256, frame_step 64,
T=16, F=64, filters 2-4-4-8-8-8, ELU activations, seed 0, float32. T=16 is not a multiple of 64,
so the model pads time to 64 inside the graph (see :mod:`tools.unet`). The output is
deterministic for a given TensorFlow version; CI regenerates it with this script.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from streamsep.engine.params import ModelParams

from .export_tflite import export, randomize_weights
from .unet import build_unet

__all__ = ["FIXTURES", "make_fixtures", "main"]

_DEFAULT_OUT: Final = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"
_SEED: Final = 0


def _tiny(n_channels: int, mask_extension: str) -> ModelParams:
    """8 kHz, 256/64, T=16, F=64, filters 2-4-4-8-8-8, ELU: the tiny U-Net's params."""
    return ModelParams(
        instrument_list=("orca_vocals", "noise"),
        sample_rate=8000,
        frame_length=256,
        frame_step=64,
        T=16,
        F=64,
        n_channels=n_channels,
        mask_extension=mask_extension,
        separation_exponent=2.0,
        model={
            "type": "unet.unet",
            "params": {
                "conv_n_filters": [2, 4, 4, 8, 8, 8],
                "conv_activation": "ELU",
                "deconv_activation": "ELU",
            },
        },
    )


FIXTURES: Final = {
    "tiny_unet": _tiny(n_channels=2, mask_extension="zeros"),
    "tiny_unet_mono": _tiny(n_channels=1, mask_extension="average"),
}
"""Fixture name -> params."""


def make_fixtures(out_dir: str | Path = _DEFAULT_OUT) -> list[Path]:
    """Export every model of :data:`FIXTURES` into ``out_dir``; return the files written."""
    written: list[Path] = []
    for name, params in FIXTURES.items():
        model = build_unet(params)
        randomize_weights(model, _SEED)
        written.extend(export(model, params, out_dir, precision="float32", name=name))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.make_fixtures", description="Write the tiny test models."
    )
    parser.add_argument(
        "--out", type=Path, default=_DEFAULT_OUT, help="output directory (default %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    for path in make_fixtures(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
