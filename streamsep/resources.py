"""Files shipped inside the package: the default model and its params."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

__all__ = ["default_model_paths", "data_path", "DEFAULT_MODEL_NAME"]

DEFAULT_MODEL_NAME: Final = "orca_unet"
"""Stem of the bundled default model files (``<name>.json`` and ``<name>.tflite``)."""


def data_path(name: str) -> Path:
    """Path of a file in ``streamsep/data``."""
    return Path(str(resources.files("streamsep") / "data" / name))


def default_model_paths() -> tuple[Path, str]:
    """``(params_json, model)`` of the bundled default.

    The model is the bundled ``.tflite`` when the package ships one, else ``passthrough`` with
    the bundled params (a diagnostic default that separates nothing).
    """
    params = data_path(f"{DEFAULT_MODEL_NAME}.json")
    model = data_path(f"{DEFAULT_MODEL_NAME}.tflite")
    if model.is_file():
        return params, str(model)
    return data_path("passthrough.json"), "passthrough"
