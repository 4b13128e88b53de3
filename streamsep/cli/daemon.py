"""Command-line layer of the daemon commands: ``run``, ``devices``, ``check``.

``__main__`` registers them with :func:`add_commands` and dispatches to the handlers it
returns (:func:`handlers` gives the same dict). Until then ``python -m streamsep.cli.daemon run
-c CONFIG.toml`` runs them directly. Flags map into settings here, once; the daemon never sees
an ``argparse.Namespace``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from streamsep.daemon.config import DaemonSettings, LoggingSettings, load_config
from streamsep.errors import AudioFileError, StreamsepError

__all__ = ["add_commands", "handlers", "main"]

Handler = Callable[[argparse.Namespace], int]

_CONFIG_HELP = "TOML config file (see configs/default.toml and docs/daemon.md)"


def add_commands(subparsers: Any) -> dict[str, Handler]:
    """Add ``run``, ``devices`` and ``check`` to ``subparsers``; returns their handlers."""
    p = subparsers.add_parser(
        "run",
        help="run the live separator daemon (capture -> model -> ZeroMQ) until stopped",
        description="Capture from a sound card (or play a file as a live source, or follow an "
        "HLS stream or an Orcasound hydrophone), separate the stems and publish them over "
        "ZeroMQ until SIGTERM/SIGINT, which drain and exit 0. "
        "Without -c: the default input device, the bundled model, tcp://127.0.0.1:5556.",
    )
    p.add_argument("-c", "--config", metavar="CONFIG.toml", help=_CONFIG_HELP)
    subparsers.add_parser(
        "devices",
        help="list audio capture devices",
        description="List the capture devices PortAudio sees (* marks the default input); "
        "source.device takes a name (or part of one) or an index.",
    )
    p = subparsers.add_parser(
        "check",
        help="validate a daemon config, its model and its device without running",
        description="Load CONFIG.toml, the model and the params (and run the model once), and "
        "check the device (or the input file) and the archive folder and its free-space "
        "margin; an HLS or Orcasound source is validated but not contacted. Exits 0 and "
        "prints a summary when all is well.",
    )
    p.add_argument("-c", "--config", required=True, metavar="CONFIG.toml", help=_CONFIG_HELP)
    return handlers()


def handlers() -> dict[str, Handler]:
    """``{"run": ..., "devices": ..., "check": ...}``."""
    return {"run": cmd_run, "devices": cmd_devices, "check": cmd_check}


def configure_logging(settings: LoggingSettings, verbose: int = 0) -> None:
    """Root logging from the ``[logging]`` table (``-v`` on the command line forces debug)."""
    level = int(getattr(logging, settings.level.upper()))
    if verbose:
        level = min(level, logging.WARNING - 10 * min(verbose, 2))
    timestamps = settings.timestamps
    if timestamps is None:  # the journal stamps lines itself
        timestamps = "JOURNAL_STREAM" not in os.environ
    fmt = ("%(asctime)s " if timestamps else "") + "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, force=True)


def cmd_run(args: argparse.Namespace) -> int:
    """``streamsep run [-c CONFIG]``."""
    from streamsep.daemon.supervisor import Daemon

    settings = load_config(args.config)
    configure_logging(settings.logging, getattr(args, "verbose", 0))
    with _named(args.config):
        return Daemon(settings).run()


def cmd_devices(args: argparse.Namespace) -> int:
    """``streamsep devices``."""
    from streamsep.sources.device.capture import format_devices, list_input_devices

    print(format_devices(list_input_devices()))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """``streamsep check -c CONFIG``: the config, the model, the source and the archive."""
    settings = load_config(args.config)
    with _named(args.config):
        lines = check(settings)
    for line in lines:
        print(line)
    return 0


@contextlib.contextmanager
def _named(config: str | None) -> Iterator[None]:
    """Prefix errors (model, device, archive folder) with the config file's name."""
    try:
        yield
    except StreamsepError as e:
        if config is None:
            raise
        raise type(e)(f"{config}: {e}") from e


