"""Export a Spleeter U-Net to a ``.tflite`` file and its params JSON.

Usage::

    python -m tools.export_tflite --params configs/2stems-finetune.json --out out/models \\
        [--weights W.weights.h5] [--seed 0] [--precision float32|float16|int8-dynamic|int8] \\
        [--filters 16,32,64,128,256,512] [--T 512] [--F 1024] [--name NAME]

Without ``--weights`` the network gets random weights drawn from ``--seed`` (a test or
benchmark model). The ``.tflite`` file has one signature, ``serving_default``, with input
``mix_spectrogram`` of shape ``(1, T, F, input_channels)`` float32 (``n_channels``, twice that
with a noise-floor context) and one output per stem named
``<instrument>_spectrogram``; the runtime maps outputs to stems by these names, because the
converter does not keep the output order.

The conversion goes through a SavedModel written with ``keras.export.ExportArchive``: with Keras 3,
``TFLiteConverter.from_concrete_functions([...], model)`` leaves the weights as uninitialised
resource variables (``VAR_HANDLE``/``READ_VARIABLE``) and LiteRT then returns NaN.
Needs the TensorFlow backend of Keras.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import keras
import numpy as np
from numpy.typing import NDArray

from streamsep.engine.params import ModelParams, load_params
from streamsep.errors import StreamsepError

from .subpixel import subpixel_model
from .unet import build_unet, conv_n_filters

__all__ = ["PRECISIONS", "export", "randomize_weights", "with_overrides", "main"]

_LOGGER = logging.getLogger(__name__)

PRECISIONS: Final = ("float32", "float16", "int8-dynamic", "int8")
"""``float32``: no quantisation; ``float16``: float16 weights; ``int8-dynamic``: int8 weights,
float activations; ``int8``: int8 weights and activations, float32 input and outputs kept."""
SIGNATURE_KEY: Final = "serving_default"
INPUT_NAME: Final = "mix_spectrogram"
_N_REPRESENTATIVE: Final = 16


def with_overrides(
    params: ModelParams,
    *,
    filters: Sequence[int] | None = None,
    T: int | None = None,
    F: int | None = None,
) -> ModelParams:
    """``params`` with ``model.params.conv_n_filters``, ``T`` or ``F`` replaced where given.

    Raises
    ------
    ConfigError
        If a replaced value is invalid.
    """
    changes: dict[str, Any] = {}
    if filters is not None:
        model = dict(params.model)
        model["params"] = {**params.model_params, "conv_n_filters": [int(f) for f in filters]}
        changes["model"] = model
    if T is not None:
        changes["T"] = T
    if F is not None:
        changes["F"] = F
    new = dataclasses.replace(params, **changes) if changes else params
    conv_n_filters(new)  # validate now, before building anything
    return new


def randomize_weights(model: keras.Model, seed: int) -> None:
    """Give ``model`` non-trivial random weights drawn from ``seed``, in place.

    Kernels are He-uniform, biases and batch-norm statistics are perturbed slightly
    (``gamma`` in [0.8, 1.2], ``beta`` and ``moving_mean`` ~ N(0, 0.1), ``moving_variance`` in
    [0.5, 1.5]). Unlike Spleeter's fixed ``he_uniform(seed=50)``, every layer and every stem
    gets different values, so that the stems of a random model differ.
    """
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        leaf = variable.path.rsplit("/", 1)[-1]
        if leaf == "kernel":
            fan_in = int(np.prod(shape[:-1]))  # Keras's fan_in: receptive field * shape[-2]
            limit = np.sqrt(6.0 / fan_in)
            value = rng.uniform(-limit, limit, shape)
        elif leaf in ("bias", "beta", "moving_mean"):
            value = rng.normal(0.0, 0.1 if leaf != "bias" else 0.05, shape)
        elif leaf == "gamma":
            value = rng.uniform(0.8, 1.2, shape)
        elif leaf == "moving_variance":
            value = rng.uniform(0.5, 1.5, shape)
        else:
            continue
        variable.assign(value.astype(np.float32))


def random_blocks(params: ModelParams, n: int, seed: int = 0) -> list[NDArray[np.float32]]:
    """``n`` random magnitude blocks ``|N(0, 1)|``, shape ``(1, T, F, input_channels)`` float32."""
    rng = np.random.default_rng(seed)
    shape = (1, params.T, params.F, params.input_channels)
    return [np.abs(rng.standard_normal(shape)).astype(np.float32) for _ in range(n)]


def _converter(model: keras.Model, params: ModelParams, saved_model_dir: Path) -> Any:
    """A ``TFLiteConverter`` for ``model`` with the ``serving_default`` signature by stem name."""
    import tensorflow as tf

    names = [f"{instrument}_spectrogram" for instrument in params.instrument_list]
    shape = (1, params.T, params.F, params.input_channels)

    def serve(mix: Any) -> dict[str, Any]:
        outputs = model(mix, training=False)
        if not isinstance(outputs, list | tuple):
            outputs = [outputs]
        return dict(zip(names, outputs, strict=True))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE_KEY,
        fn=serve,
        input_signature=[tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)],
    )
    archive.write_out(str(saved_model_dir), verbose=False)
    return tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_dir), signature_keys=[SIGNATURE_KEY]
    )


def _quantize(
    converter: Any,
    precision: str,
    representative: Callable[[], Iterable[list[NDArray[np.float32]]]],
) -> None:
    """Set the converter options of ``precision``."""
    import tensorflow as tf

    if precision == "float32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32


def export(
    model: keras.Model,
    params: ModelParams,
    out_dir: str | Path,
    *,
    precision: str = "float32",
    name: str = "model",
    representative_data: Iterable[NDArray[np.float32]] | None = None,
    subpixel: bool = True,
) -> tuple[Path, Path]:
    """Convert ``model`` to ``out_dir/name.tflite`` and write ``out_dir/name.json``.

    Parameters
    ----------
    model : keras.Model
        A :func:`tools.unet.build_unet` model for ``params`` (input ``(1 or None, T, F,
        input_channels)``, outputs ``<instrument>_spectrogram`` in ``instrument_list`` order).
    params : ModelParams
        Written as the params JSON; its ``T``, ``F``, ``input_channels`` fix the input shape.
    out_dir : str or Path
        Created if missing.
    precision : {"float32", "float16", "int8-dynamic", "int8"}
        Quantisation, see :data:`PRECISIONS`.
    name : str
        File stem of both outputs.
    representative_data : iterable of ndarray, shape (T, F, C) or (1, T, F, C), C = input_channels
        Magnitude blocks for ``int8`` calibration; random ``|N(0, 1)|`` blocks if None.
    subpixel : bool
        Export Spleeter's 5x5 stride-2 transposed convolutions as sub-pixel convolutions
        (:mod:`tools.subpixel`: same function, about 3x faster in LiteRT).

    Returns
    -------
    (Path, Path)
        The ``.tflite`` file and the params JSON.

    Raises
    ------
    ValueError
        If ``precision`` is unknown or the model does not fit ``params``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"export needs the tensorflow Keras backend, got {keras.backend.backend()}"
        )
    expected = (params.T, params.F, params.input_channels)
    if tuple(model.input_shape[1:]) != expected:
        raise ValueError(
            f"model input {tuple(model.input_shape[1:])} disagrees with params (T, F, "
            f"input_channels) = {expected}"
        )
    if len(model.outputs) != params.n_stems:
        raise ValueError(f"expected {params.n_stems} model outputs, got {len(model.outputs)}")
    blocks = list(representative_data) if representative_data is not None else None
    if subpixel:
        model = subpixel_model(model)

    def representative() -> Iterable[list[NDArray[np.float32]]]:
        data = blocks if blocks is not None else random_blocks(params, _N_REPRESENTATIVE)
        for block in data:
            yield [np.asarray(block, dtype=np.float32).reshape((1, *expected))]

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tflite_path, params_path = out / f"{name}.tflite", out / f"{name}.json"
    with tempfile.TemporaryDirectory(prefix="streamsep-export-") as tmp:
        _LOGGER.info("tracing %s for input (1, %d, %d, %d)", model.name, *expected)
        converter = _converter(model, params, Path(tmp) / "saved_model")
        _quantize(converter, precision, representative)
        _LOGGER.info("converting to TFLite (%s)", precision)
        flatbuffer = converter.convert()
    tflite_path.write_bytes(flatbuffer)
    params.save(params_path)
    _LOGGER.info("wrote %s (%d bytes) and %s", tflite_path, len(flatbuffer), params_path)
    return tflite_path, params_path


