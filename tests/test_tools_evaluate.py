"""tools.evaluate on a few real validation mixtures with the bundled model (needs shared data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamsep.engine.params import load_params
from streamsep.resources import DEFAULT_MODEL_NAME, data_path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not DATA.is_dir(), reason="shared data not available at ../shared/data"),
]


def test_evaluate_rows_curve_trim_and_report() -> None:
    pytest.importorskip("noisereduce", reason="tools extra (noisereduce) not installed")
    from tools.evaluate.report import report
    from tools.evaluate.run import evaluate

    params = load_params(data_path(f"{DEFAULT_MODEL_NAME}.json"))
    model = data_path(f"{DEFAULT_MODEL_NAME}.tflite")
    kwargs = dict(snrs=(0.0,), n_per_snr=2, seconds=4.0, labeled=False)
    result = evaluate(params, [model], DATA, lookaheads=(32,), **kwargs)
    summary = result["summary"]
    name = model.stem
    for method in (f"{name} offline", f"{name} streaming", f"{name} streaming L=32"):
        assert method in summary
    assert f"{name} offline spleeter-segments" in summary
    # Streaming at the default config is the offline separation, sample for sample.
    assert result["models"][name]["max_abs_offline_vs_streaming"] == 0.0
    curve = {c["lookahead_frames"]: c for c in result["latency_curve"]}
    assert set(curve) == {32, params.stream["lookahead_frames"]}
    assert curve[32]["latency_s"] < curve[64]["latency_s"]
    orca = summary["irm-full"]["orca_vocals"]["all"]["si_sdri"]
    assert orca > summary[f"{name} streaming"]["orca_vocals"]["all"]["si_sdri"]
    text = report(result)
    assert "full-band ideal ratio mask" in text and "Latency curve" in text
    # Trimming scores only the middle: different numbers, the same mixtures.
    trimmed = evaluate(params, [model], DATA, trim_seconds=1.0, **kwargs)
    assert trimmed["mixtures"] == result["mixtures"]
    assert trimmed["summary"]["mix"]["orca_vocals"]["all"]["si_sdr"] != pytest.approx(
        summary["mix"]["orca_vocals"]["all"]["si_sdr"]
    )
    # Synthetic noise (rain, shrimp, hum, flow) can be added to every mixture's noise.
    noisy = evaluate(params, [model], DATA, p_synthetic=1.0, **kwargs)
    assert all(any("synthetic" in n for n in m["noises"]) for m in noisy["mixtures"]), noisy[
        "mixtures"
    ]
    assert "synthetic noise added with probability 1" in report(noisy)
