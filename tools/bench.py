"""One benchmark of streamsep on this machine, side by side with spleeter and noisereduce.

    python -m tools.bench [--params P --model M --int8-model M8] [--runs 5]
        [--seconds 20] [--e2e-seconds 20] [--out docs/bench]

For each model (default: the bundled float32 and int8 models from ``default_model_paths()``;
``--params``/``--model``/``--int8-model`` for others) it measures:

* **real-time factor**: processing seconds per audio second of ``BlockSeparator.feed`` in
  1024-sample chunks plus ``flush()``, median of ``--runs`` at the model's default streaming
  point (its params' ``stream`` section, else derived from ``T``), 1 run at the other points of
  the ``hop_frames``/``lookahead_frames`` sweep, on ``--seconds`` of real recordings;
* **algorithmic latency** of each sweep point (``frame_length - 1 + lookahead * frame_step``);
* **end to end through ZeroMQ**: ``python -m streamsep run`` on a paced file source
  (``realtime = true``) for ``--e2e-seconds``; a subscriber takes arrival time minus the header's
  capture time of each chunk's last sample (so the algorithmic latency is included), and
  reports the median and maximum of per-second maxima; every sample is verified as in
  ``tools.soak``; the daemon's peak RSS (``VmHWM``) and CPU seconds per audio second.

On the same audio (44.1 kHz stereo, the spleeter checkpoint's rate):

* the real ``spleeter`` 2.4.2 in ``.venv-spleeter`` (a subprocess): ``Separator.separate`` on
  the checkpoint (MWF off), warm (after one call that builds the graph), median of runs;
* streamsep's offline ``Separator.separate`` on the same checkpoint, spleeter segmentation and
  default streaming segmentation;
* ``noisereduce.reduce_noise`` stationary and non-stationary (``n_jobs = 1``).

The checkpoint is ``out/spleeter_parity/model_perturbed`` (``params_perturbed.json``); when
missing, ``python -m tools.spleeter_parity`` is run first (about 1.5 minutes) to train it.
Writes ``bench.json`` and ``bench.md``; about 8 minutes on 2 cores with the defaults.

``python -m tools.bench --full-size [--runs 3]`` runs the full-size Spleeter row instead
(:mod:`tools.bench_fullsize`: a ``spleeter train`` checkpoint of the seed's size, whole
processes on a 600 s file, spleeter's CLI against streamsep exact and quantised, streaming RTF
at <= 1 s latency).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final

import numpy as np

from streamsep.engine.audio import read_audio, resample
from streamsep.engine.offline import Separator
from streamsep.engine.settings import StreamSettings
from streamsep.engine.streamer import BlockSeparator
from streamsep.resources import DEFAULT_MODEL_NAME, data_path, default_model_paths

from . import soak
from .machine import describe_machine

ROOT: Final = Path(__file__).resolve().parents[1]
AUDIO_DIR: Final = ROOT / "tests" / "fixtures" / "audio"
PARITY_WORK: Final = ROOT / "out" / "spleeter_parity"
SPLEETER_VENV: Final = ROOT / ".venv-spleeter"
CHUNK: Final = 1024
SWEEP_FRACTIONS: Final = ((1 / 4, 1 / 2), (1 / 8, 1 / 8), (1 / 16, 1 / 16), (1 / 2, 1 - 1e-9))
"""(hop, lookahead) as fractions of T, measured after the model's default point."""

_SPLEETER_SCRIPT: Final = r"""
import json, sys, time
import numpy as np
from spleeter.separator import Separator
params, audio_path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
x = np.load(audio_path).astype(np.float32)
t0 = time.perf_counter()
sep = Separator(params, MWF=False, multiprocess=False)
sep.separate(x[:44100])
first = time.perf_counter() - t0
times = []
for _ in range(runs):
    t = time.perf_counter()
    out = sep.separate(x)
    times.append(time.perf_counter() - t)
print("RESULT " + json.dumps({"first_call_seconds": first, "seconds": times,
      "stems": sorted(out)}))
"""


def real_audio(seconds: float, rate: int, n_channels: int) -> np.ndarray:
    """``seconds`` of the fixture recordings at ``rate``, looped; channel ``c`` starts at a
    different recording. Shape (n_samples, n_channels), float32, peak 0.9."""
    clips = []
    for f in sorted(AUDIO_DIR.glob("*.flac")):
        audio, file_rate = read_audio(f)
        mono = resample(audio[:, :1], file_rate, rate)[:, 0]
        clips.append(mono - mono.mean())
    n = int(round(seconds * rate))
    chans = []
    for c in range(n_channels):
        order = clips[c % len(clips) :] + clips[: c % len(clips)]
        x = np.concatenate(order)
        chans.append(np.tile(x, int(np.ceil(n / x.shape[0])))[:n])
    out = np.stack(chans, axis=1)
    return (out / np.abs(out).max() * 0.9).astype(np.float32)


