"""``python -m tools.dataset``: build, summary, check-splits."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from streamsep.engine.params import load_params
from tools.dataset.build import (
    build,
    check_splits,
)
from tools.dataset.mixtures import (
    EXCLUDED_KINDS,
    manifest_entries,
)


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
