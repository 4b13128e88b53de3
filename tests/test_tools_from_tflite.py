"""tools.train.from_tflite: the bundled .tflite file's weights back in the Keras U-Net."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras", reason="tools.train.from_tflite needs Keras (the tools extra)")

from streamsep.engine.params import load_params  # noqa: E402
from streamsep.errors import ModelError  # noqa: E402
from streamsep.resources import default_model_paths  # noqa: E402
from tools.train.from_tflite import keras_model_from_tflite, main, parity_db  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "streamsep" / "data"


def test_bundled_weights_rebuild_the_same_network(tmp_path: Path) -> None:
    params_path, model_path = default_model_paths()
    params = load_params(params_path)
    model = keras_model_from_tflite(Path(model_path), params)
    parity = parity_db(model, Path(model_path), params)
    assert set(parity) == set(params.instrument_list)
    assert max(parity.values()) < -90.0, parity
    # Frozen batch norms (what --freeze-batch-norm sets) compute the same in training calls.
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    block = np.abs(
        np.random.default_rng(2).standard_normal((1, params.T, params.F, params.input_channels))
    )
    block = block.astype(np.float32) * 1e-2
    trained = [np.asarray(o) for o in model(block, training=True)]
    inferred = [np.asarray(o) for o in model(block, training=False)]
    for a, b in zip(trained, inferred, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)
    # The command writes the weights where --init-weights looks, and they load.
    assert (
        main(["--params", str(params_path), "--model", str(model_path), "--out", str(tmp_path)])
        == 0
    )
    weights = tmp_path / "ckpt" / "last.weights.h5"
    again = keras_model_from_tflite(Path(model_path), params)
    again.load_weights(weights)
    assert max(parity_db(again, Path(model_path), params).values()) < -90.0


def test_a_quantised_export_is_refused_with_the_reason() -> None:
    params = load_params(DATA / "orca_unet.json")
    with pytest.raises(ModelError, match="without float32 weights"):
        keras_model_from_tflite(DATA / "orca_unet_int8.tflite", params)


@pytest.mark.parametrize(
    ("subpixel", "context", "stem_masks"),
    [
        (False, "none", "separate"),
        (True, "none", "separate"),
        (True, "floor", "separate"),
        (True, "floor", "complement"),
    ],
)
def test_both_deconvolution_exports_and_a_floor_input_rebuild(
    tmp_path: Path, subpixel: bool, context: str, stem_masks: str
) -> None:
    """TRANSPOSE_CONV exports and sub-pixel ones (four per-phase convolutions from 16 filters,
    one 3x3 convolution below) give back the weights they were made from; so does a network
    with a floor input, and one U-Net for both stems."""
    pytest.importorskip("tensorflow", reason="exporting needs TensorFlow (the tools extra)")
    from streamsep.engine.params import ModelParams
    from tools.export_tflite import export, randomize_weights
    from tools.unet import build_unet

    model_params = {"conv_n_filters": [4, 8, 16, 16, 32, 32], "input_norm": "log"}
    params = ModelParams(
        instrument_list=("orca_vocals", "noise"),
        sample_rate=8000,
        frame_length=256,
        frame_step=64,
        T=64,
        F=64,
        n_channels=1,
        model={
            "type": "unet.unet",
            "params": {**model_params, "context": context, "stem_masks": stem_masks},
        },
    )
    source = build_unet(params)
    randomize_weights(source, seed=4)
    path, _ = export(source, params, tmp_path, name="m", subpixel=subpixel)
    rebuilt = keras_model_from_tflite(path, params)
    assert max(parity_db(rebuilt, path, params).values()) < -90.0
    for a, b in zip(source.get_weights(), rebuilt.get_weights(), strict=True):
        if a.ndim == 4:  # kernels; batch norms are stored folded
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
