"""Soak test of the daemon: hours of real recordings through ``streamsep run``, every sample
accounted for, memory watched.

    python -m tools.soak --hours 1 [--config C.toml | --params P --model M]
        [--paced-minutes 10] [--out docs/bench]

What it does:

1. Builds a base input from the real recordings in ``tests/fixtures/audio``: each one resampled
   to 48 kHz mono and repeated with varied gain (-12..+3 dB steps) to about 5 minutes, written as
   a 24-bit FLAC in a temporary folder. The daemon's file source plays it ``loops`` times, so
   ``--hours`` of audio never sit on disk or in memory.
2. Writes a daemon config (``[source] kind = "file"``, ``realtime = false``; publish on an
   ``ipc://`` endpoint in the temporary folder; the control endpoint on; the model from
   ``--config``/``--params``/``--model``, default the bundled one) and starts
   ``python -m streamsep run -c <it>`` as a subprocess.
3. No slow joiner: the config sets ``[source] wait_subscribers`` to the subscriptions the
   subscriber makes, so the daemon reads the file only once they have reached it; the run fails
   unless the first index on every topic is 0.
4. A :class:`~streamsep.net.subscribe.Subscriber` checks every audio message on every topic: no
   index gap, no ``GAP`` flag, no sequence jump, first index 0, an end of stream, and the total
   received equal to the input length, to the daemon's ``samples_published`` and
   ``samples_captured`` (its ``stopped:`` log line) and to what its control ``status`` said.
5. Every ``--sample-seconds`` it reads the daemon's ``VmRSS`` from ``/proc/<pid>/status`` and its
   CPU time (``utime + stime``) from ``/proc/<pid>/stat``. RSS growth is measured from minute 5
   of the run (or 10 % of it for runs under 50 minutes) to the end; it must stay under 5 %.

With ``--paced-minutes N`` a second run plays N minutes at real time (``realtime = true``) and
reports the subscriber lag (arrival time minus capture time of the last sample of each chunk,
which includes the algorithmic latency), whether it stays bounded (its last-minute maximum is
not more than 0.5 s above its first-minute maximum after warm-up), and the daemon's CPU seconds
per second of audio (CPU headroom = 1 / that, on one core).

Writes ``soak.json`` and ``soak.md`` (``--out``); exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import soundfile as sf

from streamsep.engine.audio import resample
from streamsep.engine.params import load_params
from streamsep.net import protocol as proto
from streamsep.net.control import request
from streamsep.net.subscribe import Chunk, Subscriber
from streamsep.resources import default_model_paths

from .machine import describe_machine, shown_path

ROOT: Final = Path(__file__).resolve().parents[1]
AUDIO_DIR: Final = ROOT / "tests" / "fixtures" / "audio"
BASE_RATE: Final = 48000
GAINS_DB: Final = (0.0, -6.0, -12.0, 3.0, -3.0, -9.0)
RSS_GROWTH_LIMIT: Final = 0.05
LAG_DRIFT_LIMIT_SECONDS: Final = 0.5
_CLK_TCK: Final = os.sysconf("SC_CLK_TCK")


# -- input -----------------------------------------------------------------------------------


def build_input(path: Path, seconds: float, rate: int = BASE_RATE) -> int:
    """Write a mono 24-bit FLAC of about ``seconds`` of the fixture recordings, looped with
    varied gain; returns its length in samples."""
    clips = []
    for f in sorted(AUDIO_DIR.glob("*.flac")):
        data, file_rate = sf.read(str(f), dtype="float32", always_2d=True)
        mono = resample(data.mean(axis=1, keepdims=True), file_rate, rate)
        clips.append(mono / max(1e-6, float(np.max(np.abs(mono)))) * 0.5)
    if not clips:
        raise SystemExit(f"soak: no recordings in {AUDIO_DIR}")
    pieces, total, i = [], 0, 0
    target = max(1, int(seconds * rate))
    while total < target:
        clip = clips[i % len(clips)] * np.float32(10 ** (GAINS_DB[i % len(GAINS_DB)] / 20))
        pieces.append(clip[: target - total])
        total += pieces[-1].shape[0]
        i += 1
    audio = np.clip(np.concatenate(pieces), -1.0, 1.0 - 2**-23)
    sf.write(str(path), audio, rate, subtype="PCM_24")
    return int(audio.shape[0])


def write_config(
    path: Path,
    *,
    audio: Path,
    loops: int,
    realtime: bool,
    endpoint: str,
    control: str,
    params: str | None,
    model: str | None,
    base: dict[str, Any] | None = None,
    wait_subscribers: int = 0,
) -> None:
    """The daemon config of one soak run (``base``: sections of a user config to keep;
    ``wait_subscribers``: subscriptions the daemon waits for before reading the file)."""
    lines = [
        "[source]",
        'kind = "file"',
        f"path = {json.dumps(str(audio))}",
        f"realtime = {'true' if realtime else 'false'}",
        f"loops = {loops}",
        f"wait_subscribers = {wait_subscribers}",
        "",
        "[publish]",
        f"endpoints = [{json.dumps(endpoint)}]",
        # As fast as possible the daemon outruns any subscriber for a while: let ZeroMQ queue
        # rather than drop (a paced run never comes near these).
        "hwm = 100000",
        "queue_chunks = 4096",
        "",
        "[control]",
        "enabled = true",
        f"endpoint = {json.dumps(control)}",
        "",
        "[logging]",
        'level = "info"',
        "timestamps = true",
        "",
    ]
    model_lines = []
    if base and "model" in base:
        for key, value in base["model"].items():
            model_lines.append(f"{key} = {json.dumps(value)}")
    else:
        # The daemon reads paths relative to its config file (in a temporary folder):
        # paths given relative to this process's folder are made absolute.
        if params is not None:
            model_lines.append(f"params = {json.dumps(_absolute(params))}")
        if model is not None:
            model_lines.append(f"model = {json.dumps(_absolute(model))}")
    if model_lines:
        lines += ["[model]", *model_lines, ""]
    if base and "stream" in base:
        lines += ["[stream]", *(f"{k} = {json.dumps(v)}" for k, v in base["stream"].items()), ""]
    path.write_text("\n".join(lines))


def _absolute(value: str) -> str:
    """``value`` as an absolute path if it names an existing file or folder (else as is:
    ``passthrough``, or a missing path the daemon will name in its error)."""
    path = Path(value)
    return str(path.resolve()) if path.exists() else value


# -- verification ----------------------------------------------------------------------------


@dataclass
class TopicCheck:
    """What one topic delivered."""

    first_index: int | None = None
    next_index: int = 0
    received: int = 0
    messages: int = 0
    index_gaps: int = 0
    gap_flags: int = 0
    sequence_jumps: int = 0
    restarts: int = 0
    ended: bool = False


@dataclass
class Verifier:
    """Checks every audio chunk of a stream: contiguous indices from 0, no gap flags, an end of
    stream; and the end-to-end lag of each chunk (arrival minus capture time of its last
    sample), binned per ``lag_bin_seconds`` of stream time."""

    lag_bin_seconds: float = 60.0
    topics: dict[str, TopicCheck] = field(default_factory=dict)
    lag_max_per_bin: dict[int, float] = field(default_factory=dict)

    def add(self, chunk: Chunk, arrival_ns: int) -> None:
        t = self.topics.setdefault(chunk.topic, TopicCheck())
        if t.first_index is None:
            t.first_index = chunk.first_sample
            t.next_index = chunk.first_sample
        if chunk.new_stream and t.messages:
            t.restarts += 1
        if chunk.first_sample != t.next_index:
            t.index_gaps += 1
        if chunk.header.has(proto.FLAG_GAP) or chunk.missing:
            t.gap_flags += 1
        if chunk.missing_messages:
            t.sequence_jumps += 1
        t.next_index = chunk.end_sample
        t.received += chunk.n_samples
        t.messages += 1
        t.ended = t.ended or chunk.end_of_stream
        if chunk.n_samples and chunk.topic != proto.MIX_TOPIC:
            end_ns = chunk.capture_time_ns + chunk.n_samples * 1_000_000_000 // chunk.sample_rate
            lag = (arrival_ns - end_ns) / 1e9
            b = int(chunk.end_sample / chunk.sample_rate // self.lag_bin_seconds)
            self.lag_max_per_bin[b] = max(self.lag_max_per_bin.get(b, -math.inf), lag)

    def problems(self, expected: int, topics: Sequence[str] = ()) -> list[str]:
        """Every failed check, as short lines (empty: all good); ``topics`` must all have
        delivered."""
        out = [f"{t}: nothing received" for t in topics if t not in self.topics]
        if not self.topics:
            return ["no audio received"]
        for name, t in sorted(self.topics.items()):
            if t.first_index != 0:
                out.append(f"{name}: first index {t.first_index}, expected 0 (slow joiner)")
            for what in ("index_gaps", "gap_flags", "sequence_jumps", "restarts"):
                if getattr(t, what):
                    out.append(f"{name}: {getattr(t, what)} {what.replace('_', ' ')}")
            if not t.ended:
                out.append(f"{name}: no end of stream")
            if t.received != expected or t.next_index != expected:
                out.append(f"{name}: received {t.received} samples, expected {expected}")
        return out


def rss_growth(samples: Sequence[tuple[float, int, float]], audio_seconds: float) -> dict[str, Any]:
    """RSS growth from minute 5 of the audio (10 % of it under 50 minutes) to the end.

    ``samples`` are ``(seconds since start, VmRSS kB, audio seconds received so far)``; the mark
    is in audio time, so a run as fast as possible is judged over the same stretch of stream as
    a paced one. Start: the median of the first five
    samples at or after the mark; end: the median of the last 10 % of the samples (at least
    five), so that the short end-of-stream drain (the flush of the lookahead, measured at
    +50 MiB for two seconds with the 6 s passthrough lookahead) is not read as growth; a leak
    moves the median, one spike does not.
    """
    mark = 300.0 if audio_seconds >= 3000 else 0.1 * audio_seconds
    after = [kb for _, kb, audio in samples if audio >= mark]
    wall = next((t for t, _, audio in samples if audio >= mark), float("nan"))
    if len(after) < 2:
        return {"from_seconds": wall, "growth": None, "ok": False, "reason": "too few samples"}
    start = statistics.median(after[:5])
    end = statistics.median(after[-max(5, len(after) // 10) :])
    growth = (end - start) / start
    return {
        "from_audio_seconds": round(mark, 1),
        "from_seconds": round(wall, 1),
        "rss_start_kb": round(start),
        "rss_end_kb": round(end),
        "rss_max_kb": max(kb for _, kb, _ in samples),
        "growth": round(growth, 4),
        "ok": growth < RSS_GROWTH_LIMIT,
    }


def lag_bounded(lag_max_per_bin: dict[int, float]) -> dict[str, Any]:
    """Whether the lag stays bounded: the last full bin's maximum is at most
    ``LAG_DRIFT_LIMIT_SECONDS`` above the second bin's (the first bin includes warm-up)."""
    bins = [lag_max_per_bin[k] for k in sorted(lag_max_per_bin)]
    if len(bins) < 3:
        return {"ok": None, "reason": "run too short", "max_per_bin": bins}
    drift = bins[-2] - bins[1]  # the last bin may be partial (end-of-stream flush)
    return {
        "ok": drift <= LAG_DRIFT_LIMIT_SECONDS,
        "drift_seconds": round(drift, 3),
        "max_seconds": round(max(bins), 3),
        "max_per_bin_seconds": [round(b, 3) for b in bins],
    }


