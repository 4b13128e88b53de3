"""tools.subpixel (transposed convolutions as sub-pixel convolutions) and tools.calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamsep.engine.params import ModelParams

pytestmark = pytest.mark.tools

_REASON = "tools extra (TensorFlow) not installed"
DATA = Path("/work/shared/data")


@pytest.mark.parametrize(
    ("h", "w", "cin", "cout"),
    [(7, 9, 6, 3), (8, 16, 4, 1), (1, 1, 2, 2), (5, 6, 3, 16), (4, 7, 8, 24)],
)
def test_layer_equals_transposed_convolution(h: int, w: int, cin: int, cout: int) -> None:
    pytest.importorskip("tensorflow", reason=_REASON)
    import keras

    from tools.subpixel import SubpixelConv2DTranspose, supports

    inp = keras.Input((h, w, cin), batch_size=1)
    plain = keras.layers.Conv2DTranspose(cout, 5, strides=2, padding="same")
    fast = SubpixelConv2DTranspose(cout, 5, strides=2, padding="same")
    plain_model, fast_model = keras.Model(inp, plain(inp)), keras.Model(inp, fast(inp))
    rng = np.random.default_rng(h * w)
    plain.set_weights([rng.standard_normal(v.shape).astype(np.float32) for v in plain.weights])
    fast.set_weights(plain.get_weights())
    x = rng.standard_normal((1, h, w, cin)).astype(np.float32)
    want, got = np.asarray(plain_model(x)), np.asarray(fast_model(x))
    assert got.shape == want.shape == (1, 2 * h, 2 * w, cout)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert supports(plain) and not supports(fast)
    assert not supports(keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same"))


def test_subpixel_model_keeps_names_weights_and_function() -> None:
    pytest.importorskip("tensorflow", reason=_REASON)
    from tools.export_tflite import randomize_weights
    from tools.subpixel import SubpixelConv2DTranspose, subpixel_model
    from tools.unet import build_unet

    params = ModelParams(
        instrument_list=("orca_vocals", "noise"), sample_rate=8000, frame_length=256,
        frame_step=64, T=64, F=64, n_channels=2,
        model={"type": "unet.unet", "params": {"conv_n_filters": [2, 4, 4, 8, 8, 8],
               "conv_activation": "ELU", "deconv_activation": "ELU"}},
    )  # fmt: skip
    model = build_unet(params)
    randomize_weights(model, 3)
    fast = subpixel_model(model)
    swapped = [layer.name for layer in fast.layers if isinstance(layer, SubpixelConv2DTranspose)]
    assert len(swapped) == 12  # six decoder layers per stem
    assert [w.path for w in fast.weights] == [w.path for w in model.weights]
    x = np.abs(np.random.default_rng(0).standard_normal((1, 64, 64, 2))).astype(np.float32)
    for want, got in zip(model(x, training=False), fast(x, training=False), strict=True):
        want, got = np.asarray(want), np.asarray(got)
        assert float(np.abs(want).max()) > 1e-3
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(
    not (DATA / "manifest.csv").is_file(), reason=f"{DATA} (real recordings) absent"
)
def test_real_blocks() -> None:
    from tools.calibration import real_blocks, recordings

    params = ModelParams(
        instrument_list=("a", "b"), sample_rate=8000, frame_length=256, frame_step=64, T=32,
        F=64, n_channels=2,
    )  # fmt: skip
    assert all(f.is_file() for f in recordings(DATA))
    blocks = real_blocks(params, 6, DATA, seed=1)
    assert len(blocks) == 6
    for block in blocks:
        assert block.shape == (32, 64, 2) and block.dtype == np.float32
        assert np.isfinite(block).all() and (block >= 0).all()
        assert not np.array_equal(block[..., 0], block[..., 1])  # channels read other recordings
    levels = [float(b.max()) for b in blocks]
    assert max(levels) / min(levels) > 2  # drawn from -40..-1 dBFS
    again = real_blocks(params, 6, DATA, seed=1)
    np.testing.assert_array_equal(again[0], blocks[0])


def test_calibration_data_errors(tmp_path: Path) -> None:
    from streamsep.errors import ConfigError
    from tools.calibration import recordings

    with pytest.raises(ConfigError, match="manifest.csv not found"):
        recordings(tmp_path)
    (tmp_path / "manifest.csv").write_text("path,kind,split\nx.flac,orca-call,val\n")
    with pytest.raises(ConfigError, match="no train recordings"):
        recordings(tmp_path)
