"""Command line: help, separate, clear one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from streamsep.cli.main import main

from .conftest import AUDIO


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamsep", *args], capture_output=True, text=True, timeout=120
    )


def test_help() -> None:
    for args in (["--help"], ["separate", "--help"], ["info", "--help"]):
        result = _run(*args)
        assert result.returncode == 0, result.stderr
        assert "usage: streamsep" in result.stdout


def test_separate_writes_stems(tmp_path: Path) -> None:
    src = AUDIO / "orca-autoencoder_210825-1925_L-highlight.flac"
    code = main(["separate", str(src), "-o", str(tmp_path), "-m", "passthrough", "-f", "flac"])
    assert code == 0
    folder = tmp_path / src.stem
    info = sf.info(str(folder / "orca_vocals.flac"))
    original = sf.info(str(src))
    assert info.samplerate == original.samplerate and info.frames == original.frames
    assert (folder / "noise.flac").is_file()


def test_unreadable_input_is_one_line_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    result = _run("separate", str(junk), "-o", str(tmp_path / "out"), "-m", "passthrough")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot read audio file" in lines[0] and "junk.wav" in lines[0]
    missing = _run(
        "separate", str(tmp_path / "nope.flac"), "-o", str(tmp_path), "-m", "passthrough"
    )
    assert missing.returncode == 1 and "input not found" in missing.stderr


def test_info_states_latency(capsys: object) -> None:
    from streamsep.engine.params import load_params
    from streamsep.resources import default_model_paths

    params = load_params(default_model_paths()[0])  # the bundled model's, with -m passthrough
    assert main(["info", "-m", "passthrough", "--stream-lookahead-frames", "40"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    expected = params.frame_length - 1 + 40 * params.frame_step
    assert f"latency: {expected} samples" in out


def test_separate_flac_roundtrip_values(tmp_path: Path) -> None:
    x = (np.random.default_rng(0).standard_normal((44100, 2)) * 0.1).astype(np.float32)
    src = tmp_path / "noise.wav"
    sf.write(src, x, 44100, subtype="FLOAT")
    assert main(["separate", str(src), "-o", str(tmp_path / "o"), "-m", "passthrough"]) == 0
    y, _ = sf.read(tmp_path / "o" / "noise" / "noise.wav", dtype="float32")
    assert np.abs(y).max() < 1e-5  # passthrough: the second stem is silent
