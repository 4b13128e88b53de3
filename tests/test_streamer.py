"""BlockSeparator: exact delay with passthrough, streaming == offline, latency accounting."""

from __future__ import annotations

import numpy as np
import pytest

from streamsep.engine.model import PassthroughModel
from streamsep.engine.params import ModelParams, load_params
from streamsep.engine.settings import StreamSettings
from streamsep.engine.streamer import BlockSeparator, latency_samples
from streamsep.resources import data_path

SETTINGS = [
    StreamSettings(),  # hop T/4, lookahead T/2
    StreamSettings(hop_frames=16, lookahead_frames=32),
    StreamSettings(hop_frames=256, lookahead_frames=511, window="boxcar"),
    StreamSettings.spleeter(),
]


def _stream(engine: BlockSeparator, x: np.ndarray, chunk: int) -> np.ndarray:
    out = []
    for start in range(0, x.shape[0], chunk):
        piece = x[start : start + chunk]
        got = engine.feed(piece)
        assert got.shape[1] == piece.shape[0]  # as many samples out as in
        out.append(got)
    out.append(engine.flush())
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize("chunk", [37, 512, 4096])
@pytest.mark.parametrize(
    "stream", SETTINGS, ids=["default", "hop16-look32", "hop256-look511", "spleeter"]
)
def test_passthrough_reproduces_real_clip_delayed_by_latency(
    real_clip_60s: tuple[np.ndarray, int], stream: StreamSettings, chunk: int
) -> None:
    clip, rate = real_clip_60s
    params = load_params(data_path("passthrough.json"))
    assert params.sample_rate == rate
    x = np.repeat(clip, 2, axis=1)  # mono source into a stereo model
    engine = BlockSeparator(PassthroughModel(params), stream)
    y = _stream(engine, x, chunk)
    d = engine.latency_samples
    assert d == latency_samples(params, engine.lookahead_frames)
    assert y.shape == (2, x.shape[0] + d, 2)
    assert np.abs(y[0, :d]).max() == 0.0
    assert np.abs(y[0, d:] - x).max() <= 1e-5
    assert np.abs(y[1]).max() <= 1e-5  # the other stem is silent


def test_latency_is_the_stated_formula() -> None:
    params = load_params(data_path("passthrough.json"))
    engine = BlockSeparator(
        PassthroughModel(params), StreamSettings(hop_frames=8, lookahead_frames=100)
    )
    assert engine.latency_samples == 4096 - 1 + 100 * 1024
    assert engine.latency_seconds == pytest.approx((4095 + 102400) / 44100)


class _RandomMaskModel:
    """Deterministic, input-dependent masks (a stand-in for a network) for engine logic tests."""

    def __init__(self, params: ModelParams) -> None:
        self.params = params

    def predict(self, spectrogram: np.ndarray) -> np.ndarray:
        m = np.tanh(spectrogram) ** 2
        masks = np.stack([m, 1.0 - m])[: self.params.n_stems]
        return masks.astype(np.float32)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "stream",
    [StreamSettings(), StreamSettings(hop_frames=1, lookahead_frames=0), StreamSettings.spleeter()],
    ids=["default", "hop1-look0", "spleeter"],
)
def test_random_chunks_equal_one_big_feed(
    small_params: ModelParams, stream: StreamSettings, rng: np.random.Generator
) -> None:
    x = (rng.standard_normal((30000, 2)) * 0.2).astype(np.float32)
    whole = _stream(BlockSeparator(_RandomMaskModel(small_params), stream), x, x.shape[0])
    engine = BlockSeparator(_RandomMaskModel(small_params), stream)
    out, i = [], 0
    while i < x.shape[0]:
        n = int(rng.integers(1, 3000))
        out.append(engine.feed(x[i : i + n]))
        i += n
    out.append(engine.flush())
    np.testing.assert_allclose(np.concatenate(out, axis=1), whole, atol=1e-6)
    # Stems of a ratio-mask model sum back to the (delayed) mix.
    d = engine.latency_samples
    np.testing.assert_allclose(whole[:, d:].sum(axis=0), x, atol=1e-5)


def test_flush_resets_for_a_new_stream(small_params: ModelParams, rng: np.random.Generator) -> None:
    x = (rng.standard_normal((5000, 2)) * 0.2).astype(np.float32)
    engine = BlockSeparator(_RandomMaskModel(small_params))
    first = _stream(engine, x, 700)
    second = _stream(engine, x, 700)
    np.testing.assert_array_equal(first, second)


def test_wrong_channel_count_is_a_clear_error(small_params: ModelParams) -> None:
    engine = BlockSeparator(PassthroughModel(small_params))
    with pytest.raises(ValueError, match=r"expected shape \(n_samples, 2\)"):
        engine.feed(np.zeros((10, 3), np.float32))


@pytest.mark.parametrize("name", ["tiny_unet", "tiny_unet_mono"])
@pytest.mark.parametrize(
    "stream",
    [
        StreamSettings(),
        StreamSettings(hop_frames=4, lookahead_frames=10),
        StreamSettings.spleeter(),
    ],
    ids=["default", "hop4-look10", "spleeter"],
)
def test_exported_unet_streaming_equals_separator(
    name: str, stream: StreamSettings, rng: np.random.Generator
) -> None:
    from streamsep.engine.model import load_model
    from streamsep.engine.offline import Separator

    from .conftest import MODELS

    params = load_params(MODELS / f"{name}.json")
    separator = Separator(params, MODELS / f"{name}.tflite", stream=stream)
    x = (rng.standard_normal((5 * params.sample_rate + 31, params.n_channels)) * 0.3).astype(
        np.float32
    )
    expected = separator.separate(x, params.sample_rate)
    engine = BlockSeparator(load_model(MODELS / f"{name}.tflite", params), stream)
    out, i = [], 0
    while i < x.shape[0]:
        n = int(rng.integers(1, 1500))
        out.append(engine.feed(x[i : i + n]))
        i += n
    out.append(engine.flush())
    y = np.concatenate(out, axis=1)[:, engine.latency_samples :]
    for k, stem in enumerate(params.instrument_list):
        assert np.abs(y[k] - expected[stem]).max() <= 1e-5
    # A real (random-weight) network: the stems differ and are not the mix.
    assert np.abs(y[0] - y[1]).max() > 1e-3
