"""Benchmark of the streaming engine itself (no TensorFlow): real-time factor and import time.

    python -m tools.bench_engine [--model passthrough] [--params P] [--seconds 60] [--runs 5]

Measures, on the machine it runs on, with the given model (default: passthrough, which isolates
the engine: STFT, block scheduling, mask overlap-add, inverse STFT):

* ``BlockSeparator.feed`` speed for several chunk sizes (x real time, median of ``--runs``);
* the threaded pipeline (file source -> ring -> analysis -> worker -> synthesis), as fast as
  possible, median x real time;
* ``python -c "import streamsep"`` wall time (median).

Prints a Markdown table and writes JSON next to it (``--json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from streamsep.engine.offline import Separator
from streamsep.engine.pipeline import CollectSink, Pipeline
from streamsep.engine.streamer import BlockSeparator
from streamsep.resources import data_path
from streamsep.sources.file import FileSource

from .machine import describe_machine

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "tests" / "fixtures" / "audio" / "orca-autoencoder_someCalls.flac"


def _audio(seconds: float, rate: int, channels: int) -> np.ndarray:
    data, file_rate = sf.read(str(CLIP), dtype="float32", always_2d=True)
    from streamsep.engine.audio import adapt_channels, resample

    data = resample(adapt_channels(data, channels), file_rate, rate)
    reps = int(np.ceil(seconds * rate / data.shape[0]))
    return np.tile(data, (reps, 1))[: int(seconds * rate)]


def bench_feed(separator: Separator, x: np.ndarray, chunk: int, runs: int) -> float:
    """Median x real time of BlockSeparator.feed over ``runs`` runs."""
    rate = separator.params.sample_rate
    speeds = []
    for _ in range(runs):
        engine = BlockSeparator(separator.model, separator.stream)
        started = time.perf_counter()
        for i in range(0, x.shape[0], chunk):
            engine.feed(x[i : i + chunk])
        engine.flush()
        speeds.append(x.shape[0] / rate / (time.perf_counter() - started))
    return statistics.median(speeds)


def bench_pipeline(separator: Separator, x: np.ndarray, runs: int) -> float:
    """Median x real time of the threaded pipeline fed from a file as fast as possible."""
    rate = separator.params.sample_rate
    speeds = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.wav"
        sf.write(path, x, rate, subtype="FLOAT")
        for _ in range(runs):
            sink = CollectSink()
            pipeline = Pipeline(
                separator.model,
                separator.stream,
                source_rate=rate,
                source_channels=x.shape[1],
                sinks=[sink],
            )
            source = FileSource(path, pipeline.ring, chunk_samples=1024)
            started = time.perf_counter()
            pipeline.start()
            source.start()
            if not pipeline.wait(timeout=600):
                raise SystemExit("bench: pipeline did not finish in 600 s")
            speeds.append(x.shape[0] / rate / (time.perf_counter() - started))
    return statistics.median(speeds)


def bench_import(runs: int) -> float:
    """Median wall seconds of a fresh ``import streamsep``."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import streamsep"], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default=str(data_path("passthrough.json")))
    parser.add_argument("--model", default="passthrough")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per run (s)")
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads")
    parser.add_argument("--json", default="docs/bench/engine.json", help="JSON output path")
    args = parser.parse_args(argv)

    separator = Separator(args.params, args.model, num_threads=args.threads)
    p = separator.params
    x = _audio(args.seconds, p.sample_rate, p.n_channels)
    rows = []
    for chunk in (512, 1024, 4096, 16384):
        rows.append((f"feed, chunk {chunk}", bench_feed(separator, x, chunk, args.runs)))
    rows.append(("threaded pipeline, file source", bench_pipeline(separator, x, args.runs)))
    import_s = bench_import(args.runs)
    engine = BlockSeparator(separator.model, separator.stream)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(),
        "model": args.model,
        "params": {
            "sample_rate": p.sample_rate,
            "frame_length": p.frame_length,
            "frame_step": p.frame_step,
            "T": p.T,
            "F": p.F,
            "n_channels": p.n_channels,
        },
        "hop_frames": engine.hop_frames,
        "lookahead_frames": engine.lookahead_frames,
        "latency_seconds": engine.latency_seconds,
        "audio_seconds_per_run": args.seconds,
        "runs": args.runs,
        "x_realtime_median": {name: round(v, 1) for name, v in rows},
        "import_seconds_median": round(import_s, 3),
    }
    print(
        f"machine: {result['machine']}; model: {args.model}; {args.seconds:.0f} s audio, "
        f"median of {args.runs} runs; latency {engine.latency_seconds:.3f} s"
    )
    print("\n| measurement | x real time (median) |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value:.1f} |")
    print(f"\n`import streamsep`: {import_s:.3f} s (median)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
