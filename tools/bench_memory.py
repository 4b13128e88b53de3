"""Peak memory of ``streamsep separate`` against the input's length.

    python -m tools.bench_memory [--minutes 6 60] [--runs 1] [--json docs/bench/memory.json]

For each length, writes that many minutes of 48 kHz mono audio (16-bit WAV: the fixture
recordings looped with a varied gain, so the model sees real sound) to a temporary folder and
runs ``streamsep separate`` on it with the bundled model under ``/usr/bin/time -v`` (Debian
package ``time``), which reports the process's peak resident set size. Prints a Markdown table
(median of ``--runs``) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from tools.machine import describe_machine

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "tests" / "fixtures" / "audio"
RATE = 48000
TIME = Path("/usr/bin/time")


def write_audio(path: Path, minutes: float) -> None:
    """``minutes`` of 48 kHz mono 16-bit audio, written a piece at a time."""
    from streamsep.engine.audio import adapt_channels, resample

    pieces = []
    for clip in sorted(AUDIO.glob("*.flac")):
        data, rate = sf.read(str(clip), dtype="float32", always_2d=True)
        pieces.append(resample(adapt_channels(data, 1), rate, RATE))
    loop = np.concatenate(pieces)[:, 0]
    loop -= loop.mean()
    loop *= 0.5 / max(float(np.max(np.abs(loop))), 1e-9)
    total = int(minutes * 60 * RATE)
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", RATE, 1, "PCM_16") as f:
        done = 0
        while done < total:
            n = min(loop.shape[0], total - done)
            f.write(loop[:n] * rng.uniform(0.3, 1.0))
            done += n


def peak_rss_mib(audio: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one ``streamsep separate`` run."""
    command = [str(TIME), "-v", sys.executable, "-m", "streamsep", "separate", str(audio)]
    command += ["-o", str(out), "--no-progress"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"streamsep separate failed ({result.returncode}):\n{result.stderr}")
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    if match is None:
        raise SystemExit(f"no peak RSS in /usr/bin/time's output:\n{result.stderr}")
    return int(match.group(1)) / 1024, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[6.0, 60.0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if not TIME.is_file():
        parser.error(f"{TIME} not found: install the Debian package 'time'")
    rows = []
    with tempfile.TemporaryDirectory(prefix="streamsep-bench-memory") as tmp:
        for minutes in args.minutes:
            audio = Path(tmp) / f"in-{minutes:g}min.wav"
            write_audio(audio, minutes)
            runs = [peak_rss_mib(audio, Path(tmp) / "out") for _ in range(args.runs)]
            audio.unlink()
            rss = statistics.median(r[0] for r in runs)
            wall = statistics.median(r[1] for r in runs)
            rows.append({"minutes": minutes, "peak_rss_mib": round(rss, 1), "wall_s": round(wall)})
            print(f"{minutes:g} min: peak RSS {rss:.1f} MiB, {wall:.0f} s", file=sys.stderr)
    command = "python -m tools.bench_memory " + " ".join(sys.argv[1:])
    machine = describe_machine()
    print(f"Machine: {machine}. Command: `{command.strip()}` (median of {args.runs} run(s)).\n")
    print("| input (48 kHz mono) | peak RSS | wall |")
    print("| --- | --- | --- |")
    for row in rows:
        print(f"| {row['minutes']:g} min | {row['peak_rss_mib']} MiB | {row['wall_s']} s |")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"machine": machine, "command": command, "rows": rows}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
