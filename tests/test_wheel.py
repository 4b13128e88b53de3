"""The wheel and sdist: what they carry, and the wheel installed in a fresh virtualenv.

``python -m build`` makes both (the wheel from the sdist, so the sdist is checked too); the
wheel goes into a new virtualenv, with its runtime dependencies only or with the ``tools``
extra, and runs from a temporary folder outside the source tree with ``PYTHONPATH`` unset.

Both are cached between runs under ``$XDG_CACHE_HOME/streamsep-tests`` (``~/.cache``; the
latest of each kept): the build by a hash of the files it is made from, each virtualenv by a
hash of the wheel's dependency list and the Python version. A cached virtualenv gets the new
wheel reinstalled (``--force-reinstall --no-deps``) and ``pip check``; a changed dependency
list makes a fresh one. Measured on 2 shared cores: cold about 6 and 7 minutes for the runtime
and the ``tools`` (TensorFlow) virtualenvs, warm 50 s for the whole file.
"""

from __future__ import annotations

import email.parser
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT / "tests" / "fixtures" / "audio" / "acoustic-separation_20181202_25sec.flac"
PARITY = ROOT / "out" / "spleeter_parity"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "streamsep-tests"
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "streamsep", "tools", "configs", "docs")
IN_THE_WHEEL = (
    "streamsep/data/orca_unet.json",
    "streamsep/data/orca_unet.tflite",
    "streamsep/data/orca_unet_int8.tflite",
    "streamsep/data/passthrough.json",
    "streamsep_tools/convert_spleeter.py",
    "streamsep_tools/export_tflite.py",
    "streamsep_tools/unet.py",
    "streamsep-0.1.0.data/data/share/streamsep/configs/default.toml",
    "streamsep-0.1.0.data/data/share/streamsep/configs/2stems-finetune.json",
    "streamsep-0.1.0.data/data/share/streamsep/systemd/streamsep.service",
)
IN_THE_SDIST = (
    "streamsep/data/orca_unet.tflite",
    "streamsep/data/orca_unet_int8.tflite",
    "streamsep/data/orca_unet.json",
    "tools/convert_spleeter.py",
    "configs/default.toml",
    "configs/2stems-finetune.json",
    "setup.py",
)
INSTALL_TIMEOUT_S = 1800


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would point Python back at this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.update(extra)
    return env


def _run(command: list[str], cwd: Path, timeout: float = 600, **env: str) -> str:
    result = subprocess.run(
        command,
        cwd=cwd,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(command)}: {result.stderr[-3000:]}"
    return result.stdout


def _inputs_hash() -> str:
    digest = hashlib.sha256()
    for name in BUILD_INPUTS:
        base = ROOT / name
        paths = [base] if base.is_file() else sorted(base.rglob("*"))
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def dist() -> tuple[Path, Path]:
    """``(wheel, sdist)`` from ``python -m build`` of this checkout (cached by content)."""
    pytest.importorskip("build", reason="the test extra's `build` is not installed")
    out = CACHE / "dist" / _inputs_hash()
    if not (out / ".complete").is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            _run([sys.executable, "-m", "build", "-o", tmp, str(ROOT)], ROOT)
            (Path(tmp) / ".complete").touch()
            for old in out.parent.glob("*") if out.parent.is_dir() else ():
                shutil.rmtree(old, ignore_errors=True)  # builds of other sources
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(tmp, out)
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return wheels[0], sdists[0]


