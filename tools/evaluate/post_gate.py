"""Experiment (issue 19, "background context"): does a causal stationary gate after the network
help? Per STFT bin, a running noise-floor estimate of the mix (rises slowly, falls fast, in the
log domain: no look-ahead) gates the orca stem: gain ``sqrt(max(0, 1 - beta floor / |orca|^2))``,
not below ``floor_db``. Prints the orca SI-SDRi of the model alone and gated, on the val
mixtures of ``tools.evaluate`` (same seed, same mixtures), and noisereduce for reference.

Usage::

    python -m tools.evaluate.post_gate --data ../shared/data --seed 4
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from streamsep.engine.offline import Separator
from streamsep.engine.params import load_params
from streamsep.resources import default_model_paths
from tools.evaluate.methods import _highpass, _mixtures, _noisereduce
from tools.evaluate.metrics import si_sdr

N_FFT, HOP = 2048, 512
SETTINGS = [(5.0, 0.5, b, f) for b in (0.5, 1.0, 2.0) for f in (-20.0, -40.0)] + [
    (2.0, 0.5, 1.0, -20.0),
    (10.0, 1.0, 1.0, -20.0),
]  # (rise s, fall s, beta, floor dB)


def gate(
    mix: NDArray[np.float32],
    orca: NDArray[np.float32],
    rate: int,
    rise_s: float,
    fall_s: float,
    beta: float,
    floor_db: float,
) -> NDArray[np.float32]:
    """``orca`` gated by the causal noise floor of ``mix`` (both (n,), at ``rate``)."""
    kw = {"fs": rate, "nperseg": N_FFT, "noverlap": N_FFT - HOP}
    _, _, m = signal.stft(mix, **kw)
    _, _, o = signal.stft(orca, **kw)
    log_power = np.log(np.abs(m) ** 2 + 1e-20)
    dt = HOP / rate
    rise, fall = 1 - math.exp(-dt / rise_s), 1 - math.exp(-dt / fall_s)
    background = log_power[:, 0].copy()
    gains = np.empty(m.shape)
    for t in range(m.shape[1]):
        step = log_power[:, t] - background
        background += np.where(step > 0, rise, fall) * step
        ratio = np.exp(background) / (np.abs(o[:, t]) ** 2 + 1e-20)
        gains[:, t] = np.maximum(np.sqrt(np.clip(1 - beta * ratio, 0, 1)), 10 ** (floor_db / 20))
    _, y = signal.istft(o * gains, **kw)
    return np.asarray(y[: orca.shape[0]], np.float32)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the shared data folder")
    parser.add_argument("--seed", type=int, default=4, help="mixture seed (as tools.evaluate)")
    args = parser.parse_args(argv)
    params_path, model_path = default_model_paths()
    params = load_params(params_path)
    rate = params.sample_rate
    mixtures = _mixtures(Path(args.data), "val", params, (-5, 0, 5), 8, args.seed, 8.0, -30.0)
    separator = Separator(num_threads=2)
    reduce = _noisereduce(True, rate)
    model, reduced, gated = [], [], {s: [] for s in SETTINGS}
    for _, mixture in mixtures:
        orca = separator.separate(mixture.mix[:, None], rate)["orca_vocals"][:, 0]
        ref = _highpass(mixture.sources["orca_vocals"], params)
        scored = _highpass(mixture.mix, params)
        base = si_sdr(ref, scored)
        model.append(si_sdr(ref, orca) - base)
        reduced.append(si_sdr(ref, reduce(scored)["orca_vocals"]) - base)
        for s in SETTINGS:
            gated[s].append(si_sdr(ref, gate(mixture.mix, orca, rate, *s)) - base)
    print(f"val seed {args.seed}, {len(mixtures)} mixtures, model {Path(model_path).name}")
    print(f"model alone {np.mean(model):.2f} dB; noisereduce stationary {np.mean(reduced):.2f} dB")
    print("| rise s | fall s | beta | floor dB | gated SI-SDRi | paired difference |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for s, values in gated.items():
        d = np.array(values) - np.array(model)
        sem = d.std(ddof=1) / math.sqrt(d.size)
        print(f"| {s[0]:g} | {s[1]:g} | {s[2]:g} | {s[3]:g} | {np.mean(values):.2f} | "
              f"{d.mean():+.2f} ± {sem:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
