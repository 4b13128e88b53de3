"""tools.spleeter_parity and tools.spleeter_compare: the parts that run without spleeter.

The parity run itself (spleeter trains, both separate, numbers compared) is
``python -m tools.spleeter_parity``, which CI runs as its own step; set
``STREAMSEP_SPLEETER_PARITY=1`` to run it from pytest as well.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io.wavfile

from streamsep import Separator
from streamsep.engine.model import load_model
from streamsep.engine.params import ModelParams, load_params
from streamsep.engine.spectral import ratio_masks, stft
from tools import spleeter_parity
from tools.spleeter_compare import (
    passes,
    rel_error_db,
    render_markdown,
    sdr_db,
    stage_report,
    stream,
)

ROOT = Path(__file__).resolve().parents[1]


def test_rel_error_and_sdr() -> None:
    reference = np.ones((100, 2))
    assert rel_error_db(reference, reference) == float("-inf")
    assert rel_error_db(reference * 1.001, reference) == pytest.approx(-60.0, abs=1e-6)
    assert rel_error_db(reference * 1.1, reference) == pytest.approx(-20.0, abs=1e-6)
    assert sdr_db(reference * 1.1, reference) == pytest.approx(20.0, abs=1e-6)
    spectrum = np.exp(1j * np.linspace(0, 3, 50)).astype(np.complex64)
    assert rel_error_db(spectrum * 1j, spectrum) > 0  # phase counts, not just magnitude


@pytest.mark.parametrize(
    ("rel_db", "max_abs", "expected"),
    [(-100.0, 1e-5, True), (-90.0, 1e-4, True), (-89.0, 5e-5, False), (-100.0, 2e-4, False)],
)
def test_criterion(rel_db: float, max_abs: float, expected: bool) -> None:
    assert passes(rel_db, max_abs) is expected


@pytest.mark.parametrize("variant", spleeter_parity.VARIANTS, ids=lambda v: v.name)
def test_parity_params(variant: spleeter_parity.Variant, tmp_path: Path) -> None:
    data = spleeter_parity.parity_params(tmp_path, variant)
    params = ModelParams.from_dict(data)
    assert params.T % 64 == 0 and params.F % 64 == 0, "Spleeter's U-Net needs multiples of 64"
    # spleeter's DatasetBuilder: chunks (training and 12 s validation) must hold T frames
    for chunk_seconds in (data["chunk_duration"], 12.0):
        frames = (chunk_seconds * params.sample_rate - params.frame_length) / params.frame_step
        assert frames >= params.T
    seed = load_params(ROOT / "configs" / "2stems-finetune.json")
    assert params.instrument_list == seed.instrument_list
    for key in ("sample_rate", "frame_length", "frame_step", "n_channels", "separation_exponent"):
        assert getattr(params, key) == getattr(seed, key), key
    for key in ("conv_activation", "deconv_activation"):
        assert params.model_params[key] == seed.model_params[key]
    assert data["model_dir"] == str(tmp_path / variant.model_dir)


def test_dataset(tmp_path: Path) -> None:
    spleeter_parity.make_dataset(tmp_path / "data", tmp_path / "train.csv", n_songs=2, seconds=5)
    lines = (tmp_path / "train.csv").read_text().splitlines()
    assert lines[0] == "mix_path,orca_vocals_path,noise_path,duration"
    assert len(lines) == 3
    mix_name, orca_name, noise_name, duration = lines[1].split(",")
    audio = {}
    for name in (mix_name, orca_name, noise_name):
        rate, data = scipy.io.wavfile.read(tmp_path / "data" / name)
        assert rate == spleeter_parity.SAMPLE_RATE and data.dtype == np.float32
        assert data.shape == (5 * rate, 2)
        audio[name] = data
    assert float(duration) == pytest.approx(5.0)
    np.testing.assert_allclose(audio[mix_name], audio[orca_name] + audio[noise_name], atol=1e-6)
    assert np.abs(audio[mix_name]).max() < 1.0


def test_clip() -> None:
    clip = spleeter_parity.make_clip(2.0)
    assert clip.shape == (2 * spleeter_parity.SAMPLE_RATE, 2) and clip.dtype == np.float32
    assert float(np.abs(clip).max()) == pytest.approx(0.9, abs=1e-6)
    assert rel_error_db(clip[:, 0], clip[:, 1]) > -10, "the channels must differ"


def _own_stage(clip: np.ndarray, params: ModelParams, tflite: Path) -> dict[str, np.ndarray]:
    """What spleeter's predict graph would dump, computed with streamsep's own pieces."""
    from ai_edge_litert.interpreter import Interpreter

    spectra = stft(clip, params.frame_length, params.frame_step)
    n_frames = spectra.shape[0]
    n_blocks = -(-n_frames // params.T)
    magnitudes = np.zeros((n_blocks * params.T, params.F, params.n_channels), np.float32)
    magnitudes[:n_frames] = np.abs(spectra[:, : params.F])
    blocks = magnitudes.reshape(n_blocks, params.T, params.F, params.n_channels)
    runner = Interpreter(model_path=str(tflite)).get_signature_runner("serving_default")
    outputs = [runner(mix_spectrogram=b[None]) for b in blocks]
    stage = {"stage/stft": spectra, "stage/spectrogram": blocks}
    stacked = np.stack(
        [np.stack([o[f"{n}_spectrogram"][0] for o in outputs]) for n in params.instrument_list]
    )
    masks = np.stack(
        [ratio_masks(stacked[:, b], params.separation_exponent) for b in range(n_blocks)]
    )
    masks = masks.transpose(1, 0, 2, 3, 4).reshape(params.n_stems, -1, params.F, params.n_channels)
    for i, name in enumerate(params.instrument_list):
        stage[f"stage/output/{name}"] = stacked[i]
        extended = np.zeros((n_frames, params.n_bins, params.n_channels), np.float32)
        extended[:, : params.F] = masks[i, :n_frames]
        stage[f"stage/mask/{name}"] = extended
    return stage


def test_stage_report_aligns_stages(tiny_unet: tuple[Path, Path]) -> None:
    params = load_params(tiny_unet[0])
    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal((3000, 2))).astype(np.float32)
    stage = _own_stage(clip, params, tiny_unet[1])
    report = stage_report(stage, clip, params, tiny_unet[1])
    for key in ("stft_rel_db", "model_input_rel_db", "model_output_rel_db", "mask_rel_db"):
        assert report[key] < -100, (key, report[key])
    stage["stage/mask/noise"] = np.roll(stage["stage/mask/noise"], 1, axis=0)  # one frame off
    assert stage_report(stage, clip, params, tiny_unet[1])["mask_rel_db"] > -40


def test_stream_is_latency_aligned(tiny_unet: tuple[Path, Path]) -> None:
    params = load_params(tiny_unet[0])
    rng = np.random.default_rng(1)
    clip = (0.1 * rng.standard_normal((5000, 2))).astype(np.float32)
    streamed, info = stream(load_model(tiny_unet[1], params), clip)
    offline = Separator(params, tiny_unet[1]).separate(clip, params.sample_rate)
    assert streamed.shape == (2, 5000, 2)
    assert info["latency_samples"] > 0 and info["chunk_samples"] == 1024
    for i, name in enumerate(params.instrument_list):
        np.testing.assert_allclose(streamed[i], offline[name], atol=1e-5)


def _results(passed: bool) -> dict[str, Any]:
    stem = {
        "offline_rel_db": -103.0,
        "offline_max_abs": 1.7e-6,
        "cli_rel_db": -103.0,
        "streaming_sdr_db": 13.9,
        "passed": passed,
    }
    stages = {
        "stft_rel_db": -105.2,
        "model_input_rel_db": -119.0,
        "model_output_rel_db": -118.0,
        "mask_rel_db": -116.9,
        "keras_inference_bn_rel_db": -119.1,
        "keras_batch_statistics_bn_rel_db": -1.1,
    }
    streaming = {
        "settings": "default StreamSettings()",
        "hop_frames": 32,
        "lookahead_frames": 64,
        "latency_samples": 69631,
        "chunk_samples": 1024,
    }
    variant = {
        "description": "d",
        "passed": passed,
        "stems": {"orca_vocals": stem},
        "stages": stages,
        "streaming": streaming,
    }
    return {
        "date": "2026-11-24",
        "command": "c",
        "machine": "m",
        "spleeter_version": "2.4.2",
        "spleeter_tensorflow": "2.12.1",
        "streamsep_version": "0.1.0",
        "tensorflow": "2.21",
        "clip": "clip",
        "params_summary": "p",
        "passed": passed,
        "variants": {"trained": variant},
        "timings_s": {"total": 59.0},
    }


def test_markdown() -> None:
    text = render_markdown(_results(True))
    assert "**PASS**" in text
    assert "| trained | orca_vocals | -103.0 | 1.70e-06 | -103.0 | 13.9 |" in text
    assert "| trained | -105.2 | -119.0 | -118.0 | -116.9 | -119.1 | -1.1 |" in text
    assert "**FAIL**" in render_markdown(_results(False))


@pytest.mark.parametrize("passed", [True, False])
def test_main_exit_status(passed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spleeter_parity, "run", lambda work, venv, base: _results(passed))
    json_path, md_path = tmp_path / "r.json", tmp_path / "r.md"
    argv = ["--work", str(tmp_path / "w"), "--json", str(json_path), "--markdown", str(md_path)]
    assert spleeter_parity.main(argv) == (0 if passed else 1)
    assert json.loads(json_path.read_text())["passed"] is passed
    assert md_path.read_text().startswith("# streamsep vs spleeter parity")


def test_main_step_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    def fail(*args: Any) -> dict[str, Any]:
        raise spleeter_parity.StepError("spleeter train failed")

    monkeypatch.setattr(spleeter_parity, "run", fail)
    assert spleeter_parity.main(["--work", str(tmp_path)]) == 2
    assert "error: spleeter train failed" in capsys.readouterr().err


def _fake_python(path: Path, exit_status: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\nexit {exit_status}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_spleeter_venv_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_python(tmp_path / "venv" / "bin" / "python", 0)  # "import spleeter" works
    calls: list[list[str]] = []
    real_run = spleeter_parity.subprocess.run

    def record(command: list[str], **kwargs: Any) -> Any:
        calls.append(command)
        return real_run(command, **kwargs)

    monkeypatch.setattr(spleeter_parity.subprocess, "run", record)
    python = spleeter_parity.ensure_spleeter_venv(tmp_path / "venv", "python3")
    assert python == tmp_path / "venv" / "bin" / "python"
    assert calls == [[str(python), "-c", "import spleeter"]]


def test_spleeter_venv_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_python(tmp_path / "venv" / "bin" / "python", 1)  # "import spleeter" fails
    calls: list[list[str]] = []
    real_run = spleeter_parity.subprocess.run

    def record(command: list[str], **kwargs: Any) -> Any:
        calls.append(command)
        if command[-1] == "import spleeter":
            return real_run(command, **kwargs)
        return real_run(["true"], **kwargs)

    monkeypatch.setattr(spleeter_parity.subprocess, "run", record)
    python = str(spleeter_parity.ensure_spleeter_venv(tmp_path / "venv", "python3.11"))
    assert calls[1:] == [
        ["python3.11", "-m", "venv", str(tmp_path / "venv")],
        [python, "-m", "pip", "install", "-q", "--upgrade", "pip"],
        [python, "-m", "pip", "install", "-q", "spleeter==2.4.2"],
    ]


@pytest.mark.tools
@pytest.mark.skipif(
    os.environ.get("STREAMSEP_SPLEETER_PARITY") != "1",
    reason="set STREAMSEP_SPLEETER_PARITY=1 (CI runs python -m tools.spleeter_parity instead)",
)
def test_full_parity_run(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="tools extra (TensorFlow) not installed")
    argv = ["--work", str(tmp_path / "work"), "--json", str(tmp_path / "r.json")]
    assert spleeter_parity.main(argv) == 0
