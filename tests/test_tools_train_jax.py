"""tools.train on Keras's JAX backend: a few steps on the CPU, then export here with TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tools

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import keras
    import numpy as np

    from tests.test_tools_training import RATE, _call, _noise, _params
    from tools.dataset.blocks import BlockGenerator
    from tools.dataset.mixtures import Pool
    from tools.train.loop import TrainSettings, train

    assert keras.backend.backend() == "jax", keras.backend.backend()
    rng = np.random.default_rng(5)
    pool = Pool(RATE, [_call(rng, i) for i in range(4)], [_noise(rng, i) for i in range(3)])
    params = _params()
    generator = BlockGenerator(pool, params, seed=0, batch_size=2, psa=True)
    val_set = [
        BlockGenerator(pool, params, seed=9, batch_size=2, augment=False, psa=True).batch(0)
    ]
    settings = TrainSettings(
        out_dir=Path(sys.argv[1]), steps=3, log_every=1, eval_every=3, checkpoint_every=3,
        progress=False, loss=sys.argv[2],
    )
    print(json.dumps(train(params, generator, val_set, settings)))
    """
)


@pytest.mark.timeout(900)
def test_jax_backend_trains_and_tensorflow_exports(tmp_path: Path) -> None:
    """Three steps with the bundled model's loss (spectral SDR), validation with both losses."""
    pytest.importorskip("jax", reason="JAX not installed (pip install 'jax[cpu]')")
    pytest.importorskip("tensorflow", reason="the tools extra (TensorFlow) exports the result")
    out = tmp_path / "run"
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(out), "sdr"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["step"] == 3 and "tflite" not in summary  # JAX does not export
    assert "needs the TensorFlow backend" in done.stderr
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3]
    assert [r["step"] for r in records if r["split"] == "val"] == [0, 3]
    assert all(np.isfinite(r["loss"]) for r in records)
    assert all(np.isfinite(r["sdr_orca_vocals"]) for r in records if r["split"] == "val")
    state = json.loads((out / "ckpt" / "state.json").read_text())
    assert state["step"] == 3

    # The JAX-trained checkpoint exports with TensorFlow and separates.
    from streamsep.engine.model import load_model
    from tests.test_tools_training import _params
    from tools.train.loop import export_checkpoint
    from tools.unet import build_unet

    params = _params()
    fresh = build_unet(params)
    trained = build_unet(params)
    trained.load_weights(out / "ckpt" / "last.weights.h5")
    changed = [
        not np.allclose(a, b)
        for a, b in zip(fresh.get_weights(), trained.get_weights(), strict=True)
    ]
    assert any(changed)  # the optimizer's steps reached the saved weights (sync)
    tflite, params_path = export_checkpoint(params, out)
    model = load_model(tflite, params)
    block = np.abs(np.random.default_rng(0).standard_normal((params.T, params.F, 1))).astype(
        np.float32
    )
    masks = model.predict(block)
    assert masks.shape == (2, params.T, params.F, 1) and np.isfinite(masks).all()
    assert np.allclose(masks.sum(axis=0), 1.0, atol=1e-4)  # ratio masks of two stems
    assert params_path.is_file()