def check(settings: DaemonSettings) -> list[str]:
    """Validate everything :meth:`Daemon.start` would, without starting anything.

    Returns
    -------
    list of str
        Summary lines.

    Raises
    ------
    StreamsepError
        The first problem found.
    """
    from streamsep.daemon.archive import check_directory, check_margin
    from streamsep.daemon.wiring import warm_up
    from streamsep.engine.offline import Separator
    from streamsep.sources.device.capture import check_device
    from streamsep.sources.file import declared_samples, file_info

    lines = [f"config: {settings.config_path or '(defaults)'}"]
    if settings.archive.enabled:
        check_directory(settings.archive.directory, create=False)
        check_margin(settings.archive)
    s = settings
    separator = Separator(
        s.model.params, s.model.model, stream=s.stream, num_threads=s.model.num_threads
    )
    warm_up(separator.model)  # what the first block would hit: the interpreter's threads
    p = separator.params
    lines.append(
        f"model: {separator.model!r}, {p.sample_rate} Hz, {p.n_channels} ch, "
        f"latency {separator.latency_samples} samples "
        f"({separator.latency_samples / p.sample_rate:.3f} s)"
    )
    rate: int | None
    if s.source.kind == "device":
        info = check_device(s.source.device)
        rate = info.sample_rate
        lines.append(
            f"source: device {info.index} {info.name!r} ({info.hostapi}), {rate} Hz, "
            f"channels {list(s.source.device.channels)}"
        )
    elif s.source.kind in ("hls", "orcasound"):
        rate = _check_hls(s, lines)
    else:
        assert s.source.file is not None
        rate, n_channels, n_samples = file_info(s.source.file.path)
        declared = declared_samples(s.source.file.path)
        if declared is not None and declared > n_samples:
            raise AudioFileError(
                f"source.path: {s.source.file.path} is truncated: its header says {declared} "
                f"samples, it holds {n_samples}"
            )
        lines.append(
            f"source: file {s.source.file.path}, {rate} Hz, {n_channels} ch, "
            f"{n_samples / rate:.1f} s, realtime {s.source.file.realtime}, "
            f"loops {s.source.file.loops or 'forever'}"
        )
    if s.publish_rate == "model":
        out_rate = f"{p.sample_rate} Hz"
    else:
        out_rate = f"{rate} Hz" if rate else "the stream's rate"
    lines.append(f"publish: {', '.join(s.publish.endpoints)} at {out_rate}")
    if s.control is not None:
        lines.append(f"control: {s.control.endpoint}")
    if s.archive.enabled:
        lines.append(f"archive: {s.archive.directory}, {s.archive.file_seconds:g} s per file")
    if s.metrics.enabled:
        lines.append(f"metrics: http://{s.metrics.host}:{s.metrics.port}/metrics")
    lines.append("ok")
    return lines


def _check_hls(s: DaemonSettings, lines: list[str]) -> int | None:
    """The summary line of an HLS source (no network: the stream may be offline now); returns
    the rate, or None when it is probed at start."""
    h = s.source.hls
    assert h is not None
    if s.source.kind == "orcasound":
        from streamsep.sources.hls.orcasound import OrcasoundResolver

        o = s.source.orcasound
        assert o is not None
        where = str(OrcasoundResolver(o.node, o.base_url, timeout_seconds=h.timeout_seconds))
    else:
        where = f"hls {h.url}"
    if h.sample_rate and h.channels:
        fmt = f"{h.sample_rate} Hz, {h.channels} ch (starts while the stream is offline)"
    else:
        rate = f"{h.sample_rate} Hz" if h.sample_rate else "rate probed"
        channels = f"{h.channels} ch" if h.channels else "channels probed"
        fmt = f"{rate}, {channels} at start (the stream must be reachable then)"
    lines.append(f"source: {where}, {fmt}; not contacted")
    return h.sample_rate


def main(argv: Sequence[str] | None = None) -> int:
    """Run one of the daemon commands (a stand-in until ``__main__`` dispatches them)."""
    parser = argparse.ArgumentParser(prog="streamsep")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = add_commands(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return commands[args.command](args)
    except StreamsepError as e:
        print(f"streamsep: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