def _requires(wheel: Path, extras: tuple[str, ...]) -> list[str]:
    """The wheel's ``Requires-Dist`` lines that apply with ``extras``."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(z.read(name).decode())
    out = []
    for line in metadata.get_all("Requires-Dist") or []:
        marker = line.partition(";")[2]
        if "extra ==" not in marker or any(f'extra == "{e}"' in marker for e in extras):
            out.append(line)
    return sorted(out)


def _venv(wheel: Path, extras: tuple[str, ...]) -> Path:
    """A virtualenv with ``wheel`` (plus ``extras``) installed, cached by its requirements."""
    key_text = "\n".join([sys.version, *extras, *_requires(wheel, extras)])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    venv = CACHE / f"venv-{'-'.join(extras) or 'runtime'}-{key}"
    python = venv / "bin" / "python"
    spec = f"{wheel}[{','.join(extras)}]" if extras else str(wheel)
    if not (venv / ".complete").is_file():
        for old in CACHE.glob(f"venv-{'-'.join(extras) or 'runtime'}-*"):
            shutil.rmtree(old, ignore_errors=True)  # older dependency lists, and this one
        CACHE.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "venv", str(venv)], CACHE)
        _run([str(python), "-m", "pip", "install", "-q", spec], CACHE, INSTALL_TIMEOUT_S)
        (venv / ".complete").touch()
    else:
        _run(
            [str(python), "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", spec],
            CACHE,
        )
    _run([str(python), "-m", "pip", "check"], CACHE)
    return venv


@pytest.fixture(scope="session")
def runtime_venv(dist: tuple[Path, Path]) -> Path:
    return _venv(dist[0], ())


def _packages(venv: Path) -> dict[str, str]:
    lines = _run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"], CACHE)
    pairs = (line.split("==") for line in lines.splitlines() if "==" in line)
    return {name.lower(): version for name, version in pairs}


def test_wheel_and_sdist_carry_the_model_configs_and_converter(dist: tuple[Path, Path]) -> None:
    wheel, sdist = dist
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        model = z.read("streamsep/data/orca_unet.tflite")
    missing = [n for n in IN_THE_WHEEL if n not in names]
    assert not missing, f"{wheel.name} lacks {missing}"
    assert model == (ROOT / "streamsep" / "data" / "orca_unet.tflite").read_bytes()
    assert not [n for n in names if n.startswith(("tests/", "tools/"))], "stray top-level dirs"
    with tarfile.open(sdist) as t:
        top = t.getnames()[0].split("/")[0]
        names = {n.removeprefix(f"{top}/") for n in t.getnames()}
    missing = [n for n in IN_THE_SDIST if n not in names]
    assert not missing, f"{sdist.name} lacks {missing}"


def test_runtime_install_has_no_tensorflow_nor_test_tools(runtime_venv: Path) -> None:
    packages = _packages(runtime_venv)
    assert {"streamsep", "ai-edge-litert", "numpy", "pyzmq"} <= set(packages), packages
    unwanted = {"tensorflow", "tensorflow-cpu", "keras", "jax", "pytest", "mypy", "ruff"}
    assert not unwanted & set(packages), sorted(unwanted & set(packages))


def test_installed_wheel_separates_outside_the_source_tree(
    runtime_venv: Path, tmp_path: Path
) -> None:
    python = str(runtime_venv / "bin" / "python")
    where = _run([python, "-c", "import streamsep; print(streamsep.__file__)"], tmp_path)
    assert Path(where.strip()).is_relative_to(runtime_venv), where
    # The public API (issue 17), each name from its real module in the installed package.
    api = "Separator, StreamSettings, BlockSeparator, Daemon, Publisher, Subscriber"
    names = _run([python, "-c", f"from streamsep import {api}; print({api})"], tmp_path)
    for module in ("engine.offline", "engine.settings", "engine.streamer", "daemon.supervisor"):
        assert f"streamsep.{module}." in names, names
    assert "streamsep.net.publish.Publisher" in names and "streamsep.net.subscribe." in names
    streamsep = str(runtime_venv / "bin" / "streamsep")
    info = _run([streamsep, "info"], tmp_path)
    assert "stems: orca_vocals, noise" in info
    assert "latency: 17407 samples = 0.544 s" in info
    assert str(runtime_venv) in info  # the bundled model, loaded from the installed package
    _run([streamsep, "separate", str(RECORDING), "-o", "out", "--no-progress"], tmp_path)

    from streamsep import Separator

    mix, rate = sf.read(RECORDING, dtype="float32", always_2d=True)
    expected = Separator().separate(mix, rate)  # this checkout, in-process
    for stem, reference in expected.items():
        got, got_rate = sf.read(
            tmp_path / "out" / RECORDING.stem / f"{stem}.wav", dtype="float32", always_2d=True
        )
        assert got_rate == rate and got.shape == mix.shape
        assert np.abs(got - reference).max() <= 1e-6, stem
    assert np.abs(expected["orca_vocals"] - expected["noise"]).max() > 1e-2


def test_runtime_install_names_the_extra_for_a_spleeter_checkpoint(
    runtime_venv: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.index").write_bytes(b"not read before the check")
    (checkpoint / "model.data-00000-of-00001").write_bytes(b"")
    result = subprocess.run(
        [
            str(runtime_venv / "bin" / "streamsep"),
            "separate",
            str(RECORDING),
            "-o",
            "out",
            "--params",
            str(ROOT / "configs" / "2stems-finetune.json"),
            "--model",
            str(checkpoint),
        ],
        cwd=tmp_path,
        env=_clean_env(XDG_CACHE_HOME=str(tmp_path / "cache")),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "needs TensorFlow: pip install 'streamsep[tools]'" in result.stderr, result.stderr


def _parity_artifacts() -> list[Path]:
    return [
        PARITY / "params_perturbed.json",
        PARITY / "model_perturbed",
        PARITY / "clip.npy",
        PARITY / "spleeter_perturbed.npz",
    ]


@pytest.mark.skipif(
    not all(p.exists() for p in _parity_artifacts()),
    reason="needs out/spleeter_parity from `python -m tools.spleeter_parity` (the tiny checkpoint "
    "spleeter trains; .ci/run makes it before the tests)",
)
def test_tools_extra_converts_and_runs_the_spleeter_trained_checkpoint(
    dist: tuple[Path, Path], tmp_path: Path
) -> None:
    from streamsep.engine.params import load_params
    from tools.spleeter_compare import passes, rel_error_db

    venv = _venv(dist[0], ("tools",))
    packages = _packages(venv)
    assert "tensorflow" in packages or "tensorflow-cpu" in packages, packages
    # A copy of the checkpoint without the .tflite that earlier runs cached next to it.
    checkpoint = tmp_path / "model_perturbed"
    checkpoint.mkdir()
    for path in (PARITY / "model_perturbed").iterdir():
        if path.is_file() and not path.name.startswith("streamsep-"):
            shutil.copy2(path, checkpoint / path.name)
    params_path = PARITY / "params_perturbed.json"
    params = load_params(params_path)
    clip = np.load(PARITY / "clip.npy")
    sf.write(tmp_path / "clip.wav", clip, params.sample_rate, subtype="FLOAT")
    command = [
        str(venv / "bin" / "streamsep"),
        "separate",
        "clip.wav",
        "-o",
        "out",
        "--params",
        str(params_path),
        "--model",
        str(checkpoint),
        "--stream-segmentation",
        "spleeter",
        "--no-progress",
    ]
    _run(command, tmp_path, INSTALL_TIMEOUT_S, XDG_CACHE_HOME=str(tmp_path / "cache"))
    converted = list(checkpoint.glob("streamsep-*.tflite"))
    assert len(converted) == 1, "the installed converter did not cache its .tflite"
    spleeter = np.load(PARITY / "spleeter_perturbed.npz")
    for stem in params.instrument_list:
        ours, _ = sf.read(tmp_path / "out" / "clip" / f"{stem}.wav", dtype="float32")
        theirs = spleeter[f"separator/{stem}"]
        error = rel_error_db(ours, theirs)
        assert passes(error, float(np.abs(ours - theirs).max())), f"{stem}: {error:.1f} dB"


def test_converter_is_the_checkouts_tools_else_the_installed_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from streamsep.engine import checkpoint
    from streamsep.errors import ModelError

    assert checkpoint._converter_module() == ("tools.convert_spleeter", ROOT)
    monkeypatch.setattr(checkpoint, "_SOURCE_ROOT", tmp_path)  # as in site-packages
    monkeypatch.setattr(checkpoint, "_INSTALLED_TOOLS", "json")  # stands in: importable
    assert checkpoint._converter_module() == ("json.convert_spleeter", None)
    monkeypatch.setattr(checkpoint, "_INSTALLED_TOOLS", "streamsep_no_such_tools")
    with pytest.raises(ModelError, match=r"pip install 'streamsep\[tools\]'"):
        checkpoint._converter_module()
