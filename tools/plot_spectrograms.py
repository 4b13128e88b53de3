"""Draw mix / orca / noise spectrograms of a separated file side by side, to PNG.

Usage::

    python -m tools.plot_spectrograms --params P.json --model M.tflite INPUT.flac -o out.png \\
        [--max-khz 16] [--seconds 30] [--dynamic-range-db 80]

The input is separated with ``streamsep.engine.offline.Separator`` (default ``StreamSettings``); the
three panels share one colour scale (dB re the loudest bin of the mix), computed with the
model's STFT at the file's rate after the model's DC-blocking high-pass.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.audio import adapt_channels, read_audio
from streamsep.engine.highpass import HighPass
from streamsep.engine.offline import Separator
from streamsep.engine.spectral import stft
from streamsep.errors import StreamsepError

__all__ = ["plot", "save_png", "main"]


def _spectrogram_db(x: NDArray[np.float32], frame_length: int) -> NDArray[np.float64]:
    spectra = stft(x[:, None], frame_length, frame_length // 4)[:, :, 0]
    return 20 * np.log10(np.abs(spectra).T + 1e-12)


def plot(
    input_path: Path,
    separator: Separator,
    out_path: Path,
    *,
    max_khz: float | None = None,
    seconds: float | None = None,
    dynamic_range_db: float = 80.0,
) -> Path:
    """Separate ``input_path`` and write the three-panel PNG ``out_path``.

    Parameters
    ----------
    input_path : Path
        Any file soundfile reads; channels are averaged.
    separator : Separator
    out_path : Path
        The PNG to write (folders created).
    max_khz : float, optional
        Upper frequency shown (default: the file's Nyquist frequency).
    seconds : float, optional
        Only the first ``seconds`` of the file.
    dynamic_range_db : float
        Colour range below the loudest mix bin.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    audio, rate = read_audio(input_path)
    if seconds is not None:
        audio = audio[: int(seconds * rate)]
    mono = adapt_channels(audio, 1)
    stems = separator.separate(mono, rate)
    params = separator.params
    mix = mono[:, 0]
    if params.highpass_hz and params.highpass_hz < rate / 2:
        mix = HighPass(params.highpass_hz, rate, 1).process(mono)[:, 0]
    # The model's frame duration at the file's rate (power of two).
    frame_length = 1 << int(round(np.log2(params.frame_length * rate / params.sample_rate)))
    panels = [("mix", mix)] + [(k, v.mean(axis=1)) for k, v in stems.items()]
    images = [(name, _spectrogram_db(x, frame_length)) for name, x in panels]
    top = float(images[0][1].max())
    images = [(name, image - top) for name, image in images]  # 0 dB = loudest mix bin
    duration = mix.shape[0] / rate
    nyquist_khz = rate / 2000
    fig, axes = plt.subplots(
        1, len(images), figsize=(4.5 * len(images) + 1, 4), sharey=True, layout="constrained"
    )
    for ax, (name, image) in zip(np.atleast_1d(axes), images, strict=True):
        mesh = ax.imshow(
            image,
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=(0.0, duration, 0.0, nyquist_khz),
            vmin=-dynamic_range_db,
            vmax=0.0,
        )
        ax.set_title(name)
        ax.set_xlabel("time (s)")
        ax.set_ylim(0, min(max_khz or nyquist_khz, nyquist_khz))
    np.atleast_1d(axes)[0].set_ylabel("frequency (kHz)")
    fig.colorbar(mesh, ax=axes, label="dB re max of mix", shrink=0.9)
    fig.suptitle(f"{input_path.name}  ({rate} Hz, model {params.sample_rate} Hz)")
    return save_png(fig, out_path)


def save_png(fig: Any, out_path: Path) -> Path:
    """Write ``fig`` to ``out_path`` (folders created, 110 dpi) and close it."""
    import matplotlib.pyplot as plt

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.plot_spectrograms", description="Mix/orca/noise spectrograms."
    )
    parser.add_argument("input", type=Path, help="audio file (WAV, FLAC...)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    parser.add_argument("--params", type=Path, help="params JSON (default: bundled model)")
    parser.add_argument("--model", type=Path, help=".tflite model (default: bundled model)")
    parser.add_argument("--max-khz", type=float, help="upper frequency shown, kHz")
    parser.add_argument("--seconds", type=float, help="only the first SECONDS")
    parser.add_argument("--dynamic-range-db", type=float, default=80.0, help="colour range, dB")
    args = parser.parse_args(argv)
    try:
        separator = Separator(args.params, args.model)
        plot(
            args.input,
            separator,
            args.output,
            max_khz=args.max_khz,
            seconds=args.seconds,
            dynamic_range_db=args.dynamic_range_db,
        )
    except StreamsepError as e:
        raise SystemExit(f"error: {e}") from None
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