# -- one run ---------------------------------------------------------------------------------


def _proc(pid: int) -> tuple[int, float, int] | None:
    """``(VmRSS kB, CPU seconds, VmHWM kB)`` of ``pid``, or None once it is gone."""
    try:
        rss = hwm = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime
        return rss, cpu, hwm
    except (OSError, IndexError, ValueError):
        return None


def run_daemon(
    work: Path,
    *,
    audio: Path,
    base_samples: int,
    loops: int,
    realtime: bool,
    params: str | None,
    model: str | None,
    base_config: dict[str, Any] | None,
    sample_seconds: float,
    tag: str,
    timeout_seconds: float,
    lag_bin_seconds: float = 60.0,
) -> dict[str, Any]:
    """One daemon run from start to its end of stream; returns the report dict.

    ``lag_bin_seconds``: stream seconds per bin of the lag maxima (paced runs)."""
    endpoint = f"ipc://{work}/{tag}.pub"
    control = f"ipc://{work}/{tag}.ctl"
    config = work / f"{tag}.toml"
    stems = _stems(params, model, base_config)
    write_config(
        config,
        audio=audio,
        loops=loops,
        realtime=realtime,
        endpoint=endpoint,
        control=control,
        params=params,
        model=model,
        base=base_config,
        wait_subscribers=len(stems) if stems else 1,  # one subscription per topic prefix
    )
    expected = base_samples * loops
    verifier = Verifier(lag_bin_seconds=lag_bin_seconds)
    # Name the stems: Subscriber.ended with stems=None means "every topic seen has ended",
    # which a short stream whose first message is also its last would satisfy too early.
    # hwm 0: no limit; the verifier must see every message.
    sub = Subscriber(endpoint, stems, hwm=0, rcvbuf_bytes=4 << 20)
    log_path = work / f"{tag}.log"
    log = log_path.open("w")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamsep", "run", "-c", str(config)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    samples: list[tuple[float, int, float, float]] = []
    backlog: list[tuple[float, int]] = []
    peak_kb = [0]
    statuses: list[dict[str, Any]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(sample_seconds):
            got = _proc(proc.pid)
            if got is None:
                return
            # Read without a lock: each count is one int.
            received = min((t.received for t in verifier.topics.values()), default=0)
            samples.append((time.monotonic() - started, got[0], got[1], received / BASE_RATE))
            peak_kb[0] = max(peak_kb[0], got[2])
            try:
                reply = request(control, {"cmd": "status"}, timeout=2.0)
                statuses.append(reply.get("status", {}))
            except Exception:  # noqa: BLE001 - the daemon may be ending; status is advisory
                continue
            # Samples published but not yet received: what ZeroMQ holds in the daemon's send
            # queue when the subscriber trails (as fast as possible only).
            published = int(statuses[-1].get("samples_published", 0))
            backlog.append((time.monotonic() - started, max(0, published - received)))

    watcher = threading.Thread(target=watch, name="soak-watch", daemon=True)
    watcher.start()
    deadline = started + timeout_seconds
    try:
        while not sub.ended and time.monotonic() < deadline:
            msg = sub.recv(timeout=1.0)
            if isinstance(msg, Chunk):
                verifier.add(msg, time.time_ns())
            elif msg is None and proc.poll() is not None and not sub.ended:
                break  # the daemon ended without an end of stream: reported below
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
    finally:
        stop.set()
        watcher.join(5)
        sub.close()
        log.close()
        if proc.poll() is None:
            proc.kill()
    wall = time.monotonic() - started
    if proc.returncode not in (0, None) and not verifier.topics:
        lines = log_path.read_text().strip().splitlines() or ["(no output)"]
        raise SystemExit(
            f"soak: the daemon exited with status {proc.returncode} before publishing: "
            f"{lines[-1]} (log: {log_path})"
        )
    stopped = _stopped_line(log_path.read_text())
    audio_seconds = expected / BASE_RATE
    problems = verifier.problems(expected, [proto.audio_topic(st) for st in stems or ()])
    if proc.returncode != 0:
        problems.append(f"daemon exit status {proc.returncode} (log {log_path})")
    if stopped is None:
        problems.append("no 'stopped:' line in the daemon log")
    else:
        if stopped["samples_captured"] != expected:
            problems.append(f"captured {stopped['samples_captured']}, expected {expected}")
        if stopped["samples_published"] != stopped["samples_captured"]:
            problems.append(
                f"published {stopped['samples_published']} != "
                f"captured {stopped['samples_captured']}"
            )
        if stopped["samples_lost"]:
            problems.append(f"daemon counted {stopped['samples_lost']} lost samples")
    dropped = _publisher_drops(statuses)
    if dropped:
        problems.append(f"publisher dropped samples: {dropped}")
    run_seconds = samples[-1][0] if samples else wall
    rss = rss_growth([(t, kb, audio) for t, kb, _, audio in samples], audio_seconds)
    if not rss["ok"]:
        problems.append(f"RSS growth {rss.get('growth')} >= {RSS_GROWTH_LIMIT}")
    cpu_seconds = samples[-1][2] if samples else None
    report: dict[str, Any] = {
        "tag": tag,
        "realtime": realtime,
        "audio_seconds": round(audio_seconds, 1),
        "wall_seconds": round(wall, 1),
        "x_realtime": round(audio_seconds / wall, 2),
        "expected_samples": expected,
        "daemon": stopped,
        "topics": {k: asdict(v) for k, v in verifier.topics.items()},
        "lost_samples": max(
            (expected - t.received for t in verifier.topics.values()), default=expected
        ),
        "rss": rss,
        "rss_samples_kb": [
            [round(t, 1), kb] for t, kb, _, _ in samples[:: max(1, len(samples) // 200)]
        ],
        "rss_peak_kb": peak_kb[0],
        "backlog_samples": [[round(t, 1), n] for t, n in backlog[:: max(1, len(backlog) // 200)]],
        "backlog_max_seconds": round(max((n for _, n in backlog), default=0) / BASE_RATE, 2),
        "cpu_seconds": cpu_seconds,
        "cpu_seconds_per_audio_second": (
            round(cpu_seconds / audio_seconds, 4) if cpu_seconds is not None else None
        ),
        "last_status": statuses[-1] if statuses else None,
        "problems": problems,
        "ok": not problems,
    }
    if realtime:
        # Paced: wall seconds are audio seconds, so the CPU slope after start-up (imports,
        # model load; first 10 % of the run) is CPU seconds per audio second.
        steady = [(t, c) for t, _, c, _ in samples if t >= 0.1 * run_seconds]
        if len(steady) >= 2 and steady[-1][0] > steady[0][0]:
            slope = (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])
            report["cpu_seconds_per_audio_second_steady"] = round(slope, 4)
        report["lag"] = lag_bounded(verifier.lag_max_per_bin)
        report["lag_max_per_bin_seconds"] = [
            round(verifier.lag_max_per_bin[k], 4) for k in sorted(verifier.lag_max_per_bin)
        ]
        if report["lag"]["ok"] is False:
            problems.append(f"lag drifted by {report['lag']['drift_seconds']} s")
            report["ok"] = False
        cpu_rate = report.get("cpu_seconds_per_audio_second_steady")
        if cpu_rate:
            report["cpu_headroom_x"] = round(1 / cpu_rate, 1)
    return report


def _stems(
    params: str | None, model: str | None, base_config: dict[str, Any] | None
) -> list[str] | None:
    """The audio stems the daemon will publish (its stems plus ``mix``), None if unknown."""
    path = params or (base_config or {}).get("model", {}).get("params")
    if path is None and model is None:
        path = str(default_model_paths()[0])
    if path is None:
        return None
    return [*load_params(path).instrument_list, "mix"]


def _stopped_line(text: str) -> dict[str, int] | None:
    for line in reversed(text.splitlines()):
        if "stopped: samples_captured=" in line:
            pairs = line.split("stopped:", 1)[1].split()
            return {k: int(v) for k, v in (p.split("=", 1) for p in pairs if "=" in p)}
    return None


def _publisher_drops(statuses: list[dict[str, Any]]) -> int:
    total = 0
    for s in statuses[-1:]:
        pub = s.get("publisher") or {}
        total += int(pub.get("queue_dropped_samples", 0))
        for t in (pub.get("topics") or {}).values():
            total += int(t.get("samples_dropped", 0))
    return total


# -- report ----------------------------------------------------------------------------------


def render_markdown(result: dict[str, Any]) -> str:
    """The summary tables."""
    lines = [
        f"# Soak test ({result['date']})",
        "",
        f"Machine: {result['machine']}. Model: `{result['model']}`. "
        f"Command: `{result['command']}`.",
        "",
        "| run | audio | wall | x real time | received / expected (per topic) | lost | "
        "published = captured | RSS growth (from) | RSS max | CPU s / audio s | result |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["runs"]:
        d = r["daemon"] or {}
        recv = min((t["received"] for t in r["topics"].values()), default=0)
        rss = r["rss"]
        growth = "n/a" if rss.get("growth") is None else f"{100 * rss['growth']:+.2f} %"
        lines.append(
            f"| {r['tag']} | {r['audio_seconds'] / 60:.1f} min | {r['wall_seconds']:.0f} s | "
            f"{r['x_realtime']} | {recv} / {r['expected_samples']} ({len(r['topics'])} topics) | "
            f"{r['lost_samples']} | "
            f"{d.get('samples_published') == d.get('samples_captured') and bool(d)} "
            f"({d.get('samples_published')}) | {growth} (from audio "
            f"{rss.get('from_audio_seconds', 0) / 60:.1f} min, wall {rss['from_seconds']:.0f} s) | "
            f"{rss.get('rss_max_kb', 0) / 1024:.0f} MiB | {r['cpu_seconds_per_audio_second']} | "
            f"{'PASS' if r['ok'] else 'FAIL'} |"
        )
    for r in result["runs"]:
        if "lag" in r:
            lag = r["lag"]
            verdict = {True: "bounded", False: "NOT bounded"}.get(lag.get("ok"), "n/a")
            lines += [
                "",
                f"Paced run `{r['tag']}`: subscriber lag (arrival minus capture time of the last "
                "sample of a chunk, algorithmic latency included) per minute, max: "
                f"{lag.get('max_per_bin_seconds')} s; drift {lag.get('drift_seconds')} s "
                f"(limit {LAG_DRIFT_LIMIT_SECONDS} s): "
                f"{verdict}."
                f" Daemon CPU {r.get('cpu_seconds_per_audio_second_steady')} s per audio s "
                f"after start-up ({r['cpu_seconds_per_audio_second']} with it): headroom "
                f"{r.get('cpu_headroom_x')}x of one core.",
            ]
        if "backlog_max_seconds" in r:
            lines.append(
                f"- {r['tag']}: at most {r['backlog_max_seconds']} s of audio published but not "
                "yet received (held in ZeroMQ's send queue inside the daemon, so in its RSS)"
            )
        for p in r["problems"]:
            lines.append(f"- {r['tag']}: {p}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=1.0, help="audio, as fast as possible (h)")
    parser.add_argument("--config", help="daemon TOML whose [model] and [stream] are used")
    parser.add_argument("--params", help="params JSON (default: the bundled model)")
    parser.add_argument("--model", help=".tflite, checkpoint folder or passthrough")
    parser.add_argument("--paced-minutes", type=float, default=0.0, help="paced run (min)")
    parser.add_argument("--skip-fast", action="store_true", help="only the paced run")
    parser.add_argument("--base-seconds", type=float, default=300.0, help="looped input (s)")
    parser.add_argument("--sample-seconds", type=float, default=2.0, help="RSS/CPU interval")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench")
    parser.add_argument("--name", default="soak", help="output file stem")
    args = parser.parse_args(argv)

    base_config = None
    if args.config:
        import tomllib

        base_config = tomllib.loads(Path(args.config).read_text())
        cfg_dir = Path(args.config).resolve().parent
        for key in ("params", "model"):
            value = base_config.get("model", {}).get(key)
            if value and value != "passthrough" and not Path(value).is_absolute():
                base_config["model"][key] = str(cfg_dir / value)
    params, model = args.params, args.model
    if base_config is None and params is None and model is None:
        p, m = default_model_paths()
        params, model = str(p), m
    params = str(Path(params).resolve()) if params else None
    if model and model != "passthrough":
        model = str(Path(model).resolve())
    runs = []
    with tempfile.TemporaryDirectory(prefix="ssep-soak-") as tmp:
        work = Path(tmp)
        audio = work / "input.flac"
        base = build_input(audio, args.base_seconds)
        print(f"soak: input {base / BASE_RATE:.1f} s at {BASE_RATE} Hz in {work}", flush=True)
        common = dict(
            audio=audio,
            base_samples=base,
            params=params,
            model=model,
            base_config=base_config,
            sample_seconds=args.sample_seconds,
        )
        if not args.skip_fast and args.hours > 0:
            loops = max(1, round(args.hours * 3600 * BASE_RATE / base))
            runs.append(
                run_daemon(
                    work,
                    loops=loops,
                    realtime=False,
                    tag="fast",
                    timeout_seconds=4 * 3600,
                    **common,
                )
            )
            print(json.dumps({k: runs[-1][k] for k in ("ok", "problems", "rss")}), flush=True)
        if args.paced_minutes > 0:
            paced_base = work / "paced.flac"
            n = build_input(paced_base, args.paced_minutes * 60)
            common.update(audio=paced_base, base_samples=n)
            runs.append(
                run_daemon(
                    work,
                    loops=1,
                    realtime=True,
                    tag="paced",
                    timeout_seconds=args.paced_minutes * 60 + 300,
                    **common,
                )
            )
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": describe_machine(),
        "model": shown_path(model or (base_config or {}).get("model", {}).get("model", "default")),
        "params": None if params is None else shown_path(params),
        "command": "python -m tools.soak " + " ".join(sys.argv[1:] if argv is None else argv),
        "runs": runs,
        "ok": all(r["ok"] for r in runs),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = render_markdown(result)
    (args.out / f"{args.name}.md").write_text(md)
    print(md)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
