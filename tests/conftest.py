"""Shared fixtures: paths, small params, real audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamsep.engine.audio import read_audio, resample
from streamsep.engine.params import ModelParams

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
AUDIO = FIXTURES / "audio"
MODELS = FIXTURES / "models"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def small_params() -> ModelParams:
    """Small DSP config (8 kHz, 256/64, T=16, F=64, stereo) for fast engine tests."""
    return ModelParams(
        instrument_list=("orca_vocals", "noise"),
        sample_rate=8000,
        frame_length=256,
        frame_step=64,
        T=16,
        F=64,
        n_channels=2,
        mask_extension="average",
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def real_clip_60s() -> tuple[np.ndarray, int]:
    """60 s of real Orcasound audio at 44.1 kHz mono, from the redistributable fixtures."""
    pieces = []
    for name in (
        "orca-autoencoder_someCalls.flac",
        "acoustic-separation_20181202_25sec.flac",
        "orca-autoencoder_210825-1925_L-highlight.flac",
    ):
        audio, rate = read_audio(AUDIO / name)
        pieces.append(resample(audio[:, :1], rate, 44100))
    clip = np.concatenate(pieces)[: 60 * 44100]
    assert clip.shape[0] == 60 * 44100
    clip = clip - clip.mean()
    return clip / np.abs(clip).max() * 0.9, 44100


@pytest.fixture(scope="session")
def tiny_unet() -> tuple[Path, Path]:
    """(params, tflite) of the tiny random-weight U-Net made by tools/make_fixtures.py."""
    params, model = MODELS / "tiny_unet.json", MODELS / "tiny_unet.tflite"
    assert model.is_file(), "run: python -m tools.make_fixtures"
    return params, model
