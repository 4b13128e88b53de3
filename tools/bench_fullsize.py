"""Full-size Spleeter checkpoint: whole-process CPU, wall and peak RSS, spleeter CLI vs streamsep.

    python -m tools.bench_fullsize [--runs 3] [--seconds 600] [--cache out/bench_cache]
        [--out docs/bench] [--rtf-seconds 60]

(also ``python -m tools.bench --full-size ...``). Steps:

1. ``spleeter train`` (spleeter 2.4.2 in ``.venv-spleeter``, created by
   :func:`tools.spleeter_parity.ensure_spleeter_venv` if needed) trains the seed's network
   (``configs/2stems-finetune.json``: 44.1 kHz stereo, 4096/1024, T = 512, F = 1024, filters
   16..512, ELU) for 12 steps on generated whistles-in-noise; the checkpoint is cached in
   ``CACHE/fullsize/model`` and reused while the params are unchanged.
2. A ``--seconds`` stereo 44.1 kHz WAV of real recordings (``tests/fixtures/audio``, looped;
   :func:`tools.bench.real_audio`); spleeter's CLI reads at most 600 s.
3. Interleaved, ``--runs`` times each, every command under ``/usr/bin/time -v`` at ``nice 5``
   (CPU = user + sys of the whole process; peak RSS = maximum resident set size):
   ``spleeter separate`` (the CLI, MWF off, WAV adapter, no FFmpeg); ``streamsep separate
   --params P --model CKPT`` (its default for a checkpoint dir: Spleeter's segmentation);
   the same with ``--stream-segmentation overlap``; streamsep with a ``float16`` and an
   ``int8-dynamic`` conversion of the checkpoint. The first streamsep run converts (not timed:
   one untimed warm-up per command). Medians are reported.
4. Each streamsep output against spleeter's: ``20 log10(||streamsep - spleeter|| /
   ||spleeter||)`` per stem.
5. streamsep's peak RSS on a quarter of the file (flat in file length or not).
6. Streaming RTF (``BlockSeparator.feed`` in 1024-sample chunks, 2 threads) at hop 40 /
   lookahead 39 frames (algorithmic latency 0.999 s), median of ``--runs`` on ``--rtf-seconds``.

Writes ``OUT/fullsize.json`` and ``OUT/fullsize.md`` (paths relative to the repository).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import soundfile as sf

from .machine import describe_machine, shown_path

ROOT: Final = Path(__file__).resolve().parents[1]
SEED_PARAMS: Final = ROOT / "configs" / "2stems-finetune.json"
SPLEETER_VENV: Final = ROOT / ".venv-spleeter"
TRAIN_STEPS: Final = 12
STREAM_HOP: Final = 40
STREAM_LOOKAHEAD: Final = 39
"""Latency (4096 - 1 + 39 * 1024) / 44100 = 0.999 s."""
_TIME_FIELDS: Final = {
    "User time (seconds)": "user",
    "System time (seconds)": "sys",
    "Maximum resident set size (kbytes)": "rss_kb",
    "Elapsed (wall clock) time (h:mm:ss or m:ss)": "wall",
}


def bench_params(work: Path) -> dict[str, Any]:
    """The seed's params with training paths in ``work`` and a 12-step schedule."""
    params = json.loads(SEED_PARAMS.read_text())
    params.update(
        {
            "train_csv": str(work / "train.csv"),
            "validation_csv": str(work / "validation.csv"),
            "model_dir": str(work / "model"),
            "training_cache": str(work / "training_cache"),
            "validation_cache": str(work / "validation_cache"),
            "batch_size": 2,
            "train_max_steps": TRAIN_STEPS,
            "throttle_secs": 1,
            "save_checkpoints_steps": TRAIN_STEPS,
            "save_summary_steps": TRAIN_STEPS,
            "chunk_duration": 13.0,
            "n_chunks_per_song": 1,
        }
    )
    return params


