"""Widen a trained U-Net without changing what it computes, to fine-tune a wider one from it.

A wider network (more filters per level, ``model.params.conv_n_filters``) trained from scratch
needs hours that a small CPU does not have. This tool builds the wider network and copies the
trained weights into its first channels: every new channel's outgoing weights (its kernels in
the layers that read it) start at zero, so the wide network computes exactly what the narrow
one did, while the new channels' own kernels keep their random initialisation and start
learning at the first step (the zero weights get gradients from them). Batch norms of new
channels start as the identity (with ``tools.train --freeze-batch-norm`` they stay so).

Spleeter's U-Net reads, in each decoder level after the first, the concatenation
``[encoder skip, decoder output]``; in the wide network both halves are wider, so the old
channels of the second half move up by the first half's growth.

Usage::

    python -m tools.widen --params streamsep/data/orca_unet.json \\
        --weights runs/floor-ft-tonal-s12/ckpt/last.weights.h5 \\
        --filters 6,12,24,48,96,192 --out runs/wide-init

writes ``OUT/params.json`` (the params with the new filters) and ``OUT/ckpt/last.weights.h5``
(for ``tools.train --params OUT/params.json --init-weights ...``), and prints how far the wide
network's output is from the narrow one's on one random block (dB; about -120 when exact).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.params import ModelParams, load_params
from streamsep.errors import ConfigError

__all__ = ["main", "widen_weights", "widened_params"]

_LOGGER = logging.getLogger("tools.widen")


def widened_params(params: ModelParams, filters: Sequence[int]) -> ModelParams:
    """``params`` with ``model.params.conv_n_filters`` set to ``filters``.

    Raises
    ------
    ConfigError
        If ``filters`` are not 6 integers each at least the old level's.
    """
    from .unet import conv_n_filters

    old = conv_n_filters(params)
    if len(filters) != 6 or any(int(n) < o for n, o in zip(filters, old, strict=True)):
        raise ConfigError(
            f"--filters: expected 6 filter counts, each at least the model's {list(old)}, "
            f"got {list(filters)}"
        )
    data = params.to_dict()
    model = data["model"]
    model_params = {**params.model_params, "conv_n_filters": [int(n) for n in filters]}
    return ModelParams.from_dict({**data, "model": {**model, "params": model_params}})


def _input_index(role: str, n_old: int, n_new: int) -> NDArray[np.intp]:
    """Where the old input channels of a layer with ``role`` sit among its new inputs."""
    if role.startswith("decoder") and role != "decoder1_deconv":  # [skip, decoder output]
        half_old, half_new = n_old // 2, n_new // 2
        return np.concatenate([np.arange(half_old), half_new + np.arange(half_old)])
    return np.arange(n_old)


def widen_weights(source: Any, target: Any, instruments: Sequence[str]) -> None:
    """Copy ``source``'s weights into the wider ``target`` (both from :func:`tools.unet.build_unet`
    with the same params but the filters), so that ``target`` computes what ``source`` does.

    Raises
    ------
    ConfigError
        If a layer of ``target`` is missing from ``source`` or narrower than it.
    """
    from .unet import spleeter_variable_map

    roles = spleeter_variable_map(instruments)
    by_name = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        if not layer.weights:
            continue
        if layer.name not in by_name:
            raise ConfigError(f"widen: layer {layer.name} is not in the narrow network")
        old, new = by_name[layer.name].get_weights(), [w.copy() for w in layer.get_weights()]
        kind = type(layer).__name__
        if kind in ("Conv2D", "Conv2DTranspose"):
            # Conv2D kernels are (h, w, in, out); Conv2DTranspose kernels (h, w, out, in).
            in_axis, out_axis = (2, 3) if kind == "Conv2D" else (3, 2)
            kernel, n_out = new[0], old[0].shape[out_axis]
            if n_out > kernel.shape[out_axis] or old[0].shape[in_axis] > kernel.shape[in_axis]:
                raise ConfigError(
                    f"widen: layer {layer.name} is {kernel.shape} wide, narrower than "
                    f"{old[0].shape}"
                )
            index = _input_index(roles[layer.name][1], old[0].shape[in_axis], kernel.shape[in_axis])
            kernel = np.moveaxis(kernel, (in_axis, out_axis), (2, 3))  # (h, w, in, out) view
            unread = np.setdiff1d(np.arange(kernel.shape[2]), index)
            kernel[:, :, unread, :] = 0.0  # new inputs: nothing reads them yet
            kernel[:, :, index, :n_out] = np.moveaxis(old[0], (in_axis, out_axis), (2, 3))
            new[1][:n_out] = old[1]
        else:  # BatchNormalization: gamma, beta, moving mean, moving variance
            for values, saved in zip(new, old, strict=True):
                values[: saved.shape[0]] = saved
        layer.set_weights(new)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.widen", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--params", type=Path, required=True, help="the narrow model's params")
    parser.add_argument("--weights", type=Path, required=True, help="its Keras .weights.h5")
    parser.add_argument(
        "--filters", required=True, help="the wide network's six filter counts, e.g. 6,12,...,192"
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        filters = [int(f) for f in args.filters.split(",")]
    except ValueError:
        parser.error(f"--filters: expected comma-separated integers, got {args.filters!r}")
    if not args.weights.is_file():
        parser.error(f"--weights: {args.weights} not found")
    try:
        params = load_params(args.params)
        wide = widened_params(params, filters)
    except ConfigError as e:
        parser.error(str(e))
    from .unet import build_unet

    source = build_unet(params, training=True)
    source.load_weights(args.weights)
    target = build_unet(wide, training=True)  # new kernels: the network's own initialiser
    widen_weights(source, target, params.instrument_list)
    rng = np.random.default_rng(0)
    block = np.abs(rng.standard_normal((1, params.T, params.F, params.input_channels)))
    block = block.astype(np.float32)
    worst = -np.inf
    outputs = zip(source.predict(block, verbose=0), target.predict(block, verbose=0), strict=True)
    for a, b in outputs:
        err = float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
        worst = max(worst, 20 * np.log10(max(err, 1e-30) / max(float(np.linalg.norm(a)), 1e-30)))
    (args.out / "ckpt").mkdir(parents=True, exist_ok=True)
    wide.save(args.out / "params.json")
    target.save_weights(args.out / "ckpt" / "last.weights.h5")
    print(
        f"{args.out / 'ckpt' / 'last.weights.h5'}: filters {filters}, "
        f"{target.count_params()} parameters ({source.count_params()} before); "
        f"wide against narrow output: {worst:.1f} dB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