def _median_time(fn: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def feed_rtf(separator: Separator, stream: StreamSettings, x: np.ndarray, runs: int) -> dict:
    """Real-time factor (processing s / audio s) of ``BlockSeparator.feed`` + ``flush``."""
    engine = BlockSeparator(separator.model, stream)
    rate = separator.params.sample_rate

    def once() -> None:
        engine.reset()
        for i in range(0, x.shape[0], CHUNK):
            engine.feed(x[i : i + CHUNK])
        engine.flush()

    once()  # warm-up (interpreter allocation, caches)
    median, times = _median_time(once, runs)
    audio_seconds = x.shape[0] / rate
    return {
        "hop_frames": engine.hop_frames,
        "lookahead_frames": engine.lookahead_frames,
        "algorithmic_latency_seconds": round(engine.latency_seconds, 4),
        "rtf_median": round(median / audio_seconds, 4),
        "rtf_runs": [round(t / audio_seconds, 4) for t in times],
    }


def sweep_points(T: int, default: tuple[int, int]) -> list[tuple[int, int]]:
    """(hop_frames, lookahead_frames) of the sweep, the model's ``default`` first."""
    points = [default]
    for fh, fl in SWEEP_FRACTIONS:
        look = min(T - 1, max(0, int(T * fl)))
        hop = max(1, min(int(T * fh), look + 1))
        if (hop, look) not in points:
            points.append((hop, look))
    return points


def e2e(params: str, model: str, seconds: float, work: Path, tag: str) -> dict[str, Any]:
    """Paced daemon run through ZeroMQ (see :func:`tools.soak.run_daemon`)."""
    audio = work / f"{tag}.flac"
    n = soak.build_input(audio, seconds)
    r = soak.run_daemon(
        work,
        audio=audio,
        base_samples=n,
        loops=1,
        realtime=True,
        params=params,
        model=model,
        base_config=None,
        sample_seconds=0.5,
        tag=tag,
        timeout_seconds=seconds + 120,
        lag_bin_seconds=1.0,
    )
    lags = r.get("lag_max_per_bin_seconds") or []
    steady = lags[1:-1] or lags  # the first and the last (flush) second are not steady state
    problems = [p for p in r["problems"] if not p.startswith("RSS growth")]  # too short
    return {
        "audio_seconds": r["audio_seconds"],
        "e2e_latency_median_seconds": round(statistics.median(steady), 4) if steady else None,
        "e2e_latency_max_seconds": round(max(steady), 4) if steady else None,
        "peak_rss_mib": round(r["rss_peak_kb"] / 1024, 1),
        "cpu_seconds_per_audio_second": r.get("cpu_seconds_per_audio_second_steady"),
        "cpu_seconds_per_audio_second_with_startup": r["cpu_seconds_per_audio_second"],
        "samples_verified": not problems,
        "problems": problems,
    }


def spleeter_checkpoint(runs_log: Path) -> tuple[Path, Path] | None:
    """``(params_json, checkpoint_dir)`` of the parity tooling's tiny checkpoint, training it
    with ``tools.spleeter_parity`` if it is missing; None if that fails."""
    params = PARITY_WORK / "params_perturbed.json"
    ckpt = PARITY_WORK / "model_perturbed"
    if not (params.is_file() and (ckpt / "model.index").is_file()):
        print("bench: training the tiny spleeter checkpoint (tools.spleeter_parity)", flush=True)
        with runs_log.open("w") as log:
            subprocess.run(
                [sys.executable, "-m", "tools.spleeter_parity", "--work", str(PARITY_WORK)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
    if params.is_file() and (ckpt / "model.index").is_file():
        return params, ckpt
    return None


def run_spleeter(params: Path, audio: np.ndarray, runs: int, work: Path) -> dict[str, Any]:
    """Time spleeter 2.4.2's ``Separator.separate`` in its virtualenv."""
    python = SPLEETER_VENV / "bin" / "python"
    npy = work / "spleeter_in.npy"
    np.save(npy, audio)
    proc = subprocess.run(
        [str(python), "-c", _SPLEETER_SCRIPT, str(params), str(npy), str(runs)],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"spleeter run failed: {proc.stderr[-2000:]}")


def noisereduce_times(audio: np.ndarray, rate: int, runs: int) -> dict[str, float]:
    """Median seconds of noisereduce on ``audio`` (n_samples, n_channels)."""
    try:
        import noisereduce
    except ImportError as e:
        raise ImportError("noisereduce must be installed for the noisereduce baseline") from e
    out = {}
    for stationary in (True, False):
        name = "stationary" if stationary else "non-stationary"

        def once(s: bool = stationary) -> object:
            return noisereduce.reduce_noise(y=audio.T, sr=rate, stationary=s, n_jobs=1)

        median, _ = _median_time(once, runs)
        out[name] = median
    return out


def models(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """``(name, params, model)`` to benchmark."""
    out = []
    if args.model or args.params:
        p, m = default_model_paths()
        out.append(("given", args.params or str(p), args.model or m))
    else:
        p, m = default_model_paths()
        out.append((f"default ({Path(m).name})", str(p), m))
        int8 = data_path(f"{DEFAULT_MODEL_NAME}_int8.tflite")
        if int8.is_file():
            out.append((f"default int8 ({int8.name})", str(p), str(int8)))
    if args.int8_model:
        out.append(("int8 (given)", args.params or out[0][1], args.int8_model))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if "--full-size" in args_list:  # the full-size Spleeter row: tools/bench_fullsize.py
        from . import bench_fullsize

        args_list.remove("--full-size")
        return bench_fullsize.main(args_list)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", help="params JSON of --model")
    parser.add_argument("--model", help=".tflite, checkpoint folder or passthrough")
    parser.add_argument("--int8-model", help="an int8 .tflite of the same params")
    parser.add_argument("--runs", type=int, default=5, help="runs per timing (median)")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per timing run (s)")
    parser.add_argument("--e2e-seconds", type=float, default=20.0, help="paced daemon run (s)")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench")
    args = parser.parse_args(argv)
    started_all = time.perf_counter()
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": describe_machine(),
        "command": "python -m tools.bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "runs": args.runs,
        "seconds": args.seconds,
        "chunk_samples": CHUNK,
        "models": [],
    }
    with tempfile.TemporaryDirectory(prefix="ssep-bench-") as tmp:
        work = Path(tmp)
        for i, (name, params, model) in enumerate(models(args)):
            print(f"bench: {name}", flush=True)
            sep = Separator(params, model, num_threads=args.threads)
            p = sep.params
            x = real_audio(args.seconds, p.sample_rate, p.n_channels)
            sweep = []
            default = StreamSettings().resolve(p.T, p.stream)
            for j, (hop, look) in enumerate(sweep_points(p.T, default)):
                stream = StreamSettings(hop_frames=hop, lookahead_frames=look)
                sweep.append(feed_rtf(sep, stream, x, args.runs if j == 0 else 1))
            entry = {
                "name": name,
                "params": params,
                "model": model,
                "sample_rate": p.sample_rate,
                "n_channels": p.n_channels,
                "T": p.T,
                "F": p.F,
                "frame_length": p.frame_length,
                "frame_step": p.frame_step,
                "sweep": sweep,
                "e2e": e2e(params, model, args.e2e_seconds, work, f"e2e{i}"),
            }
            result["models"].append(entry)
        # Side by side on the spleeter checkpoint's audio.
        compare: dict[str, Any] = {}
        ckpt = spleeter_checkpoint(work / "parity.log")
        if ckpt is None:
            compare["error"] = "no spleeter checkpoint (tools.spleeter_parity failed)"
        else:
            sparams, sdir = ckpt
            print("bench: spleeter comparison", flush=True)
            spec = json.loads(sparams.read_text())
            rate, n_ch = int(spec["sample_rate"]), int(spec["n_channels"])
            x = real_audio(args.seconds, rate, n_ch)
            compare = {"checkpoint": str(sdir.relative_to(ROOT)), "audio_seconds": args.seconds}
            try:
                sp = run_spleeter(sparams, x, args.runs, work)
                compare["spleeter_seconds_median"] = round(statistics.median(sp["seconds"]), 3)
                compare["spleeter_first_call_seconds"] = round(sp["first_call_seconds"], 2)
            except (RuntimeError, OSError) as e:
                compare["spleeter_error"] = str(e)[-500:]
            for label, stream in (
                ("streamsep_offline_spleeter_segmentation", StreamSettings.spleeter()),
                ("streamsep_offline_default_segmentation", StreamSettings()),
            ):
                sep = Separator(str(sparams), str(sdir), stream=stream, num_threads=args.threads)
                sep.separate(x[:rate], rate)  # warm-up
                median, _ = _median_time(partial(sep.separate, x, rate), args.runs)
                compare[f"{label}_seconds_median"] = round(median, 3)
            sep = Separator(str(sparams), str(sdir), num_threads=args.threads)
            compare["streamsep_streaming"] = feed_rtf(sep, StreamSettings(), x, args.runs)
            nr = noisereduce_times(x, rate, min(args.runs, 3))
            for k, v in nr.items():
                compare[f"noisereduce_{k}_seconds_median"] = round(v, 3)
        result["compare"] = compare
    result["total_seconds"] = round(time.perf_counter() - started_all, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    md = render_markdown(result)
    (args.out / "bench.md").write_text(md)
    print(md)
    return 0


def render_markdown(result: dict[str, Any]) -> str:
    """The tables of ``bench.md`` (also pasted into README's Performance section)."""
    lines = [
        f"Measured {result['date']} on {result['machine']}; command `{result['command']}` "
        f"({result['total_seconds']:.0f} s). RTF = processing seconds per audio second "
        f"(< 1 keeps up; `BlockSeparator.feed` in {result['chunk_samples']}-sample chunks, "
        f"{result['seconds']:.0f} s of real recordings, median of {result['runs']} runs at the "
        "default point, 1 run elsewhere). End to end = arrival at a ZeroMQ subscriber minus the "
        "header's capture time of a chunk's last sample, paced file source through "
        "`streamsep run` (median / max of per-second maxima, algorithmic latency included).",
        "",
        "| model | rate, ch, T | hop / lookahead (frames) | algorithmic latency | RTF (median) "
        "| x real time |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for m in result["models"]:
        for s in m["sweep"]:
            lines.append(
                f"| {m['name']} | {m['sample_rate']} Hz, {m['n_channels']}, {m['T']} | "
                f"{s['hop_frames']} / {s['lookahead_frames']} | "
                f"{s['algorithmic_latency_seconds']:.3f} s | {s['rtf_median']:.4f} | "
                f"{1 / max(s['rtf_median'], 1e-9):.1f} |"
            )
    lines += [
        "",
        "| model (default hop/lookahead) | end-to-end latency median / max | peak RSS "
        "(daemon) | daemon CPU s per audio s (after start-up) | every sample verified |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in result["models"]:
        e = m["e2e"]
        lines.append(
            f"| {m['name']} | {e['e2e_latency_median_seconds']} s / "
            f"{e['e2e_latency_max_seconds']} s | {e['peak_rss_mib']} MiB | "
            f"{e['cpu_seconds_per_audio_second']} | {e['samples_verified']} |"
        )
    c = result.get("compare", {})
    if "error" in c:
        lines += ["", f"Spleeter comparison: {c['error']}"]
    elif c:
        secs = c["audio_seconds"]
        base = c.get("streamsep_offline_spleeter_segmentation_seconds_median")

        def row(label: str, s: float | None) -> str:
            if s is None:
                return f"| {label} | n/a | n/a | n/a |"
            ratio = f"{s / base:.2f}" if base else "n/a"
            return f"| {label} | {s:.3f} s | {s / secs:.4f} | {ratio} |"

        st = c["streamsep_streaming"]
        lines += [
            "",
            f"**Tiny checkpoint only** (filters 8..256, T = 128, F = 256: about 1/16 of the "
            "seed's network; for full-size Spleeter models see `python -m tools.bench "
            f"--full-size`). Same {secs:.0f} s of audio (44.1 kHz stereo), same weights "
            f"(`{c['checkpoint']}`, the tiny checkpoint that `python -m tools.spleeter_parity` "
            "trains with `spleeter train`, not in the repository; converted by streamsep on "
            "load):",
            "",
            "| method | seconds (median) | RTF | x streamsep offline |",
            "| --- | --- | --- | --- |",
            row(
                "spleeter 2.4.2 `Separator.separate` (warm, MWF off)",
                c.get("spleeter_seconds_median"),
            ),
            row(
                "streamsep `Separator.separate`, spleeter segmentation",
                c.get("streamsep_offline_spleeter_segmentation_seconds_median"),
            ),
            row(
                "streamsep `Separator.separate`, default overlap segmentation",
                c.get("streamsep_offline_default_segmentation_seconds_median"),
            ),
            row(
                "streamsep streaming `BlockSeparator.feed` (hop "
                f"{st['hop_frames']}, lookahead {st['lookahead_frames']})",
                st["rtf_median"] * secs,
            ),
            row("noisereduce stationary", c.get("noisereduce_stationary_seconds_median")),
            row("noisereduce non-stationary", c.get("noisereduce_non-stationary_seconds_median")),
        ]
        if "spleeter_first_call_seconds" in c:
            lines.append(
                f"\nspleeter's first `separate()` (graph build + 1 s of audio): "
                f"{c['spleeter_first_call_seconds']} s."
            )
        if "spleeter_error" in c:
            lines.append(f"\nspleeter failed: {c['spleeter_error']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
