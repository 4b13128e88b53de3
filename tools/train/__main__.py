"""``python -m tools.train``: the command line (see :mod:`tools.train`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from streamsep.engine.params import load_params
from streamsep.errors import ConfigError, StreamsepError
from tools.dataset.blocks import BlockGenerator, CsvBlockGenerator
from tools.dataset.mixtures import (
    NOISE_STEM,
    ORCA_STEM,
    add_synthetic_arguments,
    load_pool,
    probability,
)
from tools.train.loop import (
    DEFAULT_DATA,
    VALIDATION_SEED_OFFSET,
    TrainSettings,
    export_checkpoint,
    train,
    validation_batches,
)
from tools.train.losses import LOSSES

_LOGGER = logging.getLogger(__name__)


def _parse_filters(text: str) -> list[int]:
    try:
        return [int(f) for f in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _backend_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "jax"),
        default=os.environ.get("KERAS_BACKEND", "tensorflow"),
        help="Keras backend (default: $KERAS_BACKEND, else tensorflow). jax trains on an "
        "accelerator when one is there; exporting to TFLite needs tensorflow (--export-only)",
    )
    return parser


def _build_parser() -> argparse.ArgumentParser:
    from tools.export_tflite import PRECISIONS  # imports Keras: only once the CLI runs

    parser = argparse.ArgumentParser(
        prog="python -m tools.train",
        description="Train a Spleeter U-Net on orca mixtures.",
        parents=[_backend_parser()],
    )
    parser.add_argument("--params", type=Path, required=True, help="Spleeter params JSON")
    parser.add_argument("--out", type=Path, required=True, help="run folder, e.g. runs/NAME")
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--minutes", type=float, help="training time limit in minutes")
    limit.add_argument("--steps", type=int, help="total steps (across resumes)")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help=f"shared data (default {DEFAULT_DATA})"
    )
    parser.add_argument("--train-csv", type=Path, help="train on a built dataset's CSV instead")
    parser.add_argument("--val-csv", type=Path, help="validate on a built dataset's CSV")
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave out training files whose manifest path matches GLOB (repeatable), e.g. "
        "'calls/orcacnn_*'",
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT/ckpt")
    parser.add_argument("--seed", type=int, default=3, help="seed (default 3)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: params or 8")
    parser.add_argument(
        "--lr", type=float, help="Adam learning rate (default: params learning_rate or 1e-3)"
    )
    parser.add_argument(
        "--filters", type=_parse_filters, help="conv_n_filters override, e.g. 4,8,16,32,64,128"
    )
    parser.add_argument(
        "--loss",
        choices=LOSSES,
        default="l1",
        help="l1 (Spleeter's), l1-level (per-example level-normalised) or sdr (negative "
        "spectral SDR of the ratio-masked output vs phase-sensitive targets); default l1",
    )
    parser.add_argument(
        "--edge-silence",
        type=float,
        default=0.0,
        help="probability of a block starting or ending in digital silence, as at a stream's "
        "start and end (0)",
    )
    parser.add_argument(
        "--noise-augment",
        action="store_true",
        help="speed each noise excerpt up or down by 0.8-1.25x and reverse half of them",
    )
    parser.add_argument(
        "--call-resample",
        type=float,
        nargs=2,
        default=(0.97, 1.03),
        metavar=("LO", "HI"),
        help="range of the calls' resampling factor (0.97 1.03)",
    )
    add_synthetic_arguments(parser, "a block")
    parser.add_argument(
        "--aac",
        type=probability,
        default=0.0,
        metavar="P",
        help="probability of an AAC round trip of a block's mix, as on Orcasound's HLS (0)",
    )
    parser.add_argument(
        "--aac-kbps",
        type=float,
        nargs=2,
        default=(64.0, 160.0),
        metavar=("LO", "HI"),
        help="range of the AAC bit rate, kbit/s (64 160)",
    )
    parser.add_argument(
        "--synthetic-calls",
        type=probability,
        default=0.0,
        metavar="P",
        help="probability that a call is a synthetic orca sound (pulsed call, whistle or click "
        "train, tools/dataset/synthcalls.py) instead of a call file (0)",
    )
    parser.add_argument(
        "--noise-colour",
        type=probability,
        default=0.0,
        metavar="P",
        help="probability of colouring a block's noise: spectral tilt, bands, low-pass, slow "
        "gain swing (tools/dataset/colour.py) (0)",
    )
    parser.add_argument(
        "--init-weights",
        type=Path,
        help="start from these weights (OUT/ckpt/last.weights.h5 of a run with the same params)",
    )
    parser.add_argument(
        "--freeze-batch-norm",
        action="store_true",
        help="batch norms in inference mode, not trained (weights from tools.train.from_tflite)",
    )
    parser.add_argument("--snr-min", type=float, default=-10.0, help="input SNR, dB (-10)")
    parser.add_argument("--snr-max", type=float, default=10.0, help="input SNR, dB (10)")
    parser.add_argument("--val-batches", type=int, default=6, help="validation batches (6)")
    parser.add_argument("--log-every", type=int, default=10, help="steps per train log (10)")
    parser.add_argument("--eval-every", type=int, default=50, help="steps per validation (50)")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps (100)")
    parser.add_argument(
        "--keep-every", type=int, help="keep a copy of the checkpoint every N steps (OUT/ckpt-N)"
    )
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow threads (2)")
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="float32", help="export precision (float32)"
    )
    parser.add_argument("--name", default="orca_unet", help="export file stem (orca_unet)")
    parser.add_argument("--export-only", action="store_true", help="export OUT/ckpt and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before the parser imports Keras
    backend, _ = _backend_parser().parse_known_args(argv)
    os.environ["KERAS_BACKEND"] = backend.backend  # before Keras is first imported
    parser = _build_parser()
    args = parser.parse_args(argv)
    for flag, (lo, hi) in (("--call-resample", args.call_resample), ("--aac-kbps", args.aac_kbps)):
        if not 0 < lo <= hi:
            parser.error(f"{flag}: need 0 < LO <= HI, got {lo} {hi}")
    if args.keep_every is not None and args.keep_every < 1:
        parser.error(f"--keep-every: need a step count >= 1, got {args.keep_every}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        params = load_params(args.params)
        if args.filters is not None:
            from tools.export_tflite import with_overrides

            params = with_overrides(params, filters=args.filters)
        if params.instrument_list != (ORCA_STEM, NOISE_STEM):
            raise ConfigError(
                f"expected instrument_list {[ORCA_STEM, NOISE_STEM]}, "
                f"got {list(params.instrument_list)}"
            )
        batch_size = args.batch_size or int(params.extra.get("batch_size", 8))
        learning_rate = args.lr or float(params.extra.get("learning_rate", 1e-3))
        generator: BlockGenerator
        if params.context == "floor" and (args.train_csv or args.val_csv):
            raise ConfigError(
                '--train-csv/--val-csv: a model with model.params.context "floor" needs '
                "mixtures made on the fly (a built dataset's rows carry no noise context)"
            )
        if args.exclude and args.train_csv is not None:
            raise ConfigError("--exclude selects manifest files: it does not apply to --train-csv")
        if args.train_csv is not None:
            if args.loss == "sdr":
                raise ConfigError("--loss sdr needs mixtures made on the fly (not --train-csv)")
            generator = CsvBlockGenerator(
                args.train_csv, params, seed=args.seed, batch_size=batch_size
            )
        else:
            pool = load_pool(
                args.data, "train", params.sample_rate, params.frame_length, args.exclude
            )
            generator = BlockGenerator(
                pool,
                params,
                seed=args.seed,
                batch_size=batch_size,
                snr_range=(args.snr_min, args.snr_max),
                psa=args.loss == "sdr",
                p_edge_silence=args.edge_silence,
                noise_augment=args.noise_augment,
                call_resample=tuple(args.call_resample),
                p_synthetic=args.synthetic_noise,
                p_colour=args.noise_colour,
                synthetic_kinds=args.synthetic_kinds,
                p_aac=args.aac,
                aac_kbps=tuple(args.aac_kbps),
                p_synthetic_call=args.synthetic_calls,
            )
        if args.backend == "tensorflow":  # after every check that needs no TensorFlow
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        if args.export_only:
            for path in export_checkpoint(
                params,
                args.out,
                name=args.name,
                precision=args.precision,
                representative=generator,
            ):
                print(path)
            return 0
        settings = TrainSettings(
            out_dir=args.out,
            steps=args.steps,
            minutes=args.minutes,
            seed=args.seed,
            learning_rate=learning_rate,
            loss=args.loss,
            log_every=args.log_every,
            eval_every=args.eval_every,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
            init_weights=args.init_weights,
            freeze_batch_norm=args.freeze_batch_norm,
            keep_every=args.keep_every,
            export_name=args.name,
            precision=args.precision,
            progress=not args.no_progress,
        )
        if args.val_csv is not None:
            val_gen = CsvBlockGenerator(
                args.val_csv,
                params,
                seed=args.seed + VALIDATION_SEED_OFFSET,
                batch_size=batch_size,
                level_range=(0.0, 0.0),
            )
            val_set = [val_gen.batch(i) for i in range(args.val_batches)]
        else:
            val_set = validation_batches(
                args.data,
                params,
                args.seed,
                args.val_batches,
                batch_size,
                psa=args.loss == "sdr",
            )
    except StreamsepError as e:
        raise SystemExit(f"error: {e}") from None
    summary = train(params, generator, val_set, settings)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
