"""tools.evaluate on a few real validation mixtures with the bundled model (needs shared data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamsep.engine.params import load_params
from streamsep.errors import ConfigError
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


def test_test_split_is_held_out_whole() -> None:
    """The test files are in no train or val pool, and the test pool holds calls and noises."""
    from tools.dataset.mixtures import load_pool, manifest_entries
    from tools.dataset.splits import TEST_FILES

    rows = {r["path"]: r for r in manifest_entries(DATA)}
    assert TEST_FILES <= set(rows), sorted(TEST_FILES - set(rows))
    assert all(rows[p]["split"] == "test" for p in TEST_FILES)
    test_recordings = {rows[p]["recording"] for p in TEST_FILES}
    others = {r["recording"] for r in rows.values() if r["split"] != "test"}
    assert not test_recordings & others
    for split in ("train", "val"):
        pool = load_pool(DATA, split, 8000)
        assert not pool.files() & TEST_FILES, split
    test = load_pool(DATA, "test", 8000)
    assert test.files() == TEST_FILES
    assert len(test.noises) == 5 and len(test.calls) == 7


def test_exclude_leaves_out_matching_files_and_refuses_a_pattern_that_matches_none() -> None:
    """``load_pool(..., exclude=)`` (``tools.train --exclude``) drops files by manifest path."""
    from tools.dataset.mixtures import load_pool

    whole = load_pool(DATA, "train", 8000).files()
    some = load_pool(DATA, "train", 8000, exclude=["noise/orcacnn_*"]).files()
    dropped = whole - some
    assert dropped and all(f.startswith("noise/orcacnn_") for f in dropped), sorted(dropped)
    assert not any(f.startswith("noise/orcacnn_") for f in some)
    with pytest.raises(ConfigError, match=r"exclude pattern 'nothing/\*' matches no file"):
        load_pool(DATA, "train", 8000, exclude=["nothing/*"])


def test_evaluate_reports_per_noise_recording() -> None:
    """Each noise recording gets its own row with the IRM ceiling and its best noisereduce."""
    pytest.importorskip("noisereduce", reason="tools extra (noisereduce) not installed")
    from tools.evaluate.report import report
    from tools.evaluate.run import evaluate

    params = load_params(data_path(f"{DEFAULT_MODEL_NAME}.json"))
    model = data_path(f"{DEFAULT_MODEL_NAME}.tflite")
    result = evaluate(
        params, [model], DATA, split="test", snrs=(0.0,), n_per_snr=5, seconds=3.0, labeled=False
    )
    per = result["per_noise"]
    assert len(per) == 5 and all(entry["n"] == 1 for entry in per.values())
    for entry in per.values():
        assert entry["best_noisereduce"] in ("noisereduce-stationary", "noisereduce-nonstationary")
        assert entry["irm-full"] > entry[f"{model.stem} offline"] - 20
    text = report(result)
    assert "per noise recording" in text
    assert all(Path(noise).name in text for noise in per)


def test_labeled_clips_report_auc_and_median_levels(tmp_path: Path) -> None:
    """``labeled_auc``: per score the AUC and the medians over call and no-call clips (dB)."""
    import soundfile as sf

    from tools.dataset.mixtures import NOISE_STEM, ORCA_STEM
    from tools.evaluate.run import labeled_auc

    params = load_params(data_path(f"{DEFAULT_MODEL_NAME}.json"))
    rate = params.sample_rate
    rng = np.random.default_rng(2)
    for label, rms in (("call", 0.1), ("nocall", 0.01)):
        (tmp_path / "labeled" / label).mkdir(parents=True)
        for i in range(3):
            x = rng.normal(0, rms * (1 + 0.1 * i), rate).astype(np.float32)
            sf.write(tmp_path / "labeled" / label / f"{i}.flac", x, rate)

    def half(x: np.ndarray) -> dict[str, np.ndarray]:
        return {ORCA_STEM: 0.5 * x, NOISE_STEM: 0.5 * x}

    result = labeled_auc(tmp_path, params, {"half": half})
    assert result["mix"]["auc"] == 1.0 and result["half orca"]["auc"] == 1.0
    ratio = result["half orca/mix"]
    assert ratio["median_call_db"] == pytest.approx(-6.02, abs=0.01)
    assert ratio["median_nocall_db"] == pytest.approx(-6.02, abs=0.01)
    assert result["mix"]["median_call_db"] - result["mix"]["median_nocall_db"] == pytest.approx(
        20.0, abs=0.5
    )


def test_two_models_with_one_file_name_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows are named by the model's file name: two files named alike would silently share
    rows, so the command refuses them with one line naming the option (no mixture is made)."""
    from tools.evaluate.__main__ import main

    params = data_path(f"{DEFAULT_MODEL_NAME}.json")
    model = data_path(f"{DEFAULT_MODEL_NAME}.tflite")
    copy = tmp_path / model.name
    copy.write_bytes(model.read_bytes())
    args = ["--params", str(params), "--model", str(model), str(copy), "--data", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--model" in err and "share one" in err and model.name in err
    assert not (tmp_path / "out").exists()


def test_a_bit_rate_that_is_not_positive_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools.evaluate.__main__ import main

    params = data_path(f"{DEFAULT_MODEL_NAME}.json")
    model = data_path(f"{DEFAULT_MODEL_NAME}.tflite")
    args = ["--params", str(params), "--model", str(model), "--data", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--aac-kbps", "0", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "--aac-kbps" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()
