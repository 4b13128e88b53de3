"""tools.unet, tools.export_tflite and tools.make_fixtures (need TensorFlow, the tools extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamsep.engine.params import ModelParams, load_params

pytestmark = pytest.mark.tools

_REASON = "tools extra (TensorFlow) not installed"
STEMS = ("orca_vocals", "noise")
TINY_MODEL = {
    "type": "unet.unet",
    "params": {
        "conv_n_filters": [2, 4, 4, 8, 8, 8],
        "conv_activation": "ELU",
        "deconv_activation": "ELU",
    },
}


def _params(T: int = 16, F: int = 64, n_channels: int = 2, **model_params: Any) -> ModelParams:
    model = {"type": "unet.unet", "params": {**TINY_MODEL["params"], **model_params}}
    return ModelParams(
        instrument_list=STEMS,
        sample_rate=8000,
        frame_length=256,
        frame_step=64,
        T=T,
        F=F,
        n_channels=n_channels,
        model=model,
    )


def _block(params: ModelParams, seed: int = 7) -> np.ndarray:
    """A random magnitude block, shape (1, T, F, n_channels) float32."""
    rng = np.random.default_rng(seed)
    shape = (1, params.T, params.F, params.n_channels)
    return np.abs(rng.standard_normal(shape)).astype(np.float32)


def _runner(path: Path) -> tuple[Any, dict[str, Any]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    signatures = interpreter.get_signature_list()
    return interpreter.get_signature_runner("serving_default"), signatures


@pytest.fixture(scope="module")
def tiny() -> tuple[ModelParams, Any, np.ndarray, dict[str, np.ndarray]]:
    """(params, random-weight model, input block, Keras outputs by name)."""
    pytest.importorskip("tensorflow", reason=_REASON)
    from tools.export_tflite import randomize_weights
    from tools.unet import build_unet

    params = _params()
    model = build_unet(params)
    randomize_weights(model, 3)
    x = _block(params)
    outputs = model(x, training=False)
    expected = {f"{s}_spectrogram": np.asarray(o) for s, o in zip(STEMS, outputs, strict=True)}
    return params, model, x, expected


@pytest.mark.parametrize("T", [16, 64])
def test_unet_structure(T: int) -> None:
    pytest.importorskip("tensorflow", reason=_REASON)
    import keras

    from tools.export_tflite import randomize_weights
    from tools.unet import build_unet, spleeter_variable_map

    params = _params(T=T)
    model = build_unet(params)
    randomize_weights(model, 1)
    stem_of = spleeter_variable_map(STEMS)
    counts = {(s, t): 0 for s in STEMS for t in ("conv", "deconv", "bn")}
    kinds = {
        keras.layers.Conv2D: "conv",
        keras.layers.Conv2DTranspose: "deconv",
        keras.layers.BatchNormalization: "bn",
    }
    for layer in model.layers:
        if type(layer) in kinds:
            counts[(stem_of[layer.name][0], kinds[type(layer)])] += 1
    for stem in STEMS:
        # Spleeter's sixth encoder batch norm feeds nothing, so Keras drops it: 11, not 12.
        assert (counts[(stem, "conv")], counts[(stem, "deconv")], counts[(stem, "bn")]) == (
            7,
            6,
            11,
        )
    names = {layer.name for layer in model.layers}
    assert "batch_normalization_5" not in names and "batch_normalization_17" not in names
    assert {"conv2d_6", "conv2d_13", "conv2d_transpose_11", "batch_normalization_23"} <= names
    assert stem_of["conv2d_6"] == ("orca_vocals", "mask_conv")
    assert stem_of["conv2d_7"] == ("noise", "encoder1_conv")
    has_padding = any(isinstance(layer, keras.layers.ZeroPadding2D) for layer in model.layers)
    assert has_padding == (T % 64 != 0)

    assert model.input.name == "mix_spectrogram"
    assert list(model.output_names) == [f"{s}_spectrogram" for s in STEMS]
    assert model.input_shape == (1, T, 64, 2)
    assert [tuple(o.shape) for o in model.outputs] == [(1, T, 64, 2)] * 2

    # Each output is sigmoid(final conv) * input.
    x = _block(params)
    mask_model = keras.Model(
        model.input, [model.get_layer(n).output for n in ("conv2d_6", "conv2d_13")]
    )
    masks = [np.asarray(m)[:, :T] for m in mask_model(x, training=False)]
    outputs = [np.asarray(o) for o in model(x, training=False)]
    for mask, output in zip(masks, outputs, strict=True):
        assert mask.min() >= 0.0 and mask.max() <= 1.0
        np.testing.assert_allclose(output, mask * x, rtol=1e-6, atol=1e-7)
        assert np.all(output >= 0.0) and np.all(output <= x)
    assert np.abs(outputs[0] - outputs[1]).mean() > 1e-3, "random stems should differ"


@pytest.mark.parametrize(
    ("conv", "deconv", "expected"),
    [("ReLU", "LeakyReLU", ("ReLU", "LeakyReLU")), (None, None, ("LeakyReLU", "ReLU"))],
)
def test_unet_activations(conv: str | None, deconv: str | None, expected: tuple[str, str]) -> None:
    pytest.importorskip("tensorflow", reason=_REASON)
    from tools.unet import build_unet

    params = _params(conv_activation=conv, deconv_activation=deconv)
    model = build_unet(params)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert set(expected) <= kinds and "ELU" not in kinds
    leaky = [layer for layer in model.layers if type(layer).__name__ == "LeakyReLU"]
    assert all(abs(layer.negative_slope - 0.2) < 1e-7 for layer in leaky)


def test_export_float32_matches_keras(tiny: Any, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason=_REASON)
    from tools.export_tflite import export

    params, model, x, expected = tiny
    tflite_path, params_path = export(model, params, tmp_path, precision="float32", name="m")
    assert (tflite_path, params_path) == (tmp_path / "m.tflite", tmp_path / "m.json")
    assert load_params(params_path) == params
    runner, signatures = _runner(tflite_path)
    assert signatures["serving_default"]["inputs"] == ["mix_spectrogram"]
    assert sorted(signatures["serving_default"]["outputs"]) == sorted(expected)
    input_details = runner.get_input_details()["mix_spectrogram"]
    assert tuple(input_details["shape"]) == (1, 16, 64, 2)
    assert input_details["dtype"] == np.float32
    got = runner(mix_spectrogram=x)
    for name, want in expected.items():
        np.testing.assert_allclose(got[name], want, rtol=1e-4, atol=1e-4 * float(want.max()))


@pytest.mark.parametrize("precision", ["float16", "int8-dynamic"])
def test_export_quantized_close(tiny: Any, tmp_path: Path, precision: str) -> None:
    pytest.importorskip("tensorflow", reason=_REASON)
    from tools.export_tflite import export

    params, model, x, expected = tiny
    tflite_path, _ = export(model, params, tmp_path, precision=precision, name=precision)
    runner, _ = _runner(tflite_path)
    got = runner(mix_spectrogram=x)
    for name, want in expected.items():
        relative_l1 = np.abs(got[name] - want).sum() / np.abs(want).sum()
        assert relative_l1 < 5e-2, f"{precision} {name}: relative L1 {relative_l1:.3g}"


def test_export_rejects_mismatched_params(tiny: Any, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason=_REASON)
    from tools.export_tflite import export

    _, model, _, _ = tiny
    with pytest.raises(ValueError, match="disagrees with params"):
        export(model, _params(T=32), tmp_path)
    with pytest.raises(ValueError, match="precision"):
        export(model, _params(), tmp_path, precision="int4")


def test_make_fixtures(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason=_REASON)
    from tools.make_fixtures import FIXTURES, make_fixtures

    written = make_fixtures(tmp_path)
    assert sorted(p.name for p in written) == sorted(
        f"{name}.{ext}" for name in FIXTURES for ext in ("tflite", "json")
    )
    for name, n_channels, extension in (
        ("tiny_unet", 2, "zeros"),
        ("tiny_unet_mono", 1, "average"),
    ):
        params = load_params(tmp_path / f"{name}.json")
        assert params == FIXTURES[name]
        assert (params.n_channels, params.mask_extension) == (n_channels, extension)
        assert params.model_params["conv_n_filters"] == [2, 4, 4, 8, 8, 8]
        runner, signatures = _runner(tmp_path / f"{name}.tflite")
        assert sorted(signatures["serving_default"]["outputs"]) == sorted(
            f"{s}_spectrogram" for s in STEMS
        )
        shape = tuple(runner.get_input_details()["mix_spectrogram"]["shape"])
        assert shape == (1, 16, 64, n_channels)
        x = _block(params)
        outputs = runner(mix_spectrogram=x)
        for output in outputs.values():
            assert output.shape == shape
            assert np.all(output >= 0.0) and np.all(output <= x * (1 + 1e-6))


def test_log_input_norm_makes_masks_level_free_and_options_are_checked() -> None:
    pytest.importorskip("tensorflow", reason=_REASON)
    from streamsep.errors import ConfigError
    from tools.export_tflite import randomize_weights
    from tools.unet import build_unet

    params = _params(input_norm="log", decoder_dropout=0.0)
    model = build_unet(params)
    assert "block_log_norm" in [layer.name for layer in model.layers]
    assert not any("dropout" in layer.name for layer in model.layers)
    randomize_weights(model, 5)
    x = _block(params)
    quiet = [np.asarray(o) / x for o in model(x, training=False)]
    loud = [np.asarray(o) / (1000 * x) for o in model(1000 * x, training=False)]
    for a, b in zip(quiet, loud, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)  # the same masks, 60 dB apart
    spleeter = build_unet(_params())
    assert sum("dropout" in layer.name for layer in spleeter.layers) == 6  # 3 per stem
    for bad, message in (
        ({"input_norm": "db"}, "input_norm must be one of"),
        ({"decoder_dropout": 1.5}, "decoder_dropout must be in"),
    ):
        with pytest.raises(ConfigError, match=message):
            build_unet(_params(**bad))


def test_average_checkpoints_is_the_mean_of_the_weights(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason=_REASON)
    from tools.export_tflite import randomize_weights
    from tools.train.average_checkpoints import average
    from tools.train.loop import WEIGHTS_FILE
    from tools.unet import build_unet

    params = _params(n_channels=1)
    weights = []
    for seed in (1, 2, 3):
        model = build_unet(params)
        randomize_weights(model, seed)
        (tmp_path / f"c{seed}").mkdir()
        model.save_weights(tmp_path / f"c{seed}" / WEIGHTS_FILE)
        weights.append(model.get_weights())
    path = average(params, [tmp_path / f"c{s}" for s in (1, 2, 3)], tmp_path / "avg")
    averaged = build_unet(params)
    averaged.load_weights(path)
    for got, *parts in zip(averaged.get_weights(), *weights, strict=True):
        np.testing.assert_allclose(got, np.mean(parts, axis=0), rtol=1e-5, atol=1e-6)
    assert (tmp_path / "avg" / "ckpt" / "sources.json").is_file()


def test_complement_network_is_one_unet_whose_stems_sum_to_the_mix(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason=_REASON)
    from streamsep.engine.model import load_model
    from streamsep.errors import ConfigError
    from tools.export_tflite import export, randomize_weights
    from tools.unet import build_unet, load_compatible

    separate = build_unet(_params(), training=True)
    randomize_weights(separate, 9)
    weights = tmp_path / "separate.weights.h5"
    separate.save_weights(weights)
    params = _params(stem_masks="complement")
    model = build_unet(params, training=True)
    assert model.count_params() < 0.51 * separate.count_params()  # one U-Net, not two
    with pytest.raises(ValueError):
        model.load_weights(weights)
    assert load_compatible(model, str(weights), params) == "separate masks"
    x = _block(params)
    orca, noise = (np.asarray(o) for o in model(x, training=False))
    expected_orca = np.asarray(separate(x, training=False)[0])
    np.testing.assert_allclose(orca, expected_orca, rtol=1e-5, atol=1e-7)  # stem 0's U-Net
    np.testing.assert_allclose(orca + noise, x, rtol=1e-5, atol=1e-6)
    assert 0 < orca.sum() < x.sum()

    # Exported, the runtime reads it like any two-stem model: two outputs, ratio masks.
    inference = build_unet(params)
    inference.set_weights(model.get_weights())
    tflite_path, params_path = export(inference, params, tmp_path, name="complement")
    masks = load_model(tflite_path, load_params(params_path)).predict(x[0])
    m = orca[0] / x[0]
    ratio = m**2 / (m**2 + (1 - m) ** 2)
    np.testing.assert_allclose(masks[0], ratio, atol=5e-3)  # TFLite vs Keras arithmetic
    np.testing.assert_allclose(masks.sum(axis=0), 1.0, atol=1e-5)

    with pytest.raises(ConfigError, match="stem_masks must be one of"):
        build_unet(_params(stem_masks="shared"))
    three = ModelParams.from_dict({**params.to_dict(), "instrument_list": ["a", "b", "c"]})
    with pytest.raises(ConfigError, match="needs exactly 2 stems"):
        build_unet(three)
    with pytest.raises(ConfigError, match="weights of another network"):
        mono = _params(n_channels=1, stem_masks="complement")
        load_compatible(build_unet(mono, training=True), str(weights), mono)
