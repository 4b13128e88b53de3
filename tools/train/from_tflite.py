"""Rebuild Keras weights from an exported float32 ``.tflite`` U-Net, to fine-tune shipped weights.

The bundled model's training checkpoints are not in the repository (``runs/`` is not
committed), but its ``.tflite`` file holds every weight: per stem the encoder and mask
convolutions (``CONV_2D``, kernels ``(out, h, w, in)``), the transposed convolutions
(``TRANSPOSE_CONV``, kernels ``(out, h, w, in)``, bias fused; or, as :mod:`tools.subpixel`
exports them, convolutions feeding a ``DEPTH_TO_SPACE``, put back together) and each batch norm
as the converter left it, a ``MUL`` by a per-channel scale and an ``ADD`` of a per-channel
shift.
This tool walks the graph of each stem's output back to its operators (in execution order)
and writes them into :func:`tools.unet.build_unet`'s layers in creation order; a batch norm
becomes ``gamma = scale * sqrt(1 + epsilon)``, ``beta = shift``, ``moving_mean = 0``,
``moving_variance = 1``, the same function at inference. The statistics a batch norm learnt
are folded away, so fine-tune these weights with ``python -m tools.train
--freeze-batch-norm`` (batch norms in inference mode); in training mode a batch norm would
normalise by batch statistics instead and change the network at the first step.

Usage::

    python -m tools.train.from_tflite --params streamsep/data/orca_unet.json \\
        --model streamsep/data/orca_unet.tflite --out runs/orca-unet-shipped

writes ``OUT/ckpt/last.weights.h5`` (for ``--init-weights``) and ``OUT/params.json``, and
prints how far the Keras model's output is from the ``.tflite`` file's on one block of real
or random magnitudes (dB, per stem; about -120 dB when the mapping is right).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.params import ModelParams, load_params
from streamsep.errors import ModelError

__all__ = ["StemWeights", "read_tflite_weights", "keras_model_from_tflite", "parity_db", "main"]

_LOGGER = logging.getLogger("tools.train.from_tflite")

StemWeights = dict[str, list[tuple[NDArray[np.float32], NDArray[np.float32]]]]
"""Per kind (``conv``, ``deconv``, ``bn``) in execution order: ``(kernel, bias)`` or
``(scale, shift)``."""


def _interpreter(path: Path) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path))


def read_tflite_weights(path: Path, params: ModelParams) -> dict[str, StemWeights]:
    """Each stem's weights in the ``.tflite`` file, keyed by instrument.

    Raises
    ------
    ModelError
        If the file is not a float32 U-Net of these params (a quantised export, an operator
        the U-Net does not have, a stem output missing).
    """
    interpreter = _interpreter(path)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()  # noqa: SLF001 - LiteRT's only graph view in Python
    producer = {out: op for op in ops for out in op["outputs"]}
    signature = interpreter.get_signature_list()["serving_default"]
    runner = interpreter.get_signature_runner("serving_default")
    outputs = runner.get_output_details()

    def constant(index: int) -> NDArray[np.float32] | None:
        if index < 0 or index in producer or details[index]["dtype"] != np.float32:
            return None
        try:
            return np.array(interpreter.get_tensor(index), dtype=np.float32)
        except ValueError:  # not a constant
            return None

    weights: dict[str, StemWeights] = {}
    for instrument in params.instrument_list:
        name = f"{instrument}_spectrogram"
        if name not in signature["outputs"]:
            raise ModelError(f"{path}: no output {name!r} (outputs {signature['outputs']})")
        # Every operator the stem's output depends on, in execution order.
        seen: set[int] = set()
        stack = [outputs[name]["index"]]
        while stack:
            op = producer.get(stack.pop())
            if op is None or op["index"] in seen:
                continue
            seen.add(op["index"])
            stack.extend(int(i) for i in op["inputs"] if i >= 0)
        stem: StemWeights = {"conv": [], "deconv": [], "bn": []}
        in_subpixel: set[int] = set()  # CONV_2D ops that are parts of a sub-pixel deconvolution
        for op in sorted((o for o in ops if o["index"] in seen), key=lambda o: o["index"]):
            kind, inputs = op["op_name"], [int(i) for i in op["inputs"]]
            if kind == "DEPTH_TO_SPACE":
                parts, deconv = _subpixel_deconv(op, producer, constant, path)
                in_subpixel |= parts
                stem["deconv"].append(deconv)
        for op in sorted((o for o in ops if o["index"] in seen), key=lambda o: o["index"]):
            kind, inputs = op["op_name"], [int(i) for i in op["inputs"]]
            if kind == "CONV_2D" and op["index"] in in_subpixel:
                continue
            if kind in ("CONV_2D", "TRANSPOSE_CONV"):
                kernel_at, bias_at = (1, 2) if kind == "CONV_2D" else (1, 3)
                kernel = constant(inputs[kernel_at])
                bias = constant(inputs[bias_at]) if len(inputs) > bias_at else None
                if kernel is None or bias is None:
                    raise ModelError(f"{path}: {kind} without float32 weights (quantised?)")
                if kind == "TRANSPOSE_CONV":
                    stem["deconv"].append((kernel, bias))
                else:
                    stem["conv"].append((kernel, bias))
            elif kind == "MUL":
                scale = constant(inputs[1])
                if scale is None or scale.ndim != 1:
                    continue  # the mask times the mix, or the input norm
                users = [o for o in ops if op["outputs"][0] in o["inputs"] and o["index"] in seen]
                is_add = len(users) == 1 and users[0]["op_name"] == "ADD"
                shift = constant(int(users[0]["inputs"][1])) if is_add else None
                if shift is None:
                    raise ModelError(f"{path}: a per-channel MUL not followed by an ADD")
                stem["bn"].append((scale, shift))
        weights[instrument] = stem
    return weights


def _subpixel_deconv(
    op: dict[str, Any],
    producer: dict[int, dict[str, Any]],
    constant: Any,
    path: Path,
) -> tuple[set[int], tuple[NDArray[np.float32], NDArray[np.float32]]]:
    """The 5x5 stride-2 transposed convolution that :mod:`tools.subpixel` exported as the
    convolutions feeding this ``DEPTH_TO_SPACE``: ``(their op indices, (kernel (out, 5, 5, in),
    bias))``, the kernel laid out as ``TRANSPOSE_CONV`` stores it.

    Two forms: four per-phase ``CONV_2D`` s (2x2, 2x3, 3x2, 3x3 taps), concatenated, then an
    ``ADD`` of the bias tiled four times; or one 3x3 ``CONV_2D`` with ``4 filters`` outputs,
    phase-major, its bias the tiled bias.
    """
    from tools.subpixel import _PHASE_TAPS, _tap

    def weights(conv: dict[str, Any]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        inputs = [int(i) for i in conv["inputs"]]
        kernel = constant(inputs[1])
        bias = constant(inputs[2]) if len(inputs) > 2 else None
        if kernel is None or bias is None:
            raise ModelError(f"{path}: CONV_2D without float32 weights (quantised?)")
        return kernel, bias

    source = producer.get(int(op["inputs"][0]))
    tiled = None
    if source is not None and source["op_name"] == "ADD":
        tiled = constant(int(source["inputs"][1]))
        source = producer.get(int(source["inputs"][0]))
    if source is not None and source["op_name"] == "CONCATENATION":
        convs = [producer.get(int(i)) for i in source["inputs"]]
        if len(convs) != 4 or any(c is None or c["op_name"] != "CONV_2D" for c in convs):
            raise ModelError(f"{path}: a DEPTH_TO_SPACE whose input is not four convolutions")
        phases = [weights(c) for c in convs if c is not None]
        filters, n_in = phases[0][0].shape[0], phases[0][0].shape[3]
        kernel = np.zeros((filters, 5, 5, n_in), np.float32)
        for index, (phase_kernel, _) in enumerate(phases):
            rows, cols = _PHASE_TAPS[index // 2], _PHASE_TAPS[index % 2]
            kernel[:, np.ix_(rows, cols)[0], np.ix_(rows, cols)[1], :] = phase_kernel
        if tiled is None:
            raise ModelError(f"{path}: per-phase convolutions without their bias ADD")
        return {int(c["index"]) for c in convs if c is not None}, (kernel, tiled[:filters])
    if source is not None and source["op_name"] == "CONV_2D":
        kernel3, bias = weights(source)
        filters, n_in = kernel3.shape[0] // 4, kernel3.shape[3]
        kernel = np.zeros((filters, 5, 5, n_in), np.float32)
        for a in range(3):
            for b in range(3):
                for p in range(2):
                    for q in range(2):
                        kr, kc = _tap(p, a - 1), _tap(q, b - 1)
                        if kr is not None and kc is not None:
                            phase = slice((2 * p + q) * filters, (2 * p + q + 1) * filters)
                            kernel[:, kr, kc, :] = kernel3[phase, a, b, :]
        if tiled is not None:
            bias = bias + tiled
        return {int(source["index"])}, (kernel, bias[:filters])
    raise ModelError(f"{path}: a DEPTH_TO_SPACE that is not a sub-pixel deconvolution")


def keras_model_from_tflite(path: Path, params: ModelParams) -> Any:
    """:func:`tools.unet.build_unet` (batch 1) with the ``.tflite`` file's weights.

    Raises
    ------
    ModelError
        If the file's layers do not match the params' network (count or shape).
    """
    from tools.unet import build_unet, spleeter_variable_map, unet_stems

    model = build_unet(params)
    roles = spleeter_variable_map(params.instrument_list)
    found = read_tflite_weights(path, params)
    for instrument in unet_stems(params):  # a complement network's second stem is 1 - mask
        layers: dict[str, list[Any]] = {"conv": [], "deconv": [], "bn": []}
        for layer in model.layers:
            if roles.get(layer.name, ("",))[0] != instrument:
                continue
            kind = type(layer).__name__
            key = {"Conv2D": "conv", "Conv2DTranspose": "deconv"}.get(kind, "bn")
            layers[key].append(layer)
        for key, group in layers.items():
            group.sort(key=lambda layer: _creation_index(layer.name))
            stem = found[instrument][key]
            if len(group) != len(stem):
                raise ModelError(
                    f"{path}: stem {instrument!r} has {len(stem)} {key} layer(s), the params' "
                    f"network {len(group)}"
                )
            for layer, (a, b) in zip(group, stem, strict=True):
                _assign(layer, key, a, b, path)
    return model


def _creation_index(name: str) -> int:
    """``conv2d`` -> 0, ``conv2d_7`` -> 7 (Keras's unique layer names)."""
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _assign(
    layer: Any, key: str, a: NDArray[np.float32], b: NDArray[np.float32], path: Path
) -> None:
    if key == "conv":
        values = [a.transpose(1, 2, 3, 0), b]  # (out, h, w, in) -> (h, w, in, out)
    elif key == "deconv":
        values = [a.transpose(1, 2, 0, 3), b]  # (out, h, w, in) -> (h, w, out, in)
    else:
        gamma = a * np.float32(math.sqrt(1.0 + layer.epsilon))
        ones, zeros = np.ones_like(a), np.zeros_like(a)
        values = [gamma, b, zeros, ones]  # gamma, beta, moving mean, moving variance
    current = layer.get_weights()
    shapes = [tuple(w.shape) for w in current]
    if shapes != [tuple(v.shape) for v in values]:
        raise ModelError(
            f"{path}: layer {layer.name} expects weights {shapes}, the file has "
            f"{[tuple(v.shape) for v in values]}"
        )
    layer.set_weights(values)


def parity_db(model: Any, path: Path, params: ModelParams, seed: int = 0) -> dict[str, float]:
    """``20 log10(||keras - tflite|| / ||tflite||)`` per stem on one block of magnitudes."""
    rng = np.random.default_rng(seed)
    block = np.abs(rng.standard_normal((1, params.T, params.F, params.input_channels)))
    block = (block * 10 ** rng.uniform(-4, -1, size=(1, 1, params.F, 1))).astype(np.float32)
    runner = _interpreter(path).get_signature_runner("serving_default")
    reference = runner(mix_spectrogram=block)
    predicted = model.predict(block, verbose=0)
    result = {}
    for instrument, estimate in zip(params.instrument_list, predicted, strict=True):
        ref = reference[f"{instrument}_spectrogram"].astype(np.float64)
        err = float(np.linalg.norm(np.asarray(estimate, np.float64) - ref))
        norm = float(np.linalg.norm(ref))
        result[instrument] = float(20 * np.log10(max(err, 1e-30) / max(norm, 1e-30)))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.train.from_tflite", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--params", type=Path, required=True, help="the model's params JSON")
    parser.add_argument("--model", type=Path, required=True, help="its float32 .tflite file")
    parser.add_argument("--out", type=Path, required=True, help="run folder to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = load_params(args.params)
    if not args.model.is_file():
        parser.error(f"--model: {args.model} not found")
    try:
        model = keras_model_from_tflite(args.model, params)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    parity = parity_db(model, args.model, params)
    (args.out / "ckpt").mkdir(parents=True, exist_ok=True)
    params.save(args.out / "params.json")
    weights = args.out / "ckpt" / "last.weights.h5"
    model.save_weights(weights)
    print(
        f"{weights}: Keras against {args.model}: "
        + ", ".join(f"{k} {v:.1f} dB" for k, v in parity.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
