"""DC-blocking high-pass: removes DC, keeps 100 Hz, chunk-size invariant."""

from __future__ import annotations

import numpy as np
import pytest

from streamsep.engine.highpass import HighPass


def test_removes_dc_and_keeps_100hz_tone() -> None:
    rate = 44100
    t = np.arange(10 * rate) / rate
    tone = 0.1 * np.sin(2 * np.pi * 100 * t)
    x = (tone + 0.8)[:, None].astype(np.float32)  # DC 8x the tone amplitude
    y = HighPass(20.0, rate, 1).process(x)[:, 0]
    settled = slice(2 * rate, None)
    assert abs(np.mean(y[settled])) < 1e-4
    gain_db = 20 * np.log10(
        np.sqrt(np.mean(y[settled] ** 2)) / np.sqrt(np.mean(tone[settled] ** 2))
    )
    assert abs(gain_db) < 0.1


@pytest.mark.parametrize("max_chunk", [1, 37, 4096])
def test_streaming_equals_offline(max_chunk: int, rng: np.random.Generator) -> None:
    x = (rng.standard_normal((20000, 2)) + 3.0).astype(np.float32)
    whole = HighPass(20.0, 8000, 2).process(x)
    hp = HighPass(20.0, 8000, 2)
    out, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, max_chunk + 1))
        out.append(hp.process(x[i : i + n]))
        i += n
    np.testing.assert_array_equal(np.concatenate(out), whole)


def test_rejects_bad_cutoff() -> None:
    with pytest.raises(ValueError, match="cutoff_hz"):
        HighPass(5000.0, 8000, 1)
