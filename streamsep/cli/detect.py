"""Command-line layer of ``streamsep detect``: the daemon's event detector over audio files
and folders (:mod:`streamsep.events.offline`), one CSV row per event."""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, TextIO

from streamsep.daemon.config import load_config
from streamsep.errors import StreamsepError
from streamsep.events.detector import DetectorSettings
from streamsep.events.offline import CSV_FIELDS, audio_files, detect_file
from streamsep.sources.file import file_info

__all__ = ["add_parser", "handlers"]

_LOGGER = logging.getLogger(__name__)

_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]"

Handler = Callable[[argparse.Namespace], int]


def add_parser(sub: Any, add_model_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``detect`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "detect",
        help="find orca activity events in audio files (offline; the daemon's detector)",
        description="Separate each file (folders: every audio file under them) through the "
        "daemon's pipeline and run the event detector; writes one CSV row per event.",
    )  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files or folders")
    p.add_argument("-o", "--out", metavar="CSV", help="write the events here (default: stdout)")
    p.add_argument(
        "-c", "--config", metavar="TOML",
        help="take the detector settings, stems and model from a daemon config's [events], "
        "[model]",
    )  # fmt: skip
    p.add_argument(
        "--start-threshold-db", type=float, metavar="DB", help="score that opens an event"
    )
    p.add_argument(
        "--end-threshold-db", type=float, metavar="DB", help="score that ends its activity"
    )
    p.add_argument(
        "--background-start-db", type=float, metavar="DB",
        help="start the background estimate this far below the first window (with a noise "
        "stem; 20 for short clips that may start during a call; default 0)",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_args(p)


def handlers(make_separator: Callable[[argparse.Namespace], Any]) -> dict[str, Handler]:
    """Command name -> handler."""
    return {"detect": partial(_cmd_detect, make_separator=make_separator)}


def _cmd_detect(
    args: argparse.Namespace, make_separator: Callable[[argparse.Namespace], Any]
) -> int:
    from tqdm import tqdm

    settings = DetectorSettings()
    orca_stem, noise_stem = "orca_vocals", "noise"
    if args.config:
        config = load_config(args.config)
        settings = config.events.detector
        orca_stem, noise_stem = config.events.orca_stem, config.events.noise_stem
        if args.params is None and args.model is None:
            args.params, args.model = config.model.params, config.model.model
    overrides = {
        key: value
        for key, value in (
            ("start_threshold_db", args.start_threshold_db),
            ("end_threshold_db", args.end_threshold_db),
            ("background_start_db", args.background_start_db),
        )
        if value is not None
    }
    settings = replace(settings, **overrides)  # validated again
    files = audio_files(args.inputs)  # fails before any work on a missing input
    infos = {path: file_info(path) for path in files}
    total = sum(n / rate for rate, _, n in infos.values())
    separator = make_separator(args)
    out: TextIO = open(args.out, "w", newline="") if args.out else sys.stdout  # noqa: SIM115
    n_events = 0
    try:
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
        writer.writeheader()
        show = not args.no_progress and sys.stderr.isatty()
        with tqdm(total=total, unit="s", desc="detect", disable=not show, bar_format=_BAR) as bar:
            done = 0.0
            for path in files:
                rate = infos[path][0]
                bar.set_description(path.name)

                def progress(n: int, rate: int = rate, base: float = done) -> None:
                    bar.n = base + n / rate
                    bar.refresh()

                events = detect_file(
                    path, separator, settings, orca_stem=orca_stem, noise_stem=noise_stem,
                    progress=progress,
                )  # fmt: skip
                for event in events:
                    writer.writerow(event.row())
                out.flush()
                n_events += len(events)
                done += infos[path][2] / rate
                bar.n = done
                bar.refresh()
    except OSError as e:
        raise StreamsepError(f"cannot write {args.out}: {e}") from e
    finally:
        if out is not sys.stdout:
            out.close()
    _LOGGER.info("%d event(s) in %d file(s), %.0f s of audio", n_events, len(files), total)
    if args.out:
        print(f"{n_events} event(s) in {len(files)} file(s) -> {args.out}", file=sys.stderr)
    return 0