def full_size_checkpoint(cache: Path, log: Path) -> tuple[Path, Path]:
    """``(params_json, checkpoint_dir)``: a full-size checkpoint from ``spleeter train``, cached.

    Raises
    ------
    RuntimeError
        If the spleeter virtualenv cannot be made or training writes no checkpoint.
    """
    from streamsep.engine.checkpoint import find_checkpoint
    from streamsep.errors import ModelError

    from .spleeter_parity import StepError, ensure_spleeter_venv, make_dataset

    work = cache / "fullsize"
    params = bench_params(work)
    params_path = work / "params.json"
    stamp = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    stamp_path = work / "params.sha256"
    try:
        if stamp_path.is_file() and stamp_path.read_text().strip() == stamp:
            find_checkpoint(work / "model")
            return params_path, work / "model"
    except ModelError:
        pass
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        python = ensure_spleeter_venv(SPLEETER_VENV, "python3")
    except StepError as e:
        raise RuntimeError(str(e)) from e
    make_dataset(work / "data", work / "train.csv", n_songs=2, seconds=16.0)
    shutil.copy(work / "train.csv", work / "validation.csv")
    params_path.write_text(json.dumps(params, indent=2) + "\n")
    print(
        f"bench: spleeter train, full size, {TRAIN_STEPS} steps (log {shown_path(log)})",
        flush=True,
    )
    env = _spleeter_env()
    with log.open("w") as f:
        subprocess.run(
            [str(python), "-m", "spleeter", "train", "-p", str(params_path), "-d",
             str(work / "data"), "-a", "tools.spleeter_side.WavAudioAdapter"],
            cwd=work, env=env, stdout=f, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    try:
        find_checkpoint(work / "model")
    except ModelError as e:
        raise RuntimeError(f"spleeter train wrote no checkpoint ({e}); see {log}") from e
    stamp_path.write_text(stamp + "\n")
    return params_path, work / "model"


def _spleeter_env() -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
    }


def _wall_seconds(text: str) -> float:
    parts = [float(p) for p in text.split(":")]
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


