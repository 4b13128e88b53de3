"""tools.evaluate.recordings: a candidate's orca stem on recordings without references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamsep.resources import DEFAULT_MODEL_NAME, data_path


def test_recordings_compares_a_candidate_band_by_band(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tools.evaluate.recordings``: the bundled model and a candidate (here the same files)
    give the same per-second band levels; a tone at 2 kHz shows in 0.5-15 kHz, not below."""
    import json

    import soundfile as sf

    from tools.evaluate.recordings import main

    rate = 16000
    t = np.arange(3 * rate) / rate
    x = 0.01 * np.random.default_rng(1).standard_normal(t.size)
    x[rate : 2 * rate] += 0.3 * np.sin(2 * np.pi * 2000 * t[rate : 2 * rate])
    wav = tmp_path / "rec.wav"
    sf.write(wav, x.astype(np.float32), rate)
    params, model = (
        data_path(f"{DEFAULT_MODEL_NAME}.json"),
        data_path(f"{DEFAULT_MODEL_NAME}.tflite"),
    )
    out = tmp_path / "r.json"
    argv = [str(wav), "--candidate", "same", str(params), str(model), "--out", str(out)]
    assert main(argv) == 0
    (result,) = json.loads(out.read_text())
    rows = result["orca_stem"]
    assert list(rows) == ["mix", "bundled", "same"] and rows["same"] == rows["bundled"]
    mix = rows["mix"]
    assert len(mix["500_15000"]["per_second"]) == 3
    tone_s, quiet_s = mix["500_15000"]["per_second"][1], mix["500_15000"]["per_second"][0]
    assert tone_s > quiet_s + 20 and mix["below_500"]["per_second"][1] < tone_s - 20
    assert "rec.wav (3.0 s)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.flac")])
    assert "recording not found" in capsys.readouterr().err
    assert main([str(wav), "--candidate", "x", str(params), str(tmp_path / "no.tflite")]) == 2
    assert "no.tflite" in capsys.readouterr().err
