"""tools.compare_stems: the verdict of the arm64 check (.ci/arm64)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from tools.compare_stems import compare_dirs, main


def _write(folder: Path, stems: dict[str, np.ndarray], rate: int = 8000) -> Path:
    (folder / "clip").mkdir(parents=True)
    for name, audio in stems.items():
        sf.write(folder / "clip" / f"{name}.wav", audio, rate, subtype="FLOAT")
    return folder


def test_equal_within_tolerance_and_not_beyond(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ref = {"orca_vocals": rng.standard_normal(800) * 0.1, "noise": rng.standard_normal(800) * 0.1}
    near = {k: v + 2e-6 for k, v in ref.items()}
    far = {"orca_vocals": ref["orca_vocals"], "noise": ref["noise"] * 1.01}
    _write(tmp_path / "ref", ref)
    _write(tmp_path / "near", near)
    _write(tmp_path / "far", far)
    rows = compare_dirs(tmp_path / "ref", tmp_path / "near", 1e-5)
    assert [r["file"] for r in rows] == ["clip/noise.wav", "clip/orca_vocals.wav"]
    assert all(r["ok"] for r in rows) and all(r["max_abs"] < 3e-6 for r in rows)
    assert main([str(tmp_path / "ref"), str(tmp_path / "near"), "--max-abs", "1e-5"]) == 0
    # 1 % off is -40 dB: fails an absolute limit, and a relative one stricter than -40 dB.
    assert main([str(tmp_path / "ref"), str(tmp_path / "far"), "--max-abs", "1e-5"]) == 1
    args = [str(tmp_path / "ref"), str(tmp_path / "far"), "--max-abs", "1"]
    assert main([*args, "--max-rel-db", "-39"]) == 0
    assert main([*args, "--max-rel-db", "-41"]) == 1


def test_missing_or_reshaped_files_fail(tmp_path: Path) -> None:
    ref = {"orca_vocals": np.zeros(100) + 0.1, "noise": np.zeros(100) + 0.2}
    _write(tmp_path / "ref", ref)
    _write(tmp_path / "short", {"orca_vocals": ref["orca_vocals"][:99]})
    rows = {r["file"]: r for r in compare_dirs(tmp_path / "ref", tmp_path / "short", 1.0)}
    assert "missing" in rows["clip/noise.wav"]["problem"]
    assert "(100, 1)" in rows["clip/orca_vocals.wav"]["problem"]
    assert main([str(tmp_path / "ref"), str(tmp_path / "short"), "--max-abs", "1"]) == 1
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), str(tmp_path / "ref")]) == 1
