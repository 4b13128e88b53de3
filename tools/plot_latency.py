"""Plot the latency/quality curve of an evaluation run: orca SI-SDRi against latency.

Usage::

    python -m tools.evaluate ... --lookaheads 0 8 16 32 --out runs/eval/NAME
    python -m tools.plot_latency runs/eval/NAME/results.json -o docs/results/latency.png

One line per model: for each streaming setting of the run (the default one and each
``--lookaheads`` value) the mean orca-stem SI-SDR improvement (dB, all SNR buckets) against the
algorithmic latency (seconds: ``frame_length - 1 + lookahead_frames * frame_step`` samples at
the model rate). The offline result of each model is drawn as a dashed line for reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.dataset.mixtures import ORCA_STEM

from .plot_spectrograms import save_png

__all__ = ["plot", "main"]


def plot(result: dict[str, Any], out_path: Path) -> Path:
    """Write the PNG of ``result["latency_curve"]`` (tools.evaluate results) to ``out_path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result.get("latency_curve") or []
    if not curve:
        raise ValueError("results.json has no latency_curve: run tools.evaluate with --lookaheads")
    fig, ax = plt.subplots(figsize=(5.5, 3.6), layout="constrained")
    for model in dict.fromkeys(p["model"] for p in curve):
        points = [p for p in curve if p["model"] == model]
        xs = [p["latency_s"] for p in points]
        ys = [p[f"si_sdri_{ORCA_STEM}"] for p in points]
        (line,) = ax.plot(xs, ys, marker="o", label=f"{model} streaming")
        for p in points:
            ax.annotate(
                f"L={p['lookahead_frames']}",
                (p["latency_s"], p[f"si_sdri_{ORCA_STEM}"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
            )
        offline = result["summary"].get(f"{model} offline")
        if offline is not None:
            ax.axhline(
                offline[ORCA_STEM]["all"]["si_sdri"],
                linestyle="--",
                color=line.get_color(),
                label=f"{model} offline",
            )
    for baseline in ("noisereduce-stationary", "noisereduce-nonstationary"):
        if baseline in result["summary"]:
            ax.axhline(
                result["summary"][baseline][ORCA_STEM]["all"]["si_sdri"],
                linestyle=":",
                color="grey",
                label=baseline,
            )
    ax.set_xlabel("algorithmic latency (s)")
    ax.set_ylabel("orca SI-SDRi (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_png(fig, out_path)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.plot_latency", description="Orca SI-SDRi against latency."
    )
    parser.add_argument("results", type=Path, help="results.json of tools.evaluate")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    try:
        result = json.loads(args.results.read_text())
        plot(result, args.output)
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"error: {args.results}: {e}") from None
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
