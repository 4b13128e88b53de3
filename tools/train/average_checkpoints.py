"""Average the weights of several checkpoints of one training run (checkpoint averaging).

Usage::

    python -m tools.train.average_checkpoints --params P.json --out runs/NAME-avg CKPT [CKPT ...]
    python -m tools.train --params P.json --out runs/NAME-avg --export-only

Each ``CKPT`` is a checkpoint folder written by :mod:`tools.train` (``last.weights.h5``; copy
``runs/NAME/ckpt`` aside at the steps you want to keep). The element-wise mean of every
variable, batch-norm statistics included, goes to ``OUT/ckpt/last.weights.h5``, with
``OUT/ckpt/sources.json`` naming the checkpoints and their steps; ``tools.train --export-only``
exports it. Averaging checkpoints of the same run near its end smooths the step-to-step noise of
the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streamsep.engine.params import ModelParams, load_params
from streamsep.errors import ConfigError, StreamsepError
from tools.train.loop import STATE_FILE, WEIGHTS_FILE

__all__ = ["average", "main"]


def average(params: ModelParams, checkpoints: Sequence[Path], out_dir: Path) -> Path:
    """Write the mean of ``checkpoints``' weights to ``out_dir/ckpt``; return the weights file."""
    from tools.unet import build_unet

    if not checkpoints:
        raise ConfigError("no checkpoint to average")
    model = build_unet(params)
    total: list[np.ndarray] | None = None
    sources = []
    for ckpt in checkpoints:
        weights = Path(ckpt) / WEIGHTS_FILE
        if not weights.is_file():
            raise ConfigError(f"checkpoint weights not found: {weights}")
        model.load_weights(weights)
        values = [np.asarray(w, np.float64) for w in model.get_weights()]
        total = values if total is None else [t + v for t, v in zip(total, values, strict=True)]
        state_file = Path(ckpt) / STATE_FILE
        step = json.loads(state_file.read_text())["step"] if state_file.is_file() else None
        sources.append({"checkpoint": str(ckpt), "step": step})
    assert total is not None
    model.set_weights([(t / len(checkpoints)).astype(np.float32) for t in total])
    target = out_dir / "ckpt"
    target.mkdir(parents=True, exist_ok=True)
    model.save_weights(target / WEIGHTS_FILE)
    (target / "sources.json").write_text(json.dumps(sources, indent=2) + "\n")
    return target / WEIGHTS_FILE


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(
        prog="python -m tools.train.average_checkpoints", description="Average checkpoint weights."
    )
    parser.add_argument("--params", type=Path, required=True, help="params JSON of the run")
    parser.add_argument("--out", type=Path, required=True, help="run folder to write")
    parser.add_argument("checkpoints", type=Path, nargs="+", help="checkpoint folders")
    args = parser.parse_args(argv)
    try:
        print(average(load_params(args.params), args.checkpoints, args.out))
    except StreamsepError as e:
        raise SystemExit(f"error: {e}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
