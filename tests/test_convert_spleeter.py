"""streamsep.engine.checkpoint and tools.convert_spleeter: Spleeter checkpoint directories.

The checkpoints here are written in Spleeter's format from TensorFlow 2.21 with
``tf.compat.v1.train.Saver`` (variable names ``conv2d/kernel``..., the seed's file layout);
``tools/spleeter_parity.py`` checks the same path against the real spleeter package.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import streamsep.engine.checkpoint as checkpoint
from streamsep import Separator, StreamSettings
from streamsep.engine.model import TFLiteModel, load_model
from streamsep.engine.params import ModelParams, load_params
from streamsep.errors import ConfigError, ModelError

_REASON = "tools extra (TensorFlow) not installed"
STEMS = ("orca_vocals", "noise")
FILTERS = [2, 4, 4, 8, 8, 8]


def _params_dict(
    instruments: tuple[str, ...] = STEMS, filters: list[int] | None = None
) -> dict[str, Any]:
    """The seed's params JSON (extra keys included) at tiny sizes: 8 kHz, 256/64, T=F=64."""
    return {
        "train_csv": "orca_train.csv",
        "model_dir": "2stems-finetune",
        "mix_name": "mix",
        "instrument_list": list(instruments),
        "sample_rate": 8000,
        "frame_length": 256,
        "frame_step": 64,
        "T": 64,
        "F": 64,
        "n_channels": 2,
        "separation_exponent": 2,
        "mask_extension": "zeros",
        "learning_rate": 1e-4,
        "model": {
            "type": "unet.unet",
            "params": {
                "conv_n_filters": filters or FILTERS,
                "conv_activation": "ELU",
                "deconv_activation": "ELU",
            },
        },
    }


def _write_params(path: Path, **kwargs: Any) -> Path:
    path.write_text(json.dumps(_params_dict(**kwargs), indent=4))
    return path


def write_spleeter_checkpoint(
    directory: Path,
    variables: dict[str, np.ndarray],
    *,
    prefix: str = "model",
    pointer: str | None = None,
    graph_stems: tuple[str, ...] = (),
) -> Path:
    """Write ``variables`` as a TF1 checkpoint ``directory/prefix.*`` plus a ``checkpoint`` file.

    ``pointer`` is the path the ``checkpoint`` file names (default: the prefix); ``graph_stems``
    adds ``<stem>_spectrogram/mul`` nodes to the ``.meta`` graph, as Spleeter's graphs have.
    """
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        tf_vars = {
            name: tf.compat.v1.Variable(value, name=name) for name, value in variables.items()
        }
        for stem in graph_stems:
            tf.multiply(1.0, 2.0, name=f"{stem}_spectrogram/mul")
        saver = tf.compat.v1.train.Saver(var_list=tf_vars)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(directory / prefix), write_meta_graph=True)
    target = pointer if pointer is not None else prefix
    (directory / "checkpoint").write_text(
        f'model_checkpoint_path: "{target}"\nall_model_checkpoint_paths: "{target}"\n'
    )
    return directory


