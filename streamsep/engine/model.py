"""Mask models: a LiteRT (TFLite) U-Net, or the built-in ``passthrough`` diagnostic model.

A model takes one block of magnitudes ``(T, F, n_channels)`` (with a noise-floor context,
``ModelParams.context``, the floor follows as ``n_channels`` more channels) and returns Spleeter
ratio masks ``(n_stems, T, F, n_channels)``. The TFLite file holds the network only (input
``(1, T, F, ModelParams.input_channels)``, one output spectrogram per stem of shape
``(1, T, F, n_channels)``, named ``<instrument>_spectrogram``); the ratio-mask formula is
applied here, in float32, as Spleeter does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.pages import release_mapped_file
from streamsep.engine.params import ModelParams
from streamsep.engine.spectral import ratio_masks
from streamsep.errors import ModelError

__all__ = ["MaskModel", "TFLiteModel", "PassthroughModel", "load_model", "PASSTHROUGH"]

_LOGGER = logging.getLogger(__name__)

PASSTHROUGH: Final = "passthrough"
MAX_NUM_THREADS: Final = 64
"""Most LiteRT interpreter threads accepted (each is an OS thread with its own stack)."""


class MaskModel(Protocol):
    """What the engine needs of a model. Instances are used from one thread at a time."""

    params: ModelParams
    ran_at_load: bool
    """True when loading already ran the model on a block (so the first block cannot fail on
    what a run allocates or starts)."""

    def predict(self, spectrogram: NDArray[np.float32]) -> NDArray[np.float32]:
        """Ratio masks ``(n_stems, T, F, n_channels)`` for magnitudes ``(T, F, n_channels)``."""
        ...

    def close(self) -> None:
        """Release the interpreter."""
        ...


class PassthroughModel:
    """Diagnostic model: the first stem gets the whole mix, the others silence."""

    ran_at_load = False

    def __init__(self, params: ModelParams) -> None:
        self.params = params
        shape = (params.n_stems, params.T, params.F, params.n_channels)
        self._masks = np.zeros(shape, dtype=np.float32)
        self._masks[0] = 1.0
        self._masks.setflags(write=False)

    def predict(self, spectrogram: NDArray[np.float32]) -> NDArray[np.float32]:
        """Constant masks: ones for stem 0, zeros for the rest."""
        return self._masks

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"PassthroughModel(stems={list(self.params.instrument_list)})"


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as litert_error:  # pragma: no cover - platform without LiteRT wheels
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
        except ImportError:
            raise ImportError(
                "ai-edge-litert (or tflite-runtime) must be installed to run .tflite models"
            ) from litert_error
    return Interpreter


class TFLiteModel:
    """A Spleeter-style U-Net in a ``.tflite`` file, run with LiteRT.

    Parameters
    ----------
    path : str or Path
        The ``.tflite`` file.
    params : ModelParams
        The params it was exported with; tensor shapes must agree with them.
    num_threads : int
        LiteRT interpreter threads.

    Raises
    ------
    ModelError
        If the file is missing or unreadable, or its input or outputs disagree with ``params``.
    """

    ran_at_load = True
    """The load probe runs one block (see :meth:`_probe`)."""

    def __init__(self, path: str | Path, params: ModelParams, num_threads: int = 1) -> None:
        self.params = params
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}")
        interpreter_class = _interpreter_class()
        try:
            self._interpreter = interpreter_class(
                model_path=str(self.path), num_threads=num_threads
            )
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"cannot load model {self.path}: {e}") from e
        self._expected_shape = (1, params.T, params.F, params.n_channels)
        self._input_shape = (1, params.T, params.F, params.input_channels)
        self._check_constants()
        self._input_index, self._output_indices = self._bind()
        self._probe()
        # The probe made the delegate pack its own copy of the weights: the file's pages
        # are not read again (an operator left to LiteRT reads them back from the file).
        release_mapped_file(self.path)
        _LOGGER.info(
            "loaded %s: input %s, stems %s, %d thread(s)",
            self.path.name,
            self._input_shape,
            list(params.instrument_list),
            num_threads,
        )

    def _check_constants(self) -> None:
        """Refuse weights or quantisation scales that are NaN or Inf (read before the
        interpreter allocates: then only constant tensors have data)."""
        for detail in self._interpreter.get_tensor_details():
            scales = detail.get("quantization_parameters", {}).get("scales")
            if scales is not None and not np.isfinite(scales).all():
                raise ModelError(
                    f"model {self.path}: tensor {detail['name']!r} has non-finite "
                    "quantisation scales"
                )
            if detail["dtype"] not in (np.float32, np.float16, np.float64):
                continue
            try:
                values = self._interpreter.get_tensor(detail["index"])
            except ValueError:  # not a constant: no data before allocation
                continue
            if not np.isfinite(values).all():
                raise ModelError(
                    f"model {self.path}: weights {detail['name']!r} are not finite (NaN or Inf)"
                )

    def _probe(self) -> None:
        """Run one block of noise; refuse a model that cannot run (the interpreter allocates
        its arena and starts its threads here) or whose output is not finite."""
        rng = np.random.default_rng(0)
        block = np.abs(rng.standard_normal(self._input_shape[1:], dtype=np.float32))
        try:
            self._interpreter.allocate_tensors()
            outputs = self._run(block)
        except (RuntimeError, ValueError, MemoryError) as e:
            message = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise ModelError(f"model {self.path}: cannot run: {message}") from e
        for name, output in zip(self.params.instrument_list, outputs, strict=True):
            if not np.isfinite(output).all():
                raise ModelError(
                    f"model {self.path}: output for stem {name!r} is not finite for a block of "
                    "noise (NaN or Inf weights?)"
                )

    def _run(self, block: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        """One interpreter call on ``block`` (T, F, n_channels): the stems' outputs, in the
        params' order. Tensors stay allocated between calls (a signature runner would
        resize and re-allocate them every call)."""
        self._interpreter.set_tensor(self._input_index, block[None].astype(np.float32))
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(i)[0] for i in self._output_indices]

    def _bind(self) -> tuple[int, list[int]]:
        """Map model outputs to stems by name; check shapes against the params. Returns the
        input tensor's index and the stems' output tensor indices."""
        signatures = self._interpreter.get_signature_list()
        if not signatures:
            raise ModelError(f"model {self.path} has no signature; re-export it with tools")
        key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
        runner = self._interpreter.get_signature_runner(key)
        if getattr(runner, "_subgraph_index", 0) != 0:
            raise ModelError(
                f"model {self.path}: signature {key!r} is not the main subgraph; re-export it "
                "with tools"
            )
        inputs = list(signatures[key]["inputs"])
        if len(inputs) != 1:
            raise ModelError(f"model {self.path}: expected 1 input, got {len(inputs)}: {inputs}")
        in_shape = tuple(int(d) for d in runner.get_input_details()[inputs[0]]["shape"])
        if in_shape != self._input_shape:
            floor = self.params.context == "floor"
            what = "2 n_channels (floor context)" if floor else "n_channels"
            hint = ""
            if not floor and in_shape == (*self._input_shape[:3], 2 * self.params.n_channels):
                hint = '; a model with a floor context needs model.params.context "floor"'
            raise ModelError(
                f"model {self.path}: input shape {in_shape} disagrees with params "
                f"(1, T, F, {what}) = {self._input_shape}{hint}"
            )
        available = list(signatures[key]["outputs"])
        if len(available) != self.params.n_stems:
            raise ModelError(
                f"model {self.path} has {len(available)} output(s) {sorted(available)} but the "
                f"params' instrument_list names {self.params.n_stems} stem(s) "
                f"{list(self.params.instrument_list)}: they must match one to one"
            )
        names = []
        for instrument in self.params.instrument_list:
            candidates = [f"{instrument}_spectrogram", instrument]
            found = next((c for c in candidates if c in available), None)
            if found is None:
                raise ModelError(
                    f"model {self.path}: no output for stem {instrument!r} "
                    f"(outputs are {sorted(available)})"
                )
            if found in names:
                raise ModelError(f"model {self.path}: output {found!r} matches two stems")
            names.append(found)
        details = runner.get_output_details()
        for name in names:
            out_shape = tuple(int(d) for d in details[name]["shape"])
            if out_shape != self._expected_shape:
                raise ModelError(
                    f"model {self.path}: output {name} has shape {out_shape}, "
                    f"expected {self._expected_shape}"
                )
        return int(runner.get_input_details()[inputs[0]]["index"]), [
            int(details[name]["index"]) for name in names
        ]

    def predict(self, spectrogram: NDArray[np.float32]) -> NDArray[np.float32]:
        """Ratio masks ``(n_stems, T, F, n_channels)`` for magnitudes ``(T, F, n_channels)``
        (with a floor context, ``(T, F, 2 n_channels)``: the floor follows the mix).

        Called from the worker thread only.
        """
        if spectrogram.shape != self._input_shape[1:]:
            raise ModelError(
                f"block shape {spectrogram.shape} disagrees with the model input "
                f"{self._input_shape[1:]}"
            )
        stacked = np.stack(self._run(spectrogram))
        return ratio_masks(stacked, self.params.separation_exponent)

    def close(self) -> None:
        """Drop the interpreter."""
        self._interpreter = None

    def __repr__(self) -> str:
        return f"TFLiteModel({str(self.path)!r}, stems={list(self.params.instrument_list)})"


def load_model(model: str | Path, params: ModelParams, num_threads: int = 1) -> MaskModel:
    """Load ``passthrough`` or a ``.tflite`` file for ``params``.

    Raises
    ------
    ModelError
        If the model cannot be loaded or does not match ``params``.
    """
    if isinstance(num_threads, bool) or not isinstance(num_threads, int):
        raise ModelError(f"num_threads must be an integer, got {num_threads!r}")
    if not 1 <= num_threads <= MAX_NUM_THREADS:
        raise ModelError(
            f"model.num_threads (--model-threads) must be in [1, {MAX_NUM_THREADS}], "
            f"got {num_threads}"
        )
    if str(model) == PASSTHROUGH:
        return PassthroughModel(params)
    path = Path(model)
    if path.is_dir():
        raise ModelError(
            f"{path} is a directory; load a Spleeter checkpoint directory with Separator "
            "(converted once and cached) or convert it with tools/convert_spleeter.py"
        )
    if path.suffix != ".tflite":
        raise ModelError(f"model must be a .tflite file or 'passthrough', got {path}")
    return TFLiteModel(path, params, num_threads=num_threads)
