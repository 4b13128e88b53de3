"""``python -m tools.evaluate``: the command line (see :mod:`tools.evaluate`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from streamsep.engine.params import load_params
from streamsep.errors import ConfigError
from tools.dataset.mixtures import add_synthetic_arguments
from tools.evaluate.report import (
    _finite,
    report,
)
from tools.evaluate.run import (
    evaluate,
)

_LOGGER = logging.getLogger(__name__)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.evaluate", description="Evaluate models and baselines."
    )
    parser.add_argument("--params", type=Path, required=True, help="params JSON of the models")
    parser.add_argument("--model", type=Path, nargs="+", required=True, help=".tflite file(s)")
    parser.add_argument("--data", type=Path, required=True, help="shared data folder")
    parser.add_argument(
        "--split",
        default="val",
        choices=("train", "val", "test"),
        help="val: for choices; test: held-out recordings, report once per shipped model",
    )
    parser.add_argument("--snrs", type=float, nargs="+", default=[-5.0, 0.0, 5.0], help="dB")
    parser.add_argument("--n-per-snr", type=int, default=8, help="mixtures per SNR (8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=8.0, help="mixture length, s (8)")
    parser.add_argument("--level-db", type=float, default=-30.0, help="mix RMS, dBFS (-30)")
    parser.add_argument("--chunk", type=int, default=1024, help="streaming chunk, samples")
    parser.add_argument(
        "--lookaheads",
        type=int,
        nargs="*",
        default=[],
        help="extra streaming rows per lookahead_frames, for the latency curve",
    )
    parser.add_argument(
        "--trim-seconds",
        type=float,
        default=0.0,
        help="score only the mixtures' middle, without this many seconds at each end (0)",
    )
    add_synthetic_arguments(parser, "each mixture")
    parser.add_argument(
        "--aac-kbps",
        type=float,
        default=None,
        metavar="K",
        help="code every mixture as AAC at K kbit/s and decode it (as on Orcasound's HLS; "
        "the same mixtures as without it, coded)",
    )
    parser.add_argument("--no-labeled", action="store_true", help="skip the labelled clips")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    try:
        result = evaluate(
            params,
            args.model,
            args.data,
            split=args.split,
            snrs=args.snrs,
            n_per_snr=args.n_per_snr,
            seed=args.seed,
            seconds=args.seconds,
            level_db=args.level_db,
            chunk=args.chunk,
            labeled=not args.no_labeled,
            lookaheads=args.lookaheads,
            trim_seconds=args.trim_seconds,
            p_synthetic=args.synthetic_noise,
            synthetic_kinds=args.synthetic_kinds,
            aac_kbps=args.aac_kbps,
        )
    except ConfigError as exc:
        parser.error(str(exc))
    result["command"] = "python -m tools.evaluate " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    args.out.mkdir(parents=True, exist_ok=True)
    text = report(result)
    (args.out / "report.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(_finite(result), indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
