"""Command line: help, separate, clear one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamsep.cli.main import main
from streamsep.net.protocol import FLAG_GAP
from streamsep.net.subscribe import Chunk, Subscriber

from ._daemon import collect, damaged_file, toml_text, write_params
from ._net import free_tcp_endpoint
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


@pytest.mark.parametrize("damage", ["garbage_flac", "cut_wav"])
def test_stream_of_a_damaged_file_marks_the_rest_lost_and_exits_1(
    tmp_path: Path, damage: str
) -> None:
    """``streamsep stream``: no traceback, one line, the samples never read arrive at the
    subscriber as a flagged gap at the end, exit 1."""
    rate, n_samples = 16000, 20000
    path, readable = damaged_file(tmp_path, damage, n_samples, rate)
    params = write_params(tmp_path, rate)
    endpoint = free_tcp_endpoint()
    subscriber = Subscriber(endpoint, ["orca_vocals"], hwm=100000)
    try:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "streamsep", "stream", str(path), "--params", str(params),
                "--model", "passthrough", "--publish-endpoint", endpoint,
                "--wait-subscribers", "1", "--wait-seconds", "30",
            ],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        chunks: dict[str, list[Chunk]] = {}
        collect(subscriber, chunks, lambda: subscriber.ended, 60, "the end of stream")
        stdout, stderr = process.communicate(timeout=60)
    finally:
        subscriber.close()
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if "input ended after" in line]
    assert len(lines) == 1 and f"{n_samples - readable} samples lost" in lines[0], stderr
    stem = chunks["orca_vocals"]
    assert stem[-1].end_sample == n_samples
    assert sum(c.header.filled_samples for c in stem) == n_samples - readable
    assert stem[-1].header.flags & FLAG_GAP or stem[-2].header.flags & FLAG_GAP


def test_run_of_a_damaged_file_exits_1_with_the_loss_counted(tmp_path: Path) -> None:
    """``streamsep run`` with a file source that holds nothing readable after its header."""
    rate, n_samples = 16000, 20000
    path, readable = damaged_file(tmp_path, "garbage_flac", n_samples, rate)
    params = write_params(tmp_path, rate)
    config = tmp_path / "run.toml"
    config.write_text(
        toml_text(
            {
                "source": {"kind": "file", "path": path.name, "realtime": False},
                "model": {"params": params.name, "model": "passthrough"},
                "publish": {"endpoints": [free_tcp_endpoint()], "end_timeout_seconds": 1},
            }
        )
    )
    result = _run("run", "-c", str(config))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("input ended after 0 of 20000 samples") == 1, result.stderr
    assert f"samples_lost={n_samples - readable} " in result.stderr
