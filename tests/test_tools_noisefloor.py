"""tools.dataset.noisefloor (issue 19's background-context lever): the running noise floor is
causal, chunk-independent, settles at its quantile, ignores digital silence; mixtures and
training blocks carry it; a floor-input U-Net starts from plain weights computing the same."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from streamsep.engine.noisefloor import FloorSettings, NoiseFloorTracker
from streamsep.engine.params import ModelParams
from streamsep.errors import ConfigError
from tools.dataset.blocks import BlockGenerator, block_spectra
from tools.dataset.mixtures import NOISE_STEM, ORCA_STEM, Clip, Pool, make_mixture
from tools.dataset.noisefloor import stream_floor

RATE = 8000


def _rayleigh(n_frames: int, n_bins: int, scale: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).rayleigh(scale, (n_frames, n_bins)).astype(np.float32)


def test_pieces_give_exactly_what_the_whole_gives() -> None:
    frames = _rayleigh(700, 16, 1.0)
    frames[300:320] = 0.0  # a gap filled with silence
    whole = NoiseFloorTracker(16).process(frames)
    tracker = NoiseFloorTracker(16)
    cuts = [0, 1, 50, 51, 333, 699, 700]
    pieces = [tracker.process(frames[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    tracker.reset()
    np.testing.assert_array_equal(tracker.process(frames), whole)


def test_settles_at_its_quantile_and_rises_slowly_under_a_call() -> None:
    settings = FloorSettings(quantile=0.2, step_db=0.1)
    frames = _rayleigh(6000, 64, 0.01, seed=1)
    floor = NoiseFloorTracker(64, settings).process(frames)
    below = np.mean(frames[3000:] < floor[3000:])  # settled after 24 s of 8 ms frames
    assert below == pytest.approx(0.2, abs=0.03)
    expected = np.quantile(frames[3000:], 0.2)
    assert np.median(floor[-1]) == pytest.approx(expected, rel=0.1)
    # A 1 s (125 frame) call 30 dB up in bin 5 lifts its floor by about 2.5 dB at most.
    called = frames.copy()
    called[5000:5125, 5] *= 31.6
    lifted = NoiseFloorTracker(64, settings).process(called)
    rise_db = 20 * np.log10(lifted[5124, 5] / lifted[4999, 5])
    assert 2.4 < rise_db <= 125 * 0.02 + 1e-3
    np.testing.assert_array_equal(lifted[:5000], floor[:5000])


def test_silence_leaves_it_unchanged_and_zero_before_any_sound() -> None:
    frames = _rayleigh(400, 8, 1.0, seed=2)
    frames[:10] = 0.0
    frames[200:260] = 0.0
    floor = NoiseFloorTracker(8).process(frames)
    assert not floor[:10].any() and floor[10].all()
    np.testing.assert_array_equal(floor[200:260], np.repeat(floor[199:200], 60, axis=0))
    warm = NoiseFloorTracker(8, FloorSettings(warmup_frames=100)).process(frames[10:110])
    log_mean = np.exp(np.mean(np.log(frames[10:110]), axis=0))  # the warm-up's geometric mean
    np.testing.assert_allclose(warm[-1], log_mean, rtol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"quantile": 1.0}, "quantile"),
        ({"step_db": 0.0}, "step_db"),
        ({"warmup_frames": 0}, "warmup_frames"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        FloorSettings(**kwargs)
    with pytest.raises(ValueError, match=r"\(n_frames, 8\)"):
        NoiseFloorTracker(8).process(np.zeros((3, 9), np.float32))


def test_context_key_is_checked() -> None:
    assert _params("none").context == "none" and _params("floor").input_channels == 2
    with pytest.raises(ConfigError, match="model.params.context"):
        _params("median")


def _pool() -> Pool:
    rng = np.random.default_rng(4)
    noise = (rng.standard_normal(20 * RATE) * 0.01).astype(np.float32)
    t = np.arange(RATE) / RATE
    call = (np.sin(2 * np.pi * 1500 * t) * 0.1).astype(np.float32)
    frames = -(-RATE // 256)
    return Pool(
        RATE,
        [Clip("calls/c.flac", "orca-call", "calls/c.flac", call, np.ones(frames, bool), 256)],
        [
            Clip(
                "noise/n.flac", "noise-ship", "noise/n.flac", noise, np.ones(20 * frames, bool), 256
            )
        ],
    )


def test_mixture_context_is_noise_before_the_calls() -> None:
    pool = _pool()
    plain = make_mixture(pool, np.random.default_rng(1), 2 * RATE, 0.0)
    again = make_mixture(pool, np.random.default_rng(1), 2 * RATE, 0.0, context_samples=0)
    np.testing.assert_array_equal(plain.mix, again.mix)  # 0 changes nothing
    m = make_mixture(pool, np.random.default_rng(1), 2 * RATE, 0.0, context_samples=3 * RATE)
    assert m.mix.shape == (5 * RATE,) and not m.active[: 3 * RATE].any() and m.active.any()
    assert not m.sources[ORCA_STEM][: 3 * RATE].any()
    assert np.sqrt(np.mean(m.sources[NOISE_STEM][: 3 * RATE] ** 2)) > 0
    assert m.snr_db == pytest.approx(0.0)


def _params(context: str) -> ModelParams:
    model_params = {"conv_n_filters": [2, 4, 4, 8, 8, 8], "input_norm": "log", "context": context}
    return ModelParams(
        instrument_list=(ORCA_STEM, NOISE_STEM),
        sample_rate=RATE,
        frame_length=256,
        frame_step=64,
        T=32,
        F=64,
        n_channels=1,
        model={"type": "unet.unet", "params": model_params},
    )


def test_floor_blocks_carry_the_running_floor_after_their_context() -> None:
    params = _params("floor")
    generator = BlockGenerator(_pool(), params, seed=3, batch_size=2, psa=True)
    x, y = generator.batch(0)
    assert x.shape == (2, 32, 64, 2) and y[ORCA_STEM].shape == (2, 32, 64, 1)
    rng = np.random.default_rng(9)
    mixture = make_mixture(_pool(), rng, generator.n_samples, 0.0, context_samples=64 * 300)
    x1, mix = generator._input(mixture.mix, 64 * 300)
    np.testing.assert_array_equal(mix, block_spectra(mixture.mix[64 * 300 :], params))
    np.testing.assert_array_equal(x1[..., :1], np.abs(mix))
    _, floor = stream_floor(mixture.mix[:, None], params)
    np.testing.assert_array_equal(x1[..., 1:], floor[4 + 300 : 4 + 300 + 32])
    plain = BlockGenerator(_pool(), _params("none"), seed=3, batch_size=2).batch(0)[0]
    assert plain.shape == (2, 32, 64, 1)


@pytest.mark.tools
def test_widened_floor_unet_starts_where_the_plain_one_was(tmp_path: Any) -> None:
    pytest.importorskip("tensorflow", reason="tools extra (TensorFlow) not installed")
    from tools.export_tflite import randomize_weights
    from tools.unet import build_unet, load_compatible

    plain = build_unet(_params("none"), training=True)
    randomize_weights(plain, seed=5)
    weights = tmp_path / "plain.weights.h5"
    plain.save_weights(weights)
    floor = build_unet(_params("floor"), training=True)
    with pytest.raises(ValueError):
        floor.load_weights(weights)
    assert load_compatible(floor, str(weights), _params("floor")) == "without context"
    rng = np.random.default_rng(6)
    x = np.abs(rng.standard_normal((2, 32, 64, 2))).astype(np.float32)
    expected = plain.predict(x[..., :1], verbose=0)
    got = floor.predict(x, verbose=0)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)
    first = next(layer for layer in floor.layers if layer.weights).get_weights()[0]
    assert first.shape[2] == 2 and not first[:, :, 1:].any()  # the floor starts unheard
    # Training-time validation scores the floor model against its mix channels only.
    from tools.train.steps import make_steps

    ys = [np.abs(rng.standard_normal((2, 32, 64, 1))).astype(np.float32) for _ in range(2)]
    sdr = [
        [float(v) for v in make_steps(m, None, lambda *a: [], 2.0, 1).eval_sdr(xm, ys)]
        for m, xm in ((plain, x[..., :1]), (floor, x))
    ]
    np.testing.assert_allclose(sdr[1], sdr[0], rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="input_norm"):
        build_unet(_params("floor").__class__.from_dict(
            {**_params("floor").to_dict(), "model": {"type": "unet.unet", "params": {
                "conv_n_filters": [2, 4, 4, 8, 8, 8], "context": "floor"}}}
        ))  # fmt: skip


def test_engine_blocks_carry_the_floor_training_computes() -> None:
    """The scheduler's floor channels (fed in pieces) are the tools' whole-stream floor."""
    from streamsep.engine.blocks import BlockScheduler
    from streamsep.engine.spectral import StreamingStft

    params = _params("floor")
    rng = np.random.default_rng(8)
    audio = (rng.standard_normal((3 * RATE, 1)) * 0.01).astype(np.float32)
    spectra, floor = stream_floor(audio, params)
    stft = StreamingStft(params.frame_length, params.frame_step, 1)
    scheduler = BlockScheduler(params.T, params.F, 8, params.n_bins, 1, floor=True)
    jobs = []
    for a in range(0, audio.shape[0], 777):
        jobs += scheduler.feed(stft.feed(audio[a : a + 777]))
    assert len(jobs) > 5
    for job in jobs:
        first = job.end_frame - params.T + 1
        expected = np.zeros((params.T, params.F, 2), np.float32)
        frames = slice(max(first, 0), job.end_frame + 1)
        expected[frames.start - first :, :, :1] = np.abs(spectra[frames, : params.F])
        expected[frames.start - first :, :, 1:] = floor[frames]
        np.testing.assert_array_equal(job.spectrogram, expected)


@pytest.mark.tools
def test_exported_floor_model_streams_as_it_separates_offline(tmp_path: Any) -> None:
    pytest.importorskip("tensorflow", reason="tools extra (TensorFlow) not installed")
    from streamsep.engine.model import TFLiteModel
    from streamsep.engine.offline import Separator
    from streamsep.engine.settings import StreamSettings
    from streamsep.engine.streamer import BlockSeparator
    from streamsep.errors import ModelError
    from tools.export_tflite import export, randomize_weights
    from tools.unet import build_unet

    params = _params("floor")
    keras_model = build_unet(params)
    randomize_weights(keras_model, seed=2)
    path, _ = export(keras_model, params, tmp_path, name="floor")
    model = TFLiteModel(path, params)
    block = np.abs(np.random.default_rng(3).standard_normal((32, 64, 2))).astype(np.float32)
    masks = model.predict(block)
    assert masks.shape == (2, 32, 64, 1)
    outputs = [np.asarray(o)[0] for o in keras_model(block[None], training=False)]
    powered = np.stack(outputs) ** 2
    total = powered.sum(axis=0)
    solid = total > 1e-4  # where both stems are near 0 the ratio is ill-conditioned
    assert solid.mean() > 0.9
    expected = powered / (total + 1e-10)
    np.testing.assert_allclose(masks[:, solid], expected[:, solid], atol=2e-4)
    with pytest.raises(ModelError, match="floor context"):
        TFLiteModel(path, _params("none"))  # a floor model needs params that say so

    audio = (np.random.default_rng(4).standard_normal((2 * RATE, 1)) * 0.05).astype(np.float32)
    stream = StreamSettings(hop_frames=8, lookahead_frames=8)
    offline = Separator(params, model, stream=stream).separate(audio, RATE)
    engine = BlockSeparator(model, stream)
    pieces = [engine.feed(audio[a : a + 1000]) for a in range(0, audio.shape[0], 1000)]
    pieces.append(engine.flush())
    streamed = np.concatenate(pieces, axis=1)[:, engine.latency_samples :][:, : audio.shape[0]]
    for i, stem in enumerate(params.instrument_list):
        np.testing.assert_array_equal(streamed[i], offline[stem])
    assert np.abs(offline[ORCA_STEM]).max() > 0


def test_spleeter_checkpoints_refuse_a_floor_context(tmp_path: Any) -> None:
    from streamsep.engine.checkpoint import cached_tflite_for_checkpoint
    from streamsep.errors import ModelError

    with pytest.raises(ModelError, match=r"remove model.params.context \('floor'\)"):
        cached_tflite_for_checkpoint(tmp_path, _params("floor"))


@pytest.mark.tools
def test_training_a_floor_model_on_a_built_dataset_is_refused(tmp_path: Any) -> None:
    pytest.importorskip("keras", reason="tools extra (Keras) not installed")
    import json

    from tools.train.__main__ import main

    path = tmp_path / "params.json"
    path.write_text(json.dumps(_params("floor").to_dict()))
    argv = ["--params", str(path), "--out", str(tmp_path / "run"), "--steps", "1"]
    with pytest.raises(SystemExit, match="carry no noise context"):
        main([*argv, "--train-csv", str(tmp_path / "train.csv")])
