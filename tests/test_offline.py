"""Offline Separator: seed params, shapes, rates, channels, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamsep import ConfigError, ModelError, Separator, StreamSettings, load_params
from streamsep.engine.params import ModelParams

from .conftest import ROOT

SEED_PARAMS = ROOT / "configs" / "2stems-finetune.json"


def test_seed_params_load_unchanged() -> None:
    params = load_params(SEED_PARAMS)
    assert params.instrument_list == ("orca_vocals", "noise")
    assert (params.sample_rate, params.frame_length, params.frame_step) == (44100, 4096, 1024)
    assert (params.T, params.F, params.n_channels) == (512, 1024, 2)
    assert params.model_params["conv_activation"] == "ELU"
    assert params.highpass_hz == 0.0
    assert params.to_dict()["train_csv"] == "orca_train.csv"  # unknown keys round-trip


def test_seed_call_shape_with_passthrough(rng: np.random.Generator) -> None:
    separator = Separator(SEED_PARAMS, "passthrough")
    x = (rng.standard_normal((44100 * 3, 2)) * 0.1).astype(np.float32)
    out = separator.return_source_directory(x, 44100)
    assert list(out) == ["orca_vocals", "noise"]
    assert out["orca_vocals"].shape == x.shape
    # 'zeros' extension: the passthrough stem is the mix below F = 1024 bins (~11 kHz).
    assert np.abs(out["noise"]).max() < 1e-5


@pytest.mark.parametrize("rate", [22050, 48000])
def test_other_rates_are_resampled_and_keep_length(
    small_params: ModelParams, rate: int, rng: np.random.Generator
) -> None:
    separator = Separator(small_params, "passthrough")
    t = np.arange(rate * 2) / rate
    x = (0.3 * np.sin(2 * np.pi * 440 * t))[:, None].astype(np.float32)  # mono
    out = separator.separate(x, rate)
    assert out["orca_vocals"].shape == (x.shape[0], 2)  # mono duplicated for a stereo model
    inner = slice(rate // 4, -rate // 4)
    np.testing.assert_allclose(out["orca_vocals"][inner, 0], x[inner, 0], atol=2e-3)


def test_progress_is_reported(small_params: ModelParams) -> None:
    calls: list[tuple[int, int]] = []
    Separator(small_params, "passthrough").separate(
        np.zeros((400000, 2), np.float32), 8000, progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1] == (400000, 400000) and len(calls) >= 3


def test_highpass_from_params_removes_dc(small_params: ModelParams) -> None:
    params = ModelParams(**{**small_params.__dict__, "highpass_hz": 20.0})
    x = np.full((8000 * 4, 2), 0.5, np.float32)
    out = Separator(params, "passthrough").separate(x, 8000)["orca_vocals"]
    assert np.abs(out[8000:]).max() < 1e-3


def test_errors_name_the_problem(tmp_path: Path, small_params: ModelParams) -> None:
    with pytest.raises(ConfigError, match="params file not found"):
        Separator(tmp_path / "nope.json", "passthrough")
    bad = tmp_path / "bad.json"
    bad.write_text('{"instrument_list": ["a"], "T": -3}')
    with pytest.raises(ConfigError, match="T must be a positive integer"):
        Separator(bad, "passthrough")
    with pytest.raises(ModelError, match="model file not found"):
        Separator(small_params, tmp_path / "missing.tflite")
    with pytest.raises(ModelError, match="Spleeter checkpoint"):
        Separator(small_params, tmp_path)
    with pytest.raises(ConfigError, match="stream.hop_frames must be <= lookahead_frames"):
        Separator(
            small_params, "passthrough", stream=StreamSettings(hop_frames=8, lookahead_frames=2)
        )
    with pytest.raises(ConfigError, match="sample_rate"):
        Separator(small_params, "passthrough").separate(np.zeros((10, 2)), 0)


def test_params_stream_section_sets_the_default_streaming(small_params: ModelParams) -> None:
    T = small_params.T
    whole = load_params(
        {**small_params.to_dict(), "stream": {"hop_frames": T, "lookahead_frames": T - 1}}
    )
    assert load_params(whole.to_dict()) == whole  # round-trips
    sep = Separator(whole, "passthrough")
    assert (sep._engine.hop_frames, sep._engine.lookahead_frames) == (T, T - 1)
    assert sep.latency_samples == whole.frame_length - 1 + (T - 1) * whole.frame_step
    # Explicit settings win; a lookahead too short for the model's hop falls back to T-derived.
    assert StreamSettings(hop_frames=2).resolve(T, whole.stream) == (2, T - 1)
    assert StreamSettings(lookahead_frames=3).resolve(T, whole.stream) == (min(T // 4, 4), 3)
    # Without a stream section: derived from T.
    assert StreamSettings().resolve(T, small_params.stream) == (min(T // 4, T // 2 + 1), T // 2)
    for bad, message in (
        ({"hop": 4}, "params: stream must be an object with keys"),
        ({"hop_frames": -1}, "params: stream.hop_frames must be an integer >= 0"),
        ([4], "params: stream must be an object"),
        ({"hop_frames": T + 1}, "params: stream.hop_frames must be in"),
        ({"lookahead_frames": T}, "params: stream.lookahead_frames must be <= T - 1"),
        ({"hop_frames": 5, "lookahead_frames": 2}, "stream.hop_frames must be <= lookahead"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_params({**small_params.to_dict(), "stream": bad})