def _parse_filters(text: str) -> list[int]:
    try:
        return [int(f) for f in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 6 comma-separated integers, got {text!r}"
        ) from None


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.export_tflite",
        description="Export a Spleeter U-Net to TFLite with its params JSON.",
    )
    parser.add_argument("--params", required=True, type=Path, help="Spleeter params JSON")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--weights", type=Path, help="Keras .weights.h5 (default: random)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random weights (default 0)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument(
        "--filters", type=_parse_filters, help="conv_n_filters override, e.g. 4,8,16,32,64,128"
    )
    parser.add_argument("--T", type=int, help="frames per block override")
    parser.add_argument("--F", type=int, help="frequency bins override")
    parser.add_argument("--name", help="file stem of the outputs (default: the params file stem)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    try:
        params = with_overrides(load_params(args.params), filters=args.filters, T=args.T, F=args.F)
    except StreamsepError as e:
        raise SystemExit(f"error: {e}") from None
    if args.weights is not None and not args.weights.is_file():
        raise SystemExit(f"error: weights file not found: {args.weights}")
    model = build_unet(params)
    if args.weights is not None:
        try:
            model.load_weights(args.weights)
        except (ValueError, OSError) as e:
            raise SystemExit(f"error: cannot load weights {args.weights}: {e}") from None
        _LOGGER.info("loaded weights from %s", args.weights)
    else:
        randomize_weights(model, args.seed)
        _LOGGER.info("random weights from seed %d", args.seed)
    name = args.name or args.params.stem
    paths = export(model, params, args.out, precision=args.precision, name=name)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
