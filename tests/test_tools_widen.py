"""tools.widen: a widened U-Net computes what the narrow one did, and can learn with its new
channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="tools extra (TensorFlow) not installed")

from streamsep.engine.params import ModelParams, load_params  # noqa: E402
from streamsep.errors import ConfigError  # noqa: E402
from tools.widen import main, widen_weights, widened_params  # noqa: E402

pytestmark = pytest.mark.tools


def _params(**model_params: object) -> ModelParams:
    return ModelParams(
        instrument_list=("orca_vocals", "noise"),
        sample_rate=8000,
        frame_length=256,
        frame_step=64,
        T=64,
        F=64,
        n_channels=1,
        model={
            "type": "unet.unet",
            "params": {
                "conv_n_filters": [2, 4, 4, 8, 8, 8],
                "conv_activation": "ELU",
                "deconv_activation": "ELU",
                "input_norm": "log",
                **model_params,
            },
        },
    )


@pytest.mark.parametrize(
    "model_params", [{}, {"context": "floor", "stem_masks": "complement"}], ids=["two", "one"]
)
def test_the_wide_network_computes_what_the_narrow_one_did(model_params: dict) -> None:
    from tools.export_tflite import randomize_weights
    from tools.unet import build_unet

    narrow_params = _params(**model_params)
    narrow = build_unet(narrow_params, training=True)
    randomize_weights(narrow, seed=3)  # batch norms too: their statistics must carry over
    wide_params = widened_params(narrow_params, [3, 6, 8, 12, 16, 16])
    wide = build_unet(wide_params, training=True)
    widen_weights(narrow, wide, narrow_params.instrument_list)
    assert wide.count_params() > 2 * narrow.count_params()
    rng = np.random.default_rng(4)
    x = np.abs(rng.standard_normal((2, 64, 64, narrow_params.input_channels))).astype(np.float32)
    for a, b in zip(narrow.predict(x, verbose=0), wide.predict(x, verbose=0), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    # The new channels compute something (their own kernels are not zero), so the zero
    # weights that read them get gradients and the new width can learn.
    first = wide.get_layer("conv2d").get_weights()[0]
    assert np.abs(first[..., 2:]).max() > 0
    assert not wide.get_layer("conv2d_1").get_weights()[0][:, :, 2:, :].any()


def test_the_command_writes_a_run_folder_and_refuses_narrower_filters(tmp_path: Path) -> None:
    from tools.export_tflite import randomize_weights
    from tools.unet import build_unet

    params = _params()
    params_path = tmp_path / "p.json"
    params.save(params_path)
    narrow = build_unet(params, training=True)
    randomize_weights(narrow, seed=5)
    weights = tmp_path / "w.weights.h5"
    narrow.save_weights(weights)
    out = tmp_path / "wide"
    args = ["--params", str(params_path), "--weights", str(weights), "--out", str(out)]
    assert main([*args, "--filters", "4,8,8,16,16,16"]) == 0
    wide_params = load_params(out / "params.json")
    assert wide_params.model_params["conv_n_filters"] == [4, 8, 8, 16, 16, 16]
    wide = build_unet(wide_params, training=True)
    wide.load_weights(out / "ckpt" / "last.weights.h5")
    with pytest.raises(ConfigError, match="each at least"):
        widened_params(params, [1, 4, 4, 8, 8, 8])
    with pytest.raises(SystemExit):
        main([*args, "--filters", "4,8,x"])