def spleeter_variables(model: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """The variables Spleeter's checkpoint would hold for ``model`` (a build_unet model).

    Adds what the Keras model lacks: the unused sixth encoder batch norm of each stem
    (``batch_normalization_5``, ``_17``), ``global_step`` and an Adam slot.
    """
    rng = np.random.default_rng(seed)
    variables = {w.path: np.asarray(w.numpy()) for w in model.weights}
    for bn in ("batch_normalization_5", "batch_normalization_17"):
        n = FILTERS[5]
        variables[f"{bn}/gamma"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
        variables[f"{bn}/beta"] = rng.normal(0, 1, n).astype(np.float32)
        variables[f"{bn}/moving_mean"] = rng.normal(0, 1, n).astype(np.float32)
        variables[f"{bn}/moving_variance"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
    variables["global_step"] = np.asarray(1000, dtype=np.int64)
    variables["conv2d/kernel/Adam"] = np.zeros_like(variables["conv2d/kernel"])
    return variables


@pytest.fixture(scope="module")
def seed_like(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A random-weight tiny U-Net written as a Spleeter checkpoint in the seed's layout.

    The ``checkpoint`` file names an absolute path of another machine, as trained ones do.
    """
    pytest.importorskip("tensorflow", reason=_REASON)
    from tools.export_tflite import randomize_weights
    from tools.unet import build_unet

    root = tmp_path_factory.mktemp("seed")
    params_path = _write_params(root / "2stems-finetune.json")
    params = load_params(params_path)
    model = build_unet(params)
    randomize_weights(model, 5)
    variables = spleeter_variables(model)
    assert {"conv2d_13/kernel", "conv2d_transpose_11/bias"} <= set(variables)
    assert "batch_normalization_23/moving_variance" in variables
    ckpt = write_spleeter_checkpoint(
        root / "2stems-finetune",
        variables,
        pointer="/home/seed/orca/2stems-finetune/model",
        graph_stems=STEMS,
    )
    return {
        "root": root,
        "params_path": params_path,
        "params": params,
        "model": model,
        "variables": variables,
        "checkpoint": ckpt,
    }


@pytest.fixture(scope="module")
def converted(seed_like: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed-like checkpoint converted in-process with tools.convert_spleeter (float32)."""
    from tools.convert_spleeter import convert

    out = tmp_path_factory.mktemp("converted")
    tflite, params_json = convert(seed_like["params"], seed_like["checkpoint"], out, name="m")
    assert params_json == out / "m.json"
    return tflite


def _block(params: ModelParams, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (1, params.T, params.F, params.n_channels)
    return np.abs(rng.standard_normal(shape)).astype(np.float32)


def _copy_checkpoint(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("streamsep-*"))
    return dst


# --- the converter -----------------------------------------------------------------------------


@pytest.mark.tools
def test_converted_model_matches_keras(seed_like: dict[str, Any], converted: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    params, model = seed_like["params"], seed_like["model"]
    x = _block(params)
    expected = [np.asarray(o) for o in model(x, training=False)]
    interpreter = Interpreter(model_path=str(converted))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "TRANSPOSE_CONV" not in ops and "DEPTH_TO_SPACE" in ops  # sub-pixel deconvolutions
    runner = interpreter.get_signature_runner("serving_default")
    got = runner(mix_spectrogram=x)
    for stem, want in zip(STEMS, expected, strict=True):
        np.testing.assert_allclose(got[f"{stem}_spectrogram"], want, rtol=1e-4, atol=1e-6)
    assert load_params(converted.with_suffix(".json")) == params  # extra keys round-trip


@pytest.mark.tools
def test_converter_maps_every_variable_by_name(seed_like: dict[str, Any]) -> None:
    from tools.convert_spleeter import build_from_checkpoint

    rebuilt = build_from_checkpoint(seed_like["params"], seed_like["checkpoint"])
    variables = seed_like["variables"]
    for weight in rebuilt.weights:
        np.testing.assert_array_equal(weight.numpy(), variables[weight.path], err_msg=weight.path)
    paths = {w.path for w in rebuilt.weights}
    skipped = set(variables) - paths
    assert skipped == {
        *(
            f"batch_normalization_{i}/{leaf}"
            for i in (5, 17)
            for leaf in ("gamma", "beta", "moving_mean", "moving_variance")
        ),
        "global_step",
        "conv2d/kernel/Adam",
    }


@pytest.mark.tools
def test_converter_cli_float16(seed_like: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    from tools.convert_spleeter import main

    args = ["--params", str(seed_like["params_path"]), "--checkpoint", str(seed_like["checkpoint"])]
    assert main([*args, "--out", str(tmp_path), "--precision", "float16"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [
        str(tmp_path / "2stems-finetune.tflite"),
        str(tmp_path / "2stems-finetune.json"),
    ]
    params = seed_like["params"]
    model = TFLiteModel(tmp_path / "2stems-finetune.tflite", params)
    x = _block(params)[0]
    reference = ratio_from_keras(seed_like["model"], x, params)
    np.testing.assert_allclose(model.predict(x), reference, atol=2e-2)


def ratio_from_keras(model: Any, x: np.ndarray, params: ModelParams) -> np.ndarray:
    from streamsep.engine.spectral import ratio_masks

    outputs = np.stack([np.asarray(o)[0] for o in model(x[None], training=False)])
    return ratio_masks(outputs, params.separation_exponent)


@pytest.mark.tools
def test_converter_warns_when_graph_names_other_stems(
    seed_like: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tools.convert_spleeter import build_from_checkpoint

    ckpt = write_spleeter_checkpoint(
        tmp_path / "deezer", seed_like["variables"], graph_stems=("vocals", "accompaniment")
    )
    with caplog.at_level(logging.WARNING, logger="tools.convert_spleeter"):
        build_from_checkpoint(seed_like["params"], ckpt)
    assert "names stems ['vocals', 'accompaniment'], params name ['orca_vocals', 'noise']" in (
        caplog.text
    )


# --- wrong params vs checkpoint ----------------------------------------------------------------


@pytest.mark.tools
def test_refuses_other_instrument_count(seed_like: dict[str, Any]) -> None:
    from tools.convert_spleeter import build_from_checkpoint

    params = ModelParams.from_dict(_params_dict(instruments=("vocals", "drums", "bass", "other")))
    with pytest.raises(ModelError) as info:
        build_from_checkpoint(params, seed_like["checkpoint"])
    message = str(info.value)
    assert "has 2 stems (14 conv2d layers)" in message
    assert "instrument_list has 4: ['vocals', 'drums', 'bass', 'other']" in message
    assert "\n" not in message


@pytest.mark.tools
def test_refuses_other_filter_counts(seed_like: dict[str, Any]) -> None:
    from tools.convert_spleeter import build_from_checkpoint

    params = ModelParams.from_dict(_params_dict(filters=[4, 8, 8, 16, 16, 16]))
    with pytest.raises(ModelError) as info:
        build_from_checkpoint(params, seed_like["checkpoint"])
    assert str(info.value) == (
        "checkpoint variable conv2d/kernel has shape (5, 5, 2, 2), params expect (5, 5, 2, 4)"
    )


@pytest.mark.tools
def test_refuses_missing_variable(seed_like: dict[str, Any], tmp_path: Path) -> None:
    from tools.convert_spleeter import build_from_checkpoint

    variables = dict(seed_like["variables"])
    del variables["batch_normalization_7/moving_mean"]
    ckpt = write_spleeter_checkpoint(tmp_path / "ckpt", variables)
    with pytest.raises(ModelError, match=r"has no variable batch_normalization_7/moving_mean "):
        build_from_checkpoint(seed_like["params"], ckpt)


@pytest.mark.tools
def test_refuses_unsupported_model_type(seed_like: dict[str, Any]) -> None:
    from tools.convert_spleeter import build_from_checkpoint

    data = _params_dict()
    data["model"]["type"] = "unet.softmax_unet"
    with pytest.raises(ConfigError, match="model.type 'unet.softmax_unet' is not supported"):
        build_from_checkpoint(ModelParams.from_dict(data), seed_like["checkpoint"])


@pytest.mark.tools
def test_converter_cli_error_is_one_line(seed_like: dict[str, Any], tmp_path: Path) -> None:
    from tools.convert_spleeter import main

    params = _write_params(tmp_path / "p.json", filters=[4, 8, 8, 16, 16, 16])
    with pytest.raises(SystemExit) as info:
        main(
            [
                "--params",
                str(params),
                "--checkpoint",
                str(seed_like["checkpoint"]),
                "--out",
                str(tmp_path / "out"),
            ]
        )
    assert str(info.value).startswith("error: checkpoint variable conv2d/kernel has shape")


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("model.index", "has no model.index"),
        ("model.data-00000-of-00001", "has no model.data-00000-of-00001"),
    ],
)
def test_missing_checkpoint_file(
    tmp_path: Path, remove: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "2stems-finetune"
    directory.mkdir()
    for name in ("checkpoint", "model.index", "model.data-00000-of-00001", "model.meta"):
        (directory / name).write_text('model_checkpoint_path: "model"\n')
    (directory / remove).unlink()
    monkeypatch.setattr(checkpoint, "_run_converter", _must_not_convert)
    with pytest.raises(ModelError, match=f"checkpoint dir {directory} {message}"):
        Separator(_params_dict(), directory)


def test_missing_checkpoint_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="checkpoint dir .*nowhere not found"):
        checkpoint.find_checkpoint(tmp_path / "nowhere")


def test_load_model_directory_message(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is a directory; load a Spleeter checkpoint directory"):
        load_model(tmp_path, ModelParams.from_dict(_params_dict()))


def test_needs_tensorflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = _fake_checkpoint(tmp_path / "ckpt")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real_find_spec = checkpoint.importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "tensorflow" else real_find_spec(name, *args)

    monkeypatch.setattr(checkpoint.importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelError) as info:
        Separator(_params_dict(), directory)
    assert str(info.value) == (
        "converting a Spleeter checkpoint needs TensorFlow: pip install 'streamsep[tools]'"
    )


# --- locating, keys, caching (no TensorFlow needed) --------------------------------------------


def _fake_checkpoint(directory: Path, prefix: str = "model", data: bytes = b"weights") -> Path:
    directory.mkdir(parents=True)
    (directory / f"{prefix}.index").write_bytes(b"index")
    (directory / f"{prefix}.data-00000-of-00001").write_bytes(data)
    (directory / "checkpoint").write_text(f'model_checkpoint_path: "/elsewhere/{prefix}"\n')
    return directory


def _must_not_convert(*args: Any) -> None:
    raise AssertionError("the converter must not run")


def test_find_checkpoint_layouts(tmp_path: Path) -> None:
    pretrained = _fake_checkpoint(tmp_path / "a")
    assert checkpoint.find_checkpoint(pretrained) == pretrained / "model"
    (pretrained / "checkpoint").unlink()  # no pointer file: "model" is assumed
    assert checkpoint.find_checkpoint(pretrained) == pretrained / "model"
    trained = _fake_checkpoint(tmp_path / "b", prefix="model.ckpt-200000")
    assert checkpoint.find_checkpoint(trained) == trained / "model.ckpt-200000"
    sharded = tmp_path / "c"
    sharded.mkdir()
    (sharded / "model.index").write_bytes(b"i")
    (sharded / "model.data-00000-of-00002").write_bytes(b"d")
    with pytest.raises(ModelError, match="has no model.data-00001-of-00002"):
        checkpoint.find_checkpoint(sharded)
    (sharded / "model.data-00001-of-00002").write_bytes(b"d")
    assert [p.name for p in checkpoint.checkpoint_files(sharded / "model")] == [
        "model.index",
        "model.data-00000-of-00002",
        "model.data-00001-of-00002",
    ]


def test_conversion_key(tmp_path: Path) -> None:
    prefix = checkpoint.find_checkpoint(_fake_checkpoint(tmp_path / "a"))
    params = ModelParams.from_dict(_params_dict())
    key = checkpoint.conversion_key(prefix, params)
    assert len(key) == 16
    unrelated = ModelParams.from_dict({**_params_dict(), "train_csv": "other.csv"})
    assert checkpoint.conversion_key(prefix, unrelated) == key
    other_filters = ModelParams.from_dict(_params_dict(filters=[4, 8, 8, 16, 16, 16]))
    assert checkpoint.conversion_key(prefix, other_filters) != key
    assert checkpoint.conversion_key(prefix, params, "float16") != key
    other_bytes = checkpoint.find_checkpoint(_fake_checkpoint(tmp_path / "b", data=b"other"))
    assert checkpoint.conversion_key(other_bytes, params) != key


@pytest.mark.parametrize("writable", [True, False])
def test_cache_placement(
    tmp_path: Path, writable: bool, monkeypatch: pytest.MonkeyPatch, tiny_unet: tuple[Path, Path]
) -> None:
    """Converted once next to the checkpoint, or in $XDG_CACHE_HOME/streamsep; then reused."""
    directory = _fake_checkpoint(tmp_path / "ckpt")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(checkpoint, "_check_converter_available", lambda: None)
    monkeypatch.setattr(checkpoint, "_writable", lambda d: writable)
    calls = []

    def fake_converter(params: Any, src: Path, out: Path, name: str, precision: str) -> None:
        calls.append((src, name, precision))
        shutil.copy(tiny_unet[1], out / f"{name}.tflite")
        params.save(out / f"{name}.json")

    monkeypatch.setattr(checkpoint, "_run_converter", fake_converter)
    params = load_params(tiny_unet[0])
    path = checkpoint.cached_tflite_for_checkpoint(directory, params)
    expected_dir = directory if writable else tmp_path / "cache" / "streamsep"
    assert path.parent == expected_dir
    assert path.name == f"streamsep-{checkpoint.conversion_key(directory / 'model', params)}.tflite"
    assert path.with_suffix(".json").is_file()
    assert not list(expected_dir.glob(".streamsep-convert-*")), "work dir left behind"
    assert calls == [(directory, path.stem, "float32")]
    monkeypatch.setattr(checkpoint, "_run_converter", _must_not_convert)
    assert checkpoint.cached_tflite_for_checkpoint(directory, params) == path
    separator = Separator(params, directory)  # the offline API takes the directory
    assert separator.model.path == path  # type: ignore[attr-defined]


def test_failed_conversion_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = _fake_checkpoint(tmp_path / "ckpt")
    monkeypatch.setattr(checkpoint, "_check_converter_available", lambda: None)

    def failing(*args: Any) -> None:
        raise ModelError("cannot convert Spleeter checkpoint x: reason")

    monkeypatch.setattr(checkpoint, "_run_converter", failing)
    with pytest.raises(ModelError, match="reason"):
        checkpoint.cached_tflite_for_checkpoint(directory, ModelParams.from_dict(_params_dict()))
    assert sorted(p.name for p in directory.iterdir()) == [
        "checkpoint",
        "model.data-00000-of-00001",
        "model.index",
    ]


# --- end to end: the seed's call and the command line --------------------------------------------


@pytest.mark.tools
def test_seed_call_with_checkpoint_dir(
    seed_like: dict[str, Any], converted: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``Separator(params_json, checkpoint_dir).return_source_directory(waveform, rate)``."""
    directory = _copy_checkpoint(seed_like["checkpoint"], tmp_path / "2stems-finetune")
    rng = np.random.default_rng(0)
    waveform = (0.1 * rng.standard_normal((8000 + 321, 2))).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="streamsep.engine.checkpoint"):
        separator = Separator(str(seed_like["params_path"]), str(directory) + "/")
    assert "converting Spleeter checkpoint" in caplog.text
    stems = separator.return_source_directory(waveform, 8000)
    assert list(stems) == list(STEMS)
    assert len(list(directory.glob("streamsep-*.tflite"))) == 1
    # A checkpoint directory separates with Spleeter's own segmentation by default.
    assert separator.stream == StreamSettings.spleeter()
    spleeter = StreamSettings.spleeter()
    reference = Separator(seed_like["params"], converted, stream=spleeter).separate(waveform, 8000)
    overlap = Separator(seed_like["params"], converted).separate(waveform, 8000)
    for stem in STEMS:
        assert stems[stem].shape == waveform.shape
        np.testing.assert_allclose(stems[stem], reference[stem], atol=1e-6)
    assert float(np.abs(stems["orca_vocals"]).max()) > 1e-3
    assert float(np.abs(stems["orca_vocals"] - overlap["orca_vocals"]).max()) > 1e-4

    # Overlap segmentation stays an option, through the same cached model.
    overlap_sep = Separator(seed_like["params"], directory, stream=StreamSettings())
    assert overlap_sep.stream.segmentation == "overlap"
    assert overlap_sep.model.path == separator.model.path  # type: ignore[attr-defined]


@pytest.mark.tools
def test_cli_separate_with_checkpoint_dir(
    seed_like: dict[str, Any], converted: Path, tmp_path: Path
) -> None:
    """``streamsep separate --params P --model DIR``."""
    import soundfile as sf

    from streamsep.cli.main import main

    directory = _copy_checkpoint(seed_like["checkpoint"], tmp_path / "ckpt")
    rng = np.random.default_rng(1)
    waveform = (0.1 * rng.standard_normal((6000, 2))).astype(np.float32)
    sf.write(tmp_path / "clip.wav", waveform, 8000, subtype="FLOAT")
    argv = [
        "separate",
        str(tmp_path / "clip.wav"),
        "-o",
        str(tmp_path / "out"),
        "--params",
        str(seed_like["params_path"]),
        "--model",
        str(directory),
        "--no-progress",
    ]
    assert main(argv) == 0
    spleeter = StreamSettings.spleeter()
    reference = Separator(seed_like["params"], converted, stream=spleeter).separate(waveform, 8000)
    for stem in STEMS:
        audio, rate = sf.read(tmp_path / "out" / "clip" / f"{stem}.wav", dtype="float32")
        assert rate == 8000
        np.testing.assert_allclose(audio, reference[stem], atol=1e-6)
    # --stream-segmentation overlap (or any stream option) keeps the overlapping blocks.
    assert (
        main([*argv[:3], str(tmp_path / "ovl"), *argv[4:], "--stream-segmentation", "overlap"]) == 0
    )
    overlap = Separator(seed_like["params"], converted).separate(waveform, 8000)
    for stem in STEMS:
        audio, _ = sf.read(tmp_path / "ovl" / "clip" / f"{stem}.wav", dtype="float32")
        np.testing.assert_allclose(audio, overlap[stem], atol=1e-6)


@pytest.mark.tools
def test_separator_reports_converter_error(seed_like: dict[str, Any], tmp_path: Path) -> None:
    directory = _copy_checkpoint(seed_like["checkpoint"], tmp_path / "ckpt")
    params = _params_dict(filters=[4, 8, 8, 16, 16, 16])
    with pytest.raises(ModelError) as info:
        Separator(params, directory)
    assert str(info.value) == (
        f"cannot convert Spleeter checkpoint {directory}: checkpoint variable conv2d/kernel has "
        "shape (5, 5, 2, 2), params expect (5, 5, 2, 4)"
    )
    assert not list(directory.glob("streamsep-*")) and not list(directory.glob(".streamsep-*"))
