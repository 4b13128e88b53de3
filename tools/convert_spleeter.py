"""Convert a Spleeter checkpoint directory to a streamsep ``.tflite`` model and params JSON.

Usage::

    python -m tools.convert_spleeter --params configs/2stems-finetune.json \\
        --checkpoint 2stems-finetune/ --out models/ \\
        [--precision float32|float16|int8-dynamic|int8] [--name NAME]

writes ``models/NAME.tflite`` and ``models/NAME.json`` (``NAME`` defaults to the params file's
stem). The checkpoint is read with TensorFlow's checkpoint reader (``tf.train.load_checkpoint``);
the old ``.meta`` graph is never imported. Spleeter (TF1 Keras) named its layers by auto-naming
with no stem prefix: the first stem is ``conv2d``..``conv2d_6``, ``conv2d_transpose``..``_5`` and
``batch_normalization``..``_11``, the second continues at ``conv2d_7`` and so on, in
``instrument_list`` order. :func:`tools.unet.build_unet` creates the same names, so variables
(``kernel``, ``bias``, ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``) map by name. The
sixth encoder batch norm of each stem (``batch_normalization_5``, ``_17``...) feeds nothing in
Spleeter's graph and is skipped, as are optimizer slots (``.../Adam``) and ``global_step``.

Mismatches are refused with a one-line reason naming the variable, e.g.
``checkpoint variable conv2d_3/kernel has shape (5, 5, 32, 64), params expect (5, 5, 64, 128)``.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import keras
import numpy as np
from numpy.typing import NDArray

from streamsep.engine.checkpoint import find_checkpoint
from streamsep.engine.params import ModelParams, load_params
from streamsep.errors import ConfigError, ModelError, StreamsepError

from .calibration import DEFAULT_DATA_DIR, real_blocks
from .export_tflite import PRECISIONS, export
from .unet import build_unet, conv_n_filters, spleeter_variable_map

__all__ = ["SUPPORTED_MODEL_TYPES", "read_checkpoint", "load_spleeter_weights", "convert", "main"]

_LOGGER = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES: Final = ("unet.unet",)
"""Spleeter ``model.type`` values this converter builds (``unet.softmax_unet`` and
``blstm.blstm`` have other graphs)."""
_CONVS_PER_STEM: Final = 7
_CALIBRATION_BLOCKS: Final = 16
_CONV_KERNEL: Final = re.compile(r"^conv2d(?:_(\d+))?/kernel$")
_STEM_SCOPE: Final = re.compile(r"^(.+)_spectrogram/mul$")


def _check_model_type(params: ModelParams) -> None:
    model_type = params.model.get("type", "unet.unet") if isinstance(params.model, dict) else None
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(
            f"params: model.type {model_type!r} is not supported, expected one of "
            f"{list(SUPPORTED_MODEL_TYPES)}"
        )


def read_checkpoint(checkpoint_dir: str | Path) -> tuple[Path, dict[str, NDArray[Any]]]:
    """``(prefix, {variable name: value})`` of the Spleeter checkpoint in ``checkpoint_dir``.

    Raises
    ------
    ModelError
        If a file is missing or TensorFlow cannot read the checkpoint.
    """
    import tensorflow as tf

    prefix = find_checkpoint(checkpoint_dir)
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        names = sorted(reader.get_variable_to_shape_map())
        values = {name: np.asarray(reader.get_tensor(name)) for name in names}
    except (tf.errors.OpError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot read checkpoint {prefix}: {first_line}") from e
    return prefix, values


def _stem_count(prefix: Path, variables: dict[str, NDArray[Any]], params: ModelParams) -> None:
    """Refuse a checkpoint whose number of U-Nets differs from ``instrument_list``."""
    conv_kernels = [name for name in variables if _CONV_KERNEL.match(name)]
    if not conv_kernels:
        raise ModelError(f"checkpoint {prefix} has no Spleeter U-Net variables (no conv2d/kernel)")
    n_convs = len(conv_kernels)
    if n_convs % _CONVS_PER_STEM:
        raise ModelError(
            f"checkpoint {prefix} has {n_convs} conv2d layers, not a multiple of "
            f"{_CONVS_PER_STEM} (Spleeter's U-Net has {_CONVS_PER_STEM} per stem)"
        )
    n_stems = n_convs // _CONVS_PER_STEM
    if n_stems != params.n_stems:
        raise ModelError(
            f"checkpoint {prefix} has {n_stems} stems ({n_convs} conv2d layers), params "
            f"instrument_list has {params.n_stems}: {list(params.instrument_list)}"
        )


def _graph_stem_names(prefix: Path) -> list[str] | None:
    """Stem names in ``<prefix>.meta`` (its ``<stem>_spectrogram/mul`` nodes), if readable.

    The protobuf is parsed for node names only; the graph is not imported.
    """
    meta = Path(f"{prefix}.meta")
    if not meta.is_file():
        return None
    try:
        from tensorflow.core.protobuf import meta_graph_pb2

        graph = meta_graph_pb2.MetaGraphDef()
        graph.ParseFromString(meta.read_bytes())
    except Exception as e:  # noqa: BLE001 - an unreadable .meta only loses a warning
        _LOGGER.debug("cannot parse %s: %s", meta, e)
        return None
    names = []
    for node in graph.graph_def.node:
        match = _STEM_SCOPE.match(node.name)
        if match and "/" not in match.group(1) and match.group(1) not in names:
            names.append(match.group(1))
    return names or None


def load_spleeter_weights(
    model: keras.Model, params: ModelParams, prefix: Path, variables: dict[str, NDArray[Any]]
) -> int:
    """Assign checkpoint ``variables`` to the :func:`tools.unet.build_unet` ``model`` by name.

    Returns
    -------
    int
        The number of variables assigned.

    Raises
    ------
    ModelError
        If the stem count differs, or a variable is missing or has another shape.
    """
    _stem_count(prefix, variables, params)
    owners = spleeter_variable_map(params.instrument_list)
    assigned = 0
    for layer in model.layers:
        if layer.name not in owners:
            continue
        for weight in layer.weights:
            leaf = weight.path.rsplit("/", 1)[-1]
            name = f"{layer.name}/{leaf}"
            expected = tuple(int(d) for d in weight.shape)
            if name not in variables:
                raise ModelError(
                    f"checkpoint {prefix} has no variable {name} (params expect shape {expected})"
                )
            value = variables[name]
            if tuple(value.shape) != expected:
                raise ModelError(
                    f"checkpoint variable {name} has shape {tuple(value.shape)}, "
                    f"params expect {expected}"
                )
            weight.assign(value.astype(np.float32))
            assigned += 1
    return assigned


def build_from_checkpoint(params: ModelParams, checkpoint_dir: str | Path) -> keras.Model:
    """The Keras U-Net of ``params`` with the weights of a Spleeter checkpoint directory.

    Raises
    ------
    ConfigError
        If ``params`` describe a model this converter cannot build.
    ModelError
        If the checkpoint is missing, unreadable or disagrees with ``params``.
    """
    _check_model_type(params)
    filters = conv_n_filters(params)
    prefix, variables = read_checkpoint(checkpoint_dir)
    _LOGGER.info("read %d variables from %s", len(variables), prefix)
    graph_stems = _graph_stem_names(prefix)
    if graph_stems is not None and graph_stems != list(params.instrument_list):
        _LOGGER.warning(
            "checkpoint graph %s.meta names stems %s, params name %s; stems map by position",
            prefix.name,
            graph_stems,
            list(params.instrument_list),
        )
    model = build_unet(params)
    assigned = load_spleeter_weights(model, params, prefix, variables)
    _LOGGER.info(
        "mapped %d variables onto %d stems (filters %s, activations %s/%s); skipped %d "
        "(unused encoder batch norms, optimizer slots, global_step)",
        assigned,
        params.n_stems,
        list(filters),
        params.model_params.get("conv_activation", "LeakyReLU"),
        params.model_params.get("deconv_activation", "ReLU"),
        len(variables) - assigned,
    )
    return model


def convert(
    params: ModelParams,
    checkpoint_dir: str | Path,
    out_dir: str | Path,
    *,
    precision: str = "float32",
    name: str = "model",
    calibration_data: str | Path = DEFAULT_DATA_DIR,
) -> tuple[Path, Path]:
    """Convert a Spleeter checkpoint directory to ``out_dir/name.tflite`` and ``name.json``.

    Parameters
    ----------
    params : ModelParams
        The params the checkpoint was trained with; written unchanged as ``name.json``.
    checkpoint_dir : str or Path
        The Spleeter model directory.
    out_dir : str or Path
        Created if missing.
    precision : {"float32", "float16", "int8-dynamic", "int8"}
        See :data:`tools.export_tflite.PRECISIONS`.
    name : str
        File stem of both outputs.
    calibration_data : str or Path
        ``int8`` only: the recordings folder (with ``manifest.csv``) whose real spectrogram
        blocks calibrate the activation ranges (:func:`tools.calibration.real_blocks`).

    Returns
    -------
    (Path, Path)
        The ``.tflite`` file and the params JSON.

    Raises
    ------
    ConfigError, ModelError
        If the params or the checkpoint are invalid or disagree.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    blocks = None
    if precision == "int8":
        blocks = real_blocks(params, _CALIBRATION_BLOCKS, calibration_data)
    model = build_from_checkpoint(params, checkpoint_dir)
    return export(
        model, params, out_dir, precision=precision, name=name, representative_data=blocks
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.convert_spleeter",
        description="Convert a Spleeter checkpoint directory to a streamsep .tflite model.",
    )
    parser.add_argument("--params", required=True, type=Path, help="Spleeter params JSON")
    parser.add_argument(
        "--checkpoint", required=True, type=Path, help="Spleeter model directory (model.index...)"
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--name", help="file stem of the outputs (default: the params file stem)")
    parser.add_argument(
        "--calibration-data",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"int8: recordings (with manifest.csv) to calibrate on (default {DEFAULT_DATA_DIR})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    try:
        params = load_params(args.params)
        paths = convert(
            params,
            args.checkpoint,
            args.out,
            precision=args.precision,
            name=args.name or args.params.stem,
            calibration_data=args.calibration_data,
        )
    except StreamsepError as e:
        raise SystemExit(f"error: {e}") from None
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
