"""Command line: ``streamsep separate``, ``streamsep info``, plus ``stream``, ``listen``, ``keys``
(:mod:`streamsep.cli.net`), ``run``, ``devices``, ``check`` (:mod:`streamsep.cli.daemon`) and
``detect`` (:mod:`streamsep.cli.detect`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf

from streamsep.cli import daemon as daemon_cli
from streamsep.cli import detect as detect_cli  # events: streamsep detect
from streamsep.cli import net as netcli
from streamsep.cli import web as webcli  # issue 20: streamsep web
from streamsep.engine.batch import check_inputs, plan_outputs, separate_file
from streamsep.engine.offline import Separator, is_checkpoint_dir
from streamsep.engine.settings import StreamSettings
from streamsep.errors import StreamsepError
from streamsep.resources import DEFAULT_MODEL_NAME, data_path
from streamsep.version import __version__

_LOGGER = logging.getLogger("streamsep")

_OUTPUT_FORMATS = ("wav", "flac")
_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]"


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--params", "-p", metavar="P", help="Spleeter-style params JSON (default: bundled model)"
    )
    group.add_argument(
        "--model",
        "-m",
        metavar="M",
        help="model: .tflite file, Spleeter checkpoint directory, or 'passthrough' "
        "(default: bundled model)",
    )
    group.add_argument(
        "--model-threads",
        type=int,
        default=2,
        metavar="N",
        help="LiteRT interpreter threads (default: 2)",
    )
    group = parser.add_argument_group("stream")
    group.add_argument(
        "--stream-hop-frames",
        type=int,
        metavar="N",
        help="frames between model blocks (default: the model's, else T/4)",
    )
    group.add_argument(
        "--stream-lookahead-frames",
        type=int,
        metavar="N",
        help="future frames a mask may use; latency = frame_length-1 + N*frame_step samples "
        "(default: the model's, else T/2)",
    )
    group.add_argument(
        "--stream-window",
        choices=("hann", "boxcar"),
        default="hann",
        help="weighting of overlapping blocks (default: hann)",
    )
    group.add_argument(
        "--stream-segmentation",
        choices=("overlap", "spleeter"),
        default=None,
        help="'spleeter' = non-overlapping T-frame blocks as Spleeter (separate's default for a "
        "Spleeter checkpoint directory, unless hop/lookahead/window are given); "
        "'overlap' = overlapping Hann-weighted blocks (the default otherwise)",
    )


def _stream_settings(args: argparse.Namespace) -> StreamSettings:
    return StreamSettings(
        hop_frames=args.stream_hop_frames,
        lookahead_frames=args.stream_lookahead_frames,
        window=args.stream_window,
        segmentation=args.stream_segmentation or "overlap",
    )


def _make_separator(args: argparse.Namespace, *, offline: bool = False) -> Separator:
    """The separator for ``args``; ``offline`` (``separate``): a Spleeter checkpoint directory
    gets Spleeter's segmentation unless a stream option is given."""
    stream: StreamSettings | None = _stream_settings(args)
    untouched = offline and (
        args.stream_segmentation is None
        and args.stream_hop_frames is None
        and args.stream_lookahead_frames is None
        and args.stream_window == "hann"
    )
    if untouched and args.model is not None and is_checkpoint_dir(args.model):
        stream = None  # Separator's default for a checkpoint directory: Spleeter's segmentation
    return Separator(args.params, args.model, stream=stream, num_threads=args.model_threads)


def build_parser() -> argparse.ArgumentParser:
    """The ``streamsep`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="streamsep",
        description="Real-time streaming source separation for hydrophones "
        "(orca calls out of ocean noise).",
    )
    parser.add_argument("--version", action="version", version=f"streamsep {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_sep = sub.add_parser(
        "separate",
        help="separate audio files into stems",
        description="Separate WAV/FLAC files; writes OUTDIR/<input-name>/<stem>.<format>.",
    )
    p_sep.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files (WAV, FLAC, ...)")
    p_sep.add_argument("-o", "--output-dir", required=True, metavar="OUTDIR", help="output folder")
    p_sep.add_argument(
        "-f",
        "--format",
        choices=_OUTPUT_FORMATS,
        default="wav",
        help="output format (default: wav, 32-bit float; flac is 24-bit)",
    )
    p_sep.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model_args(p_sep)

    p_info = sub.add_parser(
        "info",
        help="show the model, its stems and the streaming latency",
        description="Load the model and print its params and the algorithmic latency.",
    )
    _add_model_args(p_info)
    netcli.add_parsers(sub, _add_model_args)  # stream, listen, keys
    daemon_cli.add_commands(sub)  # run, devices, check
    webcli.add_parser(sub)  # web (issue 20)
    detect_cli.add_parser(sub, _add_model_args)  # events: detect
    return parser


def _cmd_separate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    separator = _make_separator(args, offline=True)
    inputs = [Path(p) for p in args.inputs]
    # Everything is checked before any work: the inputs' headers, the output folders.
    check_inputs(inputs)
    stems = list(separator.params.instrument_list)
    plans = plan_outputs(inputs, Path(args.output_dir), stems, args.format)
    show = not args.no_progress and sys.stderr.isatty()
    for path, outputs in zip(inputs, plans, strict=True):
        total_seconds = sf.info(str(path)).duration
        with tqdm(
            total=total_seconds, unit="s", desc=path.name, disable=not show, bar_format=_BAR
        ) as bar:

            def progress(
                done: int, total: int, bar: tqdm = bar, seconds: float = total_seconds
            ) -> None:
                bar.n = seconds * done / max(total, 1)
                bar.refresh()

            report = separate_file(separator._engine, path, outputs, progress=progress)
        target = next(iter(outputs.values())).parent
        _LOGGER.info("%s -> %s/ (%s)", path, target, ", ".join(stems))
        note = f"; {report.summary()}" if report.summary() else ""
        print(f"{path} -> {target}/ ({', '.join(p.name for p in outputs.values())}){note}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    separator = _make_separator(args)
    p = separator.params
    engine = separator._engine
    print(f"model: {separator.model!r}")
    print(f"stems: {', '.join(p.instrument_list)}")
    print(
        f"sample_rate {p.sample_rate} Hz, frame_length {p.frame_length}, frame_step "
        f"{p.frame_step}, T {p.T}, F {p.F}, n_channels {p.n_channels}, highpass_hz {p.highpass_hz}"
    )
    if p.context == "floor":
        print("input: the mix and its running noise floor per bin (model.params.context floor)")
    print(f"hop_frames {engine.hop_frames}, lookahead_frames {engine.lookahead_frames}")
    print(
        f"latency: {engine.latency_samples} samples = {engine.latency_seconds:.3f} s "
        f"(frame_length - 1 + lookahead_frames * frame_step)"
    )
    bundled = sorted(f.name for f in data_path("").glob(f"{DEFAULT_MODEL_NAME}*"))
    print(f"bundled models in {data_path('')}: {', '.join(bundled) or 'none'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    handlers = {
        "separate": _cmd_separate,
        "info": _cmd_info,
        **netcli.handlers(_make_separator),
        **daemon_cli.handlers(),
        "web": webcli.cmd_web,  # issue 20
        **detect_cli.handlers(_make_separator),  # events: detect
    }
    try:
        return handlers[args.command](args)
    except StreamsepError as e:
        print(f"streamsep: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
