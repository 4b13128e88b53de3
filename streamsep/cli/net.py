"""Command-line layer of the network commands: ``stream``, ``listen``, ``keys``.

``__main__`` registers these subcommands with :func:`add_parsers` and dispatches to
:func:`handlers`; this module maps the flags into settings once, so the components never see an
``argparse.Namespace``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from streamsep.errors import StreamsepError
from streamsep.net.control import ControlSettings
from streamsep.net.listen import ListenSettings, listen
from streamsep.net.publish import PublishSettings
from streamsep.net.security import make_keys

__all__ = ["add_parsers", "handlers"]

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int]


def add_parsers(sub: Any, add_model_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``stream``, ``listen`` and ``keys`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "stream", help="separate one audio file as a live stream and publish it over ZeroMQ",
        description="Read INPUT (in real time with --realtime), separate it and publish the "
        "stems (docs/protocol.md); exits after the end-of-stream messages are sent.",
    )  # fmt: skip
    p.add_argument("input", metavar="INPUT", help="audio file (WAV, FLAC, ...)")
    p.add_argument("--realtime", action="store_true", help="pace the file at its sample rate")
    g = p.add_argument_group("publish")
    g.add_argument(
        "--publish-endpoint",
        action="append",
        metavar="E",
        help="endpoint to bind; repeatable (default: tcp://127.0.0.1:5556)",
    )
    g.add_argument(
        "--publish-format",
        choices=("float32", "int16"),
        default="float32",
        help="sample format of the audio payloads (default: float32)",
    )
    g.add_argument(
        "--publish-hwm",
        type=int,
        default=100,
        metavar="N",
        help="messages queued per subscriber before drops (default: 100)",
    )
    g.add_argument("--publish-no-mix", action="store_true", help="do not publish audio.mix")
    g.add_argument(
        "--publish-levels-seconds",
        type=float,
        default=1.0,
        metavar="S",
        help="levels interval, stream seconds; 0 = off (default: 1.0)",
    )
    g.add_argument(
        "--publish-status-seconds",
        type=float,
        default=1.0,
        metavar="S",
        help="status interval, seconds; 0 = off (default: 1.0)",
    )
    g.add_argument(
        "--publish-server-key",
        metavar="F",
        help="CURVE: server .key_secret file (with --publish-authorized-keys)",
    )
    g.add_argument(
        "--publish-authorized-keys",
        metavar="DIR",
        help="CURVE: folder of allowed client public keys (*.key)",
    )
    g.add_argument(
        "--publish-insecure", action="store_true", help="allow a non-loopback bind without CURVE"
    )
    g.add_argument(
        "--publish-sensitivity",
        type=float,
        metavar="DB",
        help="hydrophone sensitivity, dB re 1 V/uPa (enables dB re 1 uPa levels)",
    )
    g.add_argument(
        "--publish-gain-db",
        type=float,
        default=0.0,
        metavar="DB",
        help="gain between hydrophone and converter, dB (default: 0)",
    )
    g.add_argument(
        "--publish-full-scale-volts",
        type=float,
        default=1.0,
        metavar="V",
        help="converter input (peak volts) at sample value 1.0 (default: 1.0)",
    )
    g.add_argument(
        "--wait-subscribers",
        type=int,
        default=0,
        metavar="N",
        help="wait for N subscriptions (one per topic per subscriber) before starting (default: 0)",
    )
    g.add_argument(
        "--wait-seconds",
        type=float,
        default=60.0,
        metavar="S",
        help="give up waiting for subscribers after S seconds (default: 60)",
    )
    g.add_argument("--control-endpoint", metavar="E",
                   help="also answer JSON control requests here (same CURVE keys and "
                   "insecure flag as publish; default: off)")  # fmt: skip
    add_model_args(p)

    p = sub.add_parser(
        "listen", help="subscribe to a stream: record, play, print levels",
        description="Receive published stems; recordings keep the timeline (gaps are "
        "filled with silence of the reported length and logged).",
    )  # fmt: skip
    p.add_argument("--connect", required=True, metavar="ENDPOINT", help="publisher endpoint")
    p.add_argument(
        "--stem",
        action="append",
        default=[],
        metavar="S",
        help="stem to receive, 'mix' for the input; repeatable (default: all)",
    )
    p.add_argument("--play", action="store_true", help="play the first stem (sounddevice)")
    rec = p.add_mutually_exclusive_group()
    rec.add_argument("--record", metavar="FILE", help="record to FILE.flac or FILE.wav")
    rec.add_argument("--record-dir", metavar="DIR", help="record to timestamped files in DIR")
    p.add_argument(
        "--rollover",
        type=float,
        metavar="SECONDS",
        help="with --record-dir: new file every SECONDS of stream time",
    )
    p.add_argument(
        "--record-format",
        choices=("flac", "wav"),
        default="flac",
        help="file format with --record-dir (default: flac, 24-bit)",
    )
    p.add_argument("--levels", action="store_true", help="print levels messages")
    p.add_argument(
        "--seconds",
        type=float,
        metavar="N",
        help="stop after N stream seconds per stem (default: end of stream)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        metavar="S",
        help="give up after S seconds without messages (default: wait forever)",
    )
    p.add_argument("--curve-server-key", metavar="F", help="publisher public key (.key)")
    p.add_argument("--curve-client-key", metavar="F", help="this client's .key_secret file")

    p = sub.add_parser(
        "keys", help="make a CURVE key pair",
        description="Write OUTDIR/NAME.key (public: give it to the other side) and "
        "OUTDIR/NAME.key_secret (keep it private).",
    )  # fmt: skip
    p.add_argument("outdir", metavar="OUTDIR", help="folder for the key files")
    p.add_argument("--name", default="streamsep", help="file name stem (default: streamsep)")


def _publish_settings(args: argparse.Namespace) -> PublishSettings:
    return PublishSettings(
        endpoints=tuple(args.publish_endpoint or PublishSettings.endpoints),
        hwm=args.publish_hwm,
        sample_format=args.publish_format,
        publish_mix=not args.publish_no_mix,
        levels_seconds=args.publish_levels_seconds,
        status_seconds=args.publish_status_seconds,
        server_secret_key_file=args.publish_server_key,
        authorized_keys_dir=args.publish_authorized_keys,
        insecure=args.publish_insecure,
        sensitivity_db_re_1v_per_upa=args.publish_sensitivity,
        gain_db=args.publish_gain_db,
        full_scale_volts=args.publish_full_scale_volts,
    )


def _cmd_stream(
    args: argparse.Namespace, make_separator: Callable[[argparse.Namespace], Any]
) -> int:
    from streamsep.cli.stream import stream_file

    publish = _publish_settings(args)  # validates the bind rule before the model loads
    control = None
    if args.control_endpoint:
        control = ControlSettings(
            args.control_endpoint, publish.server_secret_key_file,
            publish.authorized_keys_dir, publish.insecure,
        )  # fmt: skip
    separator = make_separator(args)
    status = stream_file(
        args.input, separator.model, publish, stream=separator.stream, realtime=args.realtime,
        control=control, wait_subscribers=args.wait_subscribers, wait_seconds=args.wait_seconds,
    )  # fmt: skip
    topics = status["publisher"]["topics"]
    for topic, counts in topics.items():
        print(
            f"{topic}: {counts['messages_sent']} messages, {counts['samples_sent']} samples "
            f"sent, {counts['samples_dropped']} dropped"
        )
    if status["file"]["ended_early"]:
        return 1  # logged in one line by the file source; the missing samples were a gap
    return 0


def _cmd_listen(args: argparse.Namespace) -> int:
    settings = ListenSettings(
        endpoint=args.connect, stems=tuple(args.stem), play=args.play, record_path=args.record,
        record_dir=args.record_dir, rollover_seconds=args.rollover,
        record_format=args.record_format, levels=args.levels, seconds=args.seconds,
        idle_timeout_seconds=args.idle_timeout, curve_server_key=args.curve_server_key,
        curve_client_key=args.curve_client_key,
    )  # fmt: skip
    report = listen(settings)
    for stem, rep in report.stems.items():
        seconds = (rep.received_samples + rep.filled_samples) / max(rep.sample_rate, 1)
        files = f" -> {', '.join(rep.files)}" if rep.files else ""
        print(
            f"{stem}: {seconds:.3f} s, {rep.received_samples} samples received, "
            f"{rep.filled_samples} filled in {rep.gaps} gap(s){files}"
        )
    if report.timed_out:
        raise StreamsepError(f"no messages for {args.idle_timeout} s")
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    public, secret = make_keys(args.outdir, args.name)
    print(f"public key: {public}\nsecret key: {secret} (keep it private)")
    return 0


def handlers(make_separator: Callable[[argparse.Namespace], Any]) -> dict[str, Handler]:
    """Command name -> handler for the commands of :func:`add_parsers`."""
    return {
        "stream": partial(_cmd_stream, make_separator=make_separator),
        "listen": _cmd_listen,
        "keys": _cmd_keys,
    }