def timed(command: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    """Run ``command`` under ``nice -n 5 /usr/bin/time -v``; its CPU, wall and peak RSS.

    Raises
    ------
    RuntimeError
        If the command fails.
    """
    proc = subprocess.run(
        ["nice", "-n", "5", "/usr/bin/time", "-v", *command],
        cwd=cwd, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {proc.stderr[-3000:]}")
    values: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        key, _, value = line.strip().partition(": ")
        if key in _TIME_FIELDS:
            name = _TIME_FIELDS[key]
            values[name] = _wall_seconds(value) if name == "wall" else float(value)
    return {
        "cpu_seconds": round(values["user"] + values["sys"], 2),
        "wall_seconds": round(values["wall"], 2),
        "peak_rss_mib": round(values["rss_kb"] / 1024, 1),
    }


def _streamsep_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _read_stems(directory: Path, stems: Sequence[str]) -> dict[str, np.ndarray]:
    out = {}
    for stem in stems:
        audio, _ = sf.read(directory / f"{stem}.wav", dtype="float32", always_2d=True)
        out[stem] = audio
    return out


def rel_error_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    """``20 log10(||estimate - reference|| / ||reference||)`` over the common length."""
    n = min(estimate.shape[0], reference.shape[0])
    e, r = estimate[:n].astype(np.float64), reference[:n].astype(np.float64)
    return float(20 * np.log10(np.linalg.norm(e - r) / max(np.linalg.norm(r), 1e-30)))


def streaming_rtf(params_path: Path, model: str, seconds: float, runs: int) -> dict[str, Any]:
    """RTF of ``BlockSeparator.feed`` at hop 40 / lookahead 39 (latency <= 1 s)."""
    from streamsep.engine.offline import Separator
    from streamsep.engine.settings import StreamSettings

    from .bench import feed_rtf, real_audio

    sep = Separator(str(params_path), model, num_threads=2)
    x = real_audio(seconds, sep.params.sample_rate, sep.params.n_channels)
    stream = StreamSettings(hop_frames=STREAM_HOP, lookahead_frames=STREAM_LOOKAHEAD)
    return feed_rtf(sep, stream, x, runs)


def convert_variant(params_path: Path, checkpoint: Path, precision: str) -> Path:
    """A ``precision`` conversion of ``checkpoint`` (cached next to it by content)."""
    from streamsep.engine.checkpoint import cached_tflite_for_checkpoint
    from streamsep.engine.params import load_params

    return cached_tflite_for_checkpoint(checkpoint, load_params(params_path), precision=precision)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement; the result dict written as ``fullsize.json``."""
    from .bench import real_audio

    started_all = time.perf_counter()
    cache: Path = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    params_path, checkpoint = full_size_checkpoint(cache, cache / "fullsize_train.log")
    params = json.loads(params_path.read_text())
    stems = list(params["instrument_list"])
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": describe_machine(),
        "command": "python -m tools.bench_fullsize "
        + " ".join(sys.argv[1:] if args.argv is None else args.argv),
        "checkpoint": shown_path(checkpoint),
        "audio_seconds": args.seconds,
        "runs": args.runs,
    }
    with tempfile.TemporaryDirectory(prefix="ssep-fullsize-") as tmp:
        work = Path(tmp)
        audio = real_audio(args.seconds, 44100, 2)
        wav = work / "long.wav"
        sf.write(wav, audio, 44100, subtype="FLOAT")
        quarter = work / "quarter.wav"
        sf.write(quarter, audio[: audio.shape[0] // 4], 44100, subtype="FLOAT")
        del audio
        variants = {"float16": None, "int8-dynamic": None}
        for precision in variants:
            variants[precision] = convert_variant(params_path, checkpoint, precision)
        spleeter_python = SPLEETER_VENV / "bin" / "python"
        ss = [sys.executable, "-m", "streamsep", "separate", "--no-progress", "--params",
              str(params_path)]  # fmt: skip
        commands: dict[str, tuple[list[str], dict[str, str], Path | None]] = {
            "spleeter separate (CLI)": (
                [str(spleeter_python), "-m", "spleeter", "separate", "-p", str(params_path),
                 "-a", "tools.spleeter_side.WavAudioAdapter", "-o", str(work / "spleeter"),
                 str(wav)],
                _spleeter_env(), work / "spleeter" / "long",
            ),
            "streamsep separate --model CKPT (default: Spleeter segmentation)": (
                [*ss, "--model", str(checkpoint), "-o", str(work / "exact"), str(wav)],
                _streamsep_env(), work / "exact" / "long",
            ),
            "streamsep, --stream-segmentation overlap": (
                [*ss, "--model", str(checkpoint), "--stream-segmentation", "overlap", "-o",
                 str(work / "overlap"), str(wav)],
                _streamsep_env(), work / "overlap" / "long",
            ),
        }  # fmt: skip
        for precision, path in variants.items():
            commands[f"streamsep, {precision} conversion, Spleeter segmentation"] = (
                [*ss, "--model", str(path), "--stream-segmentation", "spleeter", "-o",
                 str(work / precision), str(wav)],
                _streamsep_env(), work / precision / "long",
            )  # fmt: skip
        measured: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
        for name, (command, env, _) in commands.items():  # warm-up: conversion, page cache
            if name.startswith("streamsep"):
                print(f"bench: warm-up {name}", flush=True)
                timed(command, env, ROOT)
        for r in range(args.runs):
            for name, (command, env, _) in commands.items():
                print(f"bench: run {r + 1}/{args.runs} {name}", flush=True)
                measured[name].append(timed(command, env, ROOT))
        reference = _read_stems(commands["spleeter separate (CLI)"][2] or work, stems)
        rows = []
        for name, (_command, _, out_dir) in commands.items():
            runs = measured[name]
            row: dict[str, Any] = {
                "name": name,
                "cpu_seconds_median": statistics.median(m["cpu_seconds"] for m in runs),
                "wall_seconds_median": statistics.median(m["wall_seconds"] for m in runs),
                "peak_rss_mib_median": statistics.median(m["peak_rss_mib"] for m in runs),
                "runs": runs,
            }
            if name.startswith("streamsep") and out_dir is not None:
                ours = _read_stems(out_dir, stems)
                row["rel_error_db"] = {
                    s: round(rel_error_db(ours[s], reference[s]), 1) for s in stems
                }
            rows.append(row)
        base = rows[0]["cpu_seconds_median"]
        for row in rows:
            row["cpu_ratio_to_spleeter"] = round(row["cpu_seconds_median"] / base, 3)
        result["rows"] = rows
        exact = commands["streamsep separate --model CKPT (default: Spleeter segmentation)"][0]
        quarter_cmd = [*exact[:-1], str(quarter)]
        quarter_cmd[quarter_cmd.index("-o") + 1] = str(work / "quarter")
        result["quarter_file_peak_rss_mib"] = timed(quarter_cmd, _streamsep_env(), ROOT)[
            "peak_rss_mib"
        ]
    result["streaming"] = {
        "float32": streaming_rtf(params_path, str(checkpoint), args.rtf_seconds, args.runs)
    }
    result["total_seconds"] = round(time.perf_counter() - started_all, 1)
    return result


def render_markdown(result: dict[str, Any]) -> str:
    """``fullsize.md``: the table pasted into README and docs/spleeter.md."""
    lines = [
        f"Measured {result['date']} on {result['machine']}; command `{result['command']}` "
        f"({result['total_seconds']:.0f} s). Full-size checkpoint `{result['checkpoint']}` "
        f"(`spleeter train`, {TRAIN_STEPS} steps, the seed's params), a "
        f"{result['audio_seconds']:.0f} s stereo 44.1 kHz WAV of real recordings; whole "
        "processes under `/usr/bin/time -v`, interleaved, median of "
        f"{result['runs']} runs (CPU = user + sys).",
        "",
        "| command | CPU s | x spleeter CPU | wall s | peak RSS "
        "| output vs spleeter (dB, per stem) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        errors = row.get("rel_error_db")
        err = " / ".join(f"{v:.1f}" for v in errors.values()) if errors else "reference"
        lines.append(
            f"| {row['name']} | {row['cpu_seconds_median']:.1f} | "
            f"{row['cpu_ratio_to_spleeter']:.2f} | {row['wall_seconds_median']:.1f} | "
            f"{row['peak_rss_mib_median']:.0f} MiB | {err} |"
        )
    s = result["streaming"]["float32"]
    lines += [
        "",
        f"streamsep peak RSS on a quarter of the file ({result['audio_seconds'] / 4:.0f} s): "
        f"{result['quarter_file_peak_rss_mib']:.0f} MiB.",
        "",
        f"Streaming (`BlockSeparator.feed`, 1024-sample chunks, 2 threads, float32): hop "
        f"{s['hop_frames']} / lookahead {s['lookahead_frames']} frames, algorithmic latency "
        f"{s['algorithmic_latency_seconds']:.3f} s: RTF {s['rtf_median']:.3f} (median; runs "
        f"{', '.join(f'{v:.3f}' for v in s['rtf_runs'])}).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench_fullsize", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per command")
    parser.add_argument("--seconds", type=float, default=600.0, help="audio file length (s)")
    parser.add_argument("--rtf-seconds", type=float, default=60.0, help="streaming audio (s)")
    parser.add_argument("--cache", type=Path, default=ROOT / "out" / "bench_cache")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench")
    parser.add_argument(
        "--checkpoint-only", action="store_true", help="only train (or find) the checkpoint"
    )
    args = parser.parse_args(argv)
    args.argv = argv
    if not 0 < args.seconds <= 600:
        parser.error("--seconds must be a positive number <= 600 (spleeter's CLI limit)")
    if args.checkpoint_only:
        args.cache.mkdir(parents=True, exist_ok=True)
        print(full_size_checkpoint(args.cache, args.cache / "fullsize_train.log"))
        return 0
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fullsize.json").write_text(json.dumps(result, indent=2) + "\n")
    md = render_markdown(result)
    (args.out / "fullsize.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
