"""Spleeter checkpoint directories: find their files, convert them once to ``.tflite``, cache.

A Spleeter model directory (Deezer's pretrained ``2stems``, the seed's ``2stems-finetune``, or
the ``model_dir`` of a ``spleeter train`` run) holds a TensorFlow 1 checkpoint: an optional
``checkpoint`` file naming the latest prefix (``model`` or ``model.ckpt-<step>``),
``<prefix>.index`` and ``<prefix>.data-00000-of-00001`` (and often ``<prefix>.meta``).

:func:`cached_tflite_for_checkpoint` turns such a directory into a ``.tflite`` file the runtime
can load. The conversion (``tools/convert_spleeter.py``; installed from a wheel it is
``streamsep_tools.convert_spleeter``) needs TensorFlow, which the runtime never imports: it
runs once, in a subprocess, and its result is cached under a name derived
from the checkpoint's bytes and the params that shape the network, so later loads cost one hash
of the checkpoint files. The subprocess keeps TensorFlow's memory, threads and logging out of a
live process.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

from streamsep.engine.params import ModelParams
from streamsep.errors import ModelError

__all__ = [
    "CONVERTER_VERSION",
    "find_checkpoint",
    "checkpoint_files",
    "conversion_key",
    "cache_dir",
    "cached_tflite_for_checkpoint",
]

_LOGGER = logging.getLogger(__name__)

CONVERTER_VERSION: Final = 3
"""Part of the cache key; bump when the converter's output changes for the same input (3: the
transposed convolutions are exported as sub-pixel convolutions, tools/subpixel.py)."""
_SOURCE_ROOT: Final = Path(__file__).resolve().parents[2]
"""The source checkout holding ``tools/`` (site-packages for an installed wheel)."""
_INSTALLED_TOOLS: Final = "streamsep_tools"
"""``tools/`` as a wheel installs it (setup.py maps the folder to this package)."""
_CONVERT_TIMEOUT_SECONDS: Final = 1800.0
_PATH_LINE: Final = re.compile(r'^model_checkpoint_path:\s*"(.*)"\s*$')
_SHARD: Final = re.compile(r"\.data-(\d{5})-of-(\d{5})$")
_HASH_CHUNK_BYTES: Final = 1 << 20


def find_checkpoint(checkpoint_dir: str | Path) -> Path:
    """The checkpoint prefix in ``checkpoint_dir`` (``<dir>/model``, ``<dir>/model.ckpt-3``...).

    The ``checkpoint`` file, when present, names the prefix; only its base name is used,
    because the file often holds an absolute path from the machine that trained the model.
    Without it the prefix is ``model`` (the layout of Deezer's pretrained models).

    Raises
    ------
    ModelError
        If the directory, the ``.index`` file or a ``.data`` shard is missing.
    """
    directory = Path(checkpoint_dir)
    if not directory.is_dir():
        raise ModelError(f"Spleeter checkpoint dir {directory} not found")
    name = "model"
    pointer = directory / "checkpoint"
    if pointer.is_file():
        for line in pointer.read_text(errors="replace").splitlines():
            match = _PATH_LINE.match(line.strip())
            if match:
                name = Path(match.group(1).replace("\\", "/")).name
                break
    prefix = directory / name
    if not Path(f"{prefix}.index").is_file():
        raise ModelError(f"Spleeter checkpoint dir {directory} has no {name}.index")
    checkpoint_files(prefix)  # checks the data shards
    return prefix


def checkpoint_files(prefix: Path) -> list[Path]:
    """The ``.index`` file and every ``.data`` shard of checkpoint ``prefix``, in order.

    Raises
    ------
    ModelError
        If a file is missing.
    """
    directory, name = prefix.parent, prefix.name
    index = directory / f"{name}.index"
    if not index.is_file():
        raise ModelError(f"Spleeter checkpoint dir {directory} has no {name}.index")
    shards = sorted(directory.glob(f"{glob.escape(name)}.data-*-of-*"))
    counts = {int(m.group(2)) for s in shards if (m := _SHARD.search(s.name))}
    n_shards = max(counts) if counts else 1
    expected = [directory / f"{name}.data-{i:05d}-of-{n_shards:05d}" for i in range(n_shards)]
    for path in expected:
        if not path.is_file():
            raise ModelError(f"Spleeter checkpoint dir {directory} has no {path.name}")
    return [index, *expected]


def _network_description(params: ModelParams, precision: str) -> dict[str, object]:
    """The params that shape the converted network (other keys do not change the file)."""
    return {
        "converter": CONVERTER_VERSION,
        "precision": precision,
        "T": params.T,
        "F": params.F,
        "n_channels": params.n_channels,
        "instrument_list": list(params.instrument_list),
        "model": params.model,
    }


def conversion_key(prefix: Path, params: ModelParams, precision: str = "float32") -> str:
    """Hex digest (16 characters) of the checkpoint files' bytes and the network params."""
    digest = hashlib.sha256()
    description = _network_description(params, precision)
    digest.update(json.dumps(description, sort_keys=True, default=str).encode())
    for path in checkpoint_files(prefix):
        digest.update(path.name.encode() if path.suffix == ".index" else b"data")
        with path.open("rb") as f:
            while chunk := f.read(_HASH_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/streamsep`` (``~/.cache/streamsep`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamsep"


def _writable(directory: Path) -> bool:
    return directory.is_dir() and os.access(directory, os.W_OK | os.X_OK)


def _converter_module() -> tuple[str, Path | None]:
    """``(module, source_root)`` of the converter: the checkout's ``tools``, else installed.

    ``source_root`` (``None`` for the installed package) goes first on ``PYTHONPATH``.
    A checkout is recognised by its ``pyproject.toml`` next to ``tools/convert_spleeter.py``.

    Raises
    ------
    ModelError
        If neither is there.
    """
    if (_SOURCE_ROOT / "pyproject.toml").is_file() and (
        _SOURCE_ROOT / "tools" / "convert_spleeter.py"
    ).is_file():
        return "tools.convert_spleeter", _SOURCE_ROOT
    if importlib.util.find_spec(_INSTALLED_TOOLS) is not None:
        return f"{_INSTALLED_TOOLS}.convert_spleeter", None
    raise ModelError(
        "converting a Spleeter checkpoint needs the converter: neither a source checkout's "
        f"tools/ nor the installed package {_INSTALLED_TOOLS}; pip install 'streamsep[tools]'"
    )


def _check_converter_available() -> None:
    if importlib.util.find_spec("tensorflow") is None:
        raise ModelError(
            "converting a Spleeter checkpoint needs TensorFlow: pip install 'streamsep[tools]'"
        )
    _converter_module()


def _run_converter(
    params: ModelParams, checkpoint_dir: Path, out_dir: Path, name: str, precision: str
) -> None:
    """Run the converter (:func:`_converter_module`) writing ``out_dir/name.{tflite,json}``."""
    module, source_root = _converter_module()
    params_path = out_dir / "input-params.json"
    params.save(params_path)
    command = [
        sys.executable,
        "-m",
        module,
        "--params",
        str(params_path),
        "--checkpoint",
        str(checkpoint_dir),
        "--out",
        str(out_dir),
        "--name",
        name,
        "--precision",
        precision,
    ]
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if source_root is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(source_root), env.get("PYTHONPATH", "")) if p
        )
    try:
        result = subprocess.run(
            command,
            cwd=source_root or out_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=_CONVERT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ModelError(f"cannot convert Spleeter checkpoint {checkpoint_dir}: {e}") from e
    for line in result.stdout.splitlines():
        _LOGGER.debug("converter: %s", line)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
        reason = errors[-1] if errors else (lines[-1] if lines else f"exit {result.returncode}")
        raise ModelError(f"cannot convert Spleeter checkpoint {checkpoint_dir}: {reason}")


def _work_dir(directory: Path, fallback: Path) -> tuple[Path, Path]:
    """``(target, work)``: where the conversion is published, and a fresh work dir inside it.

    ``directory`` (next to the checkpoint) when it is writable, else ``fallback``.
    """
    if _writable(directory):
        try:
            return directory, Path(tempfile.mkdtemp(prefix=".streamsep-convert-", dir=directory))
        except OSError as e:  # e.g. a read-only mount that access() did not report
            _LOGGER.debug("cannot write in %s: %s", directory, e)
    _LOGGER.info("checkpoint dir %s is not writable; caching in %s", directory, fallback)
    try:
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback, Path(tempfile.mkdtemp(prefix=".streamsep-convert-", dir=fallback))
    except OSError as e:
        raise ModelError(f"cannot write the converted model to {fallback}: {e}") from e


def cached_tflite_for_checkpoint(
    checkpoint_dir: str | Path, params: ModelParams, *, precision: str = "float32"
) -> Path:
    """The ``.tflite`` file converted from a Spleeter checkpoint directory, converting once.

    The file is ``streamsep-<key>.tflite`` (with its params JSON ``streamsep-<key>.json``) next
    to the checkpoint, or in :func:`cache_dir` when the checkpoint directory is not writable;
    ``<key>`` is :func:`conversion_key`. A file already in either place is reused.

    Parameters
    ----------
    checkpoint_dir : str or Path
        A Spleeter model directory (``checkpoint``, ``model.index``, ``model.data-*``...).
    params : ModelParams
        The params the checkpoint was trained with (``instrument_list``, ``model.params``).
    precision : str
        Converter precision: ``float32`` (parity with Spleeter), ``float16``, ``int8-dynamic``
        or ``int8`` (see ``tools/export_tflite.py``).

    Returns
    -------
    Path
        The ``.tflite`` file.

    Raises
    ------
    ModelError
        If files are missing, TensorFlow or the converter is unavailable, or the checkpoint
        disagrees with ``params`` (the converter's one-line reason is in the message).
    """
    directory = Path(checkpoint_dir)
    if params.context != "none":
        raise ModelError(
            f"Spleeter checkpoint {directory}: Spleeter's U-Net takes no noise-floor input; "
            f"remove model.params.context ({params.context!r}) from its params"
        )
    prefix = find_checkpoint(directory)
    key = conversion_key(prefix, params, precision)
    name = f"streamsep-{key}"
    fallback = cache_dir()
    for place in (directory, fallback):
        candidate = place / f"{name}.tflite"
        if candidate.is_file():
            _LOGGER.info("using %s (converted from Spleeter checkpoint %s)", candidate, prefix)
            return candidate
    _check_converter_available()
    target, work = _work_dir(directory, fallback)
    _LOGGER.info(
        "converting Spleeter checkpoint %s to %s (first use only; takes a while)",
        prefix,
        target / f"{name}.tflite",
    )
    try:
        _run_converter(params, directory, work, name, precision)
        # Publish atomically: the .tflite appears last, so a reader never sees half a model.
        os.replace(work / f"{name}.json", target / f"{name}.json")
        os.replace(work / f"{name}.tflite", target / f"{name}.tflite")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _LOGGER.info("cached %s", target / f"{name}.tflite")
    return target / f"{name}.tflite"
