"""Experiment (issue 19, "background context"): does the running noise floor as a network input
help? Scores Keras checkpoints, with and without ``model.params.context = "floor"``, on the same
validation mixtures of ``tools.evaluate`` (same seed), cold (the mixture is the whole stream) and
warm (the stream starts ``--context`` seconds of the same noise earlier; only the mixture's own
samples are scored), and with ``--steps-db`` warm with a level step where the mixture starts (the
floor then lags behind the level). Every model runs Spleeter's segmentation (whole
``T``-frame blocks from the stream's first frame, no overlap) on Keras checkpoints, offline:
like with like, not the streaming numbers of the model card (``tools.evaluate`` gives those for
exported models).

Usage::

    python -m tools.evaluate.floor_ab --data ../shared/data --seed 4 \\
        --model plain configs/orca-unet.json runs/neg-ft/ckpt-1000/last.weights.h5 \\
        --model floor configs/orca-unet-floor.json runs/floor-ft/ckpt-1000/last.weights.h5
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.params import ModelParams, load_params
from streamsep.engine.spectral import apply_masks, istft, ratio_masks
from tools.dataset.noisefloor import stream_input
from tools.evaluate.methods import _highpass, _mixtures
from tools.evaluate.metrics import si_sdr

_LOGGER = logging.getLogger(__name__)


def separate_orca(model: Any, params: ModelParams, mix: NDArray[np.float32]) -> NDArray[np.float32]:
    """Orca stem of ``mix`` (n,) by ``model`` in whole ``T``-frame blocks (Spleeter's way)."""
    spectra, x = stream_input(mix[:, None], params)
    n_frames = x.shape[0]
    n_blocks = -(-n_frames // params.T)
    padded = np.zeros((n_blocks * params.T, *x.shape[1:]), np.float32)
    padded[:n_frames] = x
    outputs = model.predict(padded.reshape(n_blocks, params.T, *x.shape[1:]), verbose=0)
    stems = np.stack([np.asarray(o).reshape(-1, params.F, params.n_channels) for o in outputs])
    masks = ratio_masks(stems[:, :n_frames], params.separation_exponent)
    masked = apply_masks(masks, spectra, params.mask_extension)
    return istft(masked[0], params.frame_length, params.frame_step, mix.shape[0])[:, 0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--split", default="val", help="mixture split (val)")
    parser.add_argument("--seed", type=int, default=4, help="mixture seed, as tools.evaluate (4)")
    parser.add_argument("--n-per-snr", type=int, default=8, help="mixtures per SNR (8)")
    parser.add_argument("--context", type=float, default=10.0, help="warm start, seconds (10)")
    parser.add_argument(
        "--steps-db",
        type=float,
        nargs="*",
        default=[],
        metavar="DB",
        help="also warm starts whose level jumps by DB at the mixture (the context DB quieter)",
    )
    parser.add_argument(
        "--model",
        nargs=3,
        action="append",
        required=True,
        metavar=("NAME", "PARAMS", "WEIGHTS"),
        help="a Keras checkpoint to score (repeat)",
    )
    parser.add_argument("--out", type=Path, help="write the scores as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from tools.unet import build_unet

    models = []
    for name, params_path, weights in args.model:
        params = load_params(params_path)
        model = build_unet(params, training=True)
        model.load_weights(weights)
        models.append((name, params, model))
    base_params = models[0][1]
    rate = base_params.sample_rate
    results: dict[str, Any] = {}
    conditions = [("cold", 0.0, 0.0), ("warm", args.context, 0.0)]
    conditions += [(f"step {step:+g} dB", args.context, step) for step in args.steps_db]
    for start, context, step_db in conditions:
        mixtures = _mixtures(
            args.data,
            args.split,
            base_params,
            (-5, 0, 5),
            args.n_per_snr,
            args.seed,
            8.0,
            -30.0,
            context_seconds=context,
        )
        scores: dict[str, list[float]] = {name: [] for name, _, _ in models}
        for _, mixture in mixtures:
            n = mixture.mix.shape[0]
            own = slice(n - int(round(8.0 * rate)), n)
            mix = mixture.mix.copy()
            mix[: own.start] *= np.float32(10 ** (-step_db / 20))  # a level step at the mixture
            ref = _highpass(mixture.sources["orca_vocals"], base_params)[own]
            base = si_sdr(ref, _highpass(mix, base_params)[own])
            for name, params, model in models:
                orca = separate_orca(model, params, mix)
                scores[name].append(si_sdr(ref, orca[own]) - base)
        results[start] = {
            name: {"mean": float(np.mean(v)), "sem": float(np.std(v) / np.sqrt(len(v))), "all": v}
            for name, v in scores.items()
        }
        for name, v in scores.items():
            _LOGGER.info(
                "%s seed %d %s: orca SI-SDRi %.2f dB (sem %.2f, %d mixtures)",
                start,
                args.seed,
                name,
                np.mean(v),
                np.std(v) / np.sqrt(len(v)),
                len(v),
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"seed": args.seed, "split": args.split, **results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
