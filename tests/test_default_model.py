"""The bundled orca model: it is the default everywhere and gives its documented output.

The documented output (``docs/model-card.md``, "Reference output") is the stems' RMS level of
the bundled recording, whole file and per second, written by ``python -m tools.model_summary
--write`` into ``tests/fixtures/models/default_model_expected.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tomllib

from streamsep.engine.offline import Separator
from streamsep.engine.params import load_params
from streamsep.resources import DEFAULT_MODEL_NAME, data_path, default_model_paths
from tools.model_summary import EXPECTED, FIXTURE, summarize

ROOT = Path(__file__).resolve().parents[1]
LEVEL_TOLERANCE_DB = 0.05
"""Whole-file RMS: LiteRT kernels differ across CPUs by float rounding only."""
SECOND_TOLERANCE_DB = 0.2
"""Per-second RMS (quiet seconds of the orca stem move more in dB)."""


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads(EXPECTED.read_text())


def test_the_bundled_orca_model_is_the_default() -> None:
    params_path, model = default_model_paths()
    assert Path(model) == data_path(f"{DEFAULT_MODEL_NAME}.tflite")
    assert Path(model).is_file() and data_path(f"{DEFAULT_MODEL_NAME}_int8.tflite").is_file()
    params = load_params(params_path)
    assert params.instrument_list == ("orca_vocals", "noise")
    # Keeps orca calls and whistles: 0.5-15 kHz lies inside the model's band.
    assert params.F / (params.frame_length // 2) * params.sample_rate / 2 >= 15_000
    assert Separator().params == params
    total = sum(p.stat().st_size for p in Path(model).parent.glob(f"{DEFAULT_MODEL_NAME}*"))
    assert total <= 25 * 2**20


def test_configs_use_the_bundled_model() -> None:
    for path in sorted((ROOT / "configs").glob("*.toml")):
        model = tomllib.loads(path.read_text()).get("model", {})
        assert "model" not in model and "params" not in model, path.name


def _check(result: dict, expected: dict) -> None:
    assert set(result["rms_db"]) == {"mix", "orca_vocals", "noise"}
    for stem, level in expected["rms_db"].items():
        assert result["rms_db"][stem] == pytest.approx(level, abs=LEVEL_TOLERANCE_DB), stem
    for stem, levels in expected["rms_db_per_second"].items():
        got = np.array(result["rms_db_per_second"][stem])
        assert got.shape == (len(levels),)
        np.testing.assert_allclose(got, levels, atol=SECOND_TOLERANCE_DB, err_msg=stem)


def test_float_model_gives_the_documented_output(expected: dict) -> None:
    result = summarize(Separator(), FIXTURE)
    _check(result, expected)
    # The model separates: both stems lie below the mix, and they are not an even split (more
    # than 3 dB apart; the low-frequency thumps of this recording dominate its level, and the
    # model gives most of them to the noise stem).
    levels = result["rms_db"]
    assert levels["orca_vocals"] < levels["mix"] and levels["noise"] < levels["mix"]
    assert abs(levels["orca_vocals"] - levels["noise"]) > 3


def test_int8_model_gives_the_documented_output(expected: dict) -> None:
    params, _ = default_model_paths()
    result = summarize(Separator(params, data_path(f"{DEFAULT_MODEL_NAME}_int8.tflite")), FIXTURE)
    _check(result, expected["int8"])


def test_quick_start_command_separates_with_the_bundled_model(
    tmp_path: Path, expected: dict
) -> None:
    """README's main command: ``streamsep separate <bundled recording> -o separated``."""
    from streamsep.cli.main import main
    from streamsep.engine.audio import read_audio

    assert main(["separate", str(FIXTURE), "-o", str(tmp_path)]) == 0
    folder = tmp_path / FIXTURE.stem
    for stem in ("orca_vocals", "noise"):
        audio, rate = read_audio(folder / f"{stem}.wav")
        assert rate == expected["sample_rate"]
        level = 10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-20)
        # The WAV holds the same stems (its 16/24-bit rounding only).
        assert level == pytest.approx(expected["rms_db"][stem], abs=LEVEL_TOLERANCE_DB)
