"""tools.bench_fullsize: the parts that run without spleeter (the bench itself is a tool run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamsep.engine.params import ModelParams, load_params
from tools import bench_fullsize

pytestmark = pytest.mark.tools


def test_params_are_the_seeds_network_with_a_short_schedule(tmp_path: Path) -> None:
    data = bench_fullsize.bench_params(tmp_path)
    params = ModelParams.from_dict(data)
    seed = load_params(bench_fullsize.SEED_PARAMS)
    for key in ("sample_rate", "frame_length", "frame_step", "T", "F", "n_channels", "model"):
        assert getattr(params, key) == getattr(seed, key), key
    assert data["train_max_steps"] == 12
    assert data["model_dir"] == str(tmp_path / "model")
    # spleeter's dataset builder needs chunks (training and its 12 s validation) of >= T frames
    for seconds in (data["chunk_duration"], 12.0):
        frames = (seconds * params.sample_rate - params.frame_length) / params.frame_step
        assert frames >= params.T


@pytest.mark.parametrize(("text", "seconds"), [("0:41.83", 41.83), ("1:02:03", 3723.0)])
def test_wall_seconds(text: str, seconds: float) -> None:
    assert bench_fullsize._wall_seconds(text) == pytest.approx(seconds)


def test_rel_error_db_uses_the_common_length() -> None:
    import numpy as np

    reference = np.ones((100, 2), np.float32)
    assert bench_fullsize.rel_error_db(reference[:90] * 1.1, reference) == pytest.approx(-20.0)


def test_markdown_lists_every_row() -> None:
    row = {"cpu_seconds_median": 10.0, "wall_seconds_median": 5.0, "peak_rss_mib_median": 100.0}
    result = {
        "date": "2026-11-30 08:00 UTC", "machine": "m", "command": "python -m tools.bench_fullsize",
        "total_seconds": 1.0, "checkpoint": "out/bench_cache/fullsize/model", "audio_seconds": 600,
        "runs": 3, "quarter_file_peak_rss_mib": 50.0,
        "rows": [
            {**row, "name": "spleeter separate (CLI)", "cpu_ratio_to_spleeter": 1.0},
            {**row, "name": "streamsep", "cpu_ratio_to_spleeter": 0.25,
             "rel_error_db": {"a": -101.0, "b": -99.5}},
        ],
        "streaming": {"float32": {"hop_frames": 40, "lookahead_frames": 39,
                                  "algorithmic_latency_seconds": 0.998, "rtf_median": 0.3,
                                  "rtf_runs": [0.3]}},
    }  # fmt: skip
    md = bench_fullsize.render_markdown(result)
    assert "| spleeter separate (CLI) | 10.0 | 1.00 |" in md
    assert "| streamsep | 10.0 | 0.25 | 5.0 | 100 MiB | -101.0 / -99.5 |" in md
    assert "`out/bench_cache/fullsize/model`" in md and "RTF 0.300" in md
