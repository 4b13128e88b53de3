"""tools/evaluate_detection.py: the AUC, the DC removal, the acceptance verdicts (the full run
needs ../shared/data and minutes of CPU: its output is docs/detection.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tools.evaluate_detection import (
    Corpus,
    Item,
    acceptance,
    active_mask,
    clip_ranking,
    main,
    prepare,
    roc_auc,
)


def test_roc_auc() -> None:
    assert roc_auc([3, 4, 5], [0, 1, 2]) == 1.0
    assert roc_auc([0, 1], [2, 3]) == 0.0
    assert roc_auc([1, 3], [2, 2]) == 0.5  # one above both, one below both
    assert roc_auc([1.0], [1.0]) == 0.5  # ties count half


def test_prepare_removes_dc_and_resamples(tmp_path: Path) -> None:
    rate = 48000
    t = np.arange(rate) / rate
    x = 0.6 + 0.1 * np.sin(2 * np.pi * 1000 * t)
    sf.write(tmp_path / "a.flac", np.stack([x, x], axis=1), rate)
    y = prepare(tmp_path / "a.flac", 32000)
    assert y.shape == (32000,)
    assert abs(float(np.mean(y[1000:-1000]))) < 1e-3
    assert float(np.std(y[1000:-1000])) == pytest.approx(0.1 / np.sqrt(2), rel=0.02)


def test_active_mask() -> None:
    x = np.zeros(1000, np.float32)
    x[500:600] = 1.0
    mask = active_mask(x, 1000)  # 50-sample frames
    assert mask[500:600].all() and not mask[:500].any() and not mask[650:].any()


def test_acceptance_verdicts() -> None:
    sep = {"auc": 0.95, "false_per_hour": 1.0, "recall_mixed": {"+0": 0.9}}
    raw = {"auc": 0.7}
    assert all(ok for _, ok in acceptance(sep, raw))
    sep = {"auc": 0.5, "false_per_hour": 3.0, "recall_mixed": {"+0": 0.5}}
    assert [ok for _, ok in acceptance(sep, raw)] == [False, False, False, False]


def test_missing_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"evaluate_detection: error: no manifest.csv in {tmp_path}"
    )


def test_model_needs_its_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "manifest.csv").write_text("path,kind,split\n")
    assert main(["--data", str(tmp_path), "--model", "m.tflite"]) == 2
    assert capsys.readouterr().err.strip() == "evaluate_detection: error: --model needs --params"


def test_clip_ranking_counts_the_calls_each_no_call_outranks() -> None:
    empty = np.zeros(1, np.float32)
    names = {"call/a": 1, "call/b": 1, "nocall/x": 0, "nocall/y": 0}
    corpus = Corpus([Item(n, empty, empty, empty, label=y) for n, y in names.items()], [], [], 1)
    sep = {"clip_scores": {"call/a": 12.0, "call/b": 5.0, "nocall/x": 8.0, "nocall/y": 1.0}}
    raw = {"clip_scores": {"call/a": 2.0, "call/b": 3.0, "nocall/x": 4.0, "nocall/y": 5.0}}
    rows = [
        r
        for r in clip_ranking(corpus, sep, raw).splitlines()
        if r.startswith("| ") and r[2].isdigit()
    ]
    assert rows == [
        "| 1 | call/a | call | 12.0 | 2.0 |  |",
        "| 2 | nocall/x | no call | 8.0 | 4.0 | 1 |",
        "| 3 | call/b | call | 5.0 | 3.0 |  |",
        "| 4 | nocall/y | no call | 1.0 | 5.0 | 0 |",
    ]
