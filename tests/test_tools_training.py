"""tools.dataset, tools.train (losses, loop): SNR mixing, generator, loss, splits, training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streamsep.engine.params import ModelParams
from streamsep.errors import ConfigError
from tools.dataset.blocks import BlockGenerator, block_magnitudes, block_spectra, psa_target
from tools.dataset.mixtures import (
    NOISE_STEM,
    ORCA_STEM,
    SAME_RECORDING,
    Clip,
    Pool,
    active_frames,
    make_mixture,
    manifest_entries,
    noise_gain_for_snr,
    prepare_audio,
    snr_db,
)
from tools.train.losses import l1_per_stem_numpy

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
_TF_REASON = "tools extra (TensorFlow) not installed"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason="shared data not available at ../shared/data"
)

RATE = 8000
FRAME = 256


def _params() -> ModelParams:
    """Tiny model and DSP: 8 kHz, 256/64, T=16, F=64, mono, tiny U-Net."""
    return ModelParams(
        instrument_list=(ORCA_STEM, NOISE_STEM),
        sample_rate=RATE,
        frame_length=FRAME,
        frame_step=64,
        T=16,
        F=64,
        n_channels=1,
        highpass_hz=20.0,
        model={
            "type": "unet.unet",
            "params": {
                "conv_n_filters": [2, 4, 4, 8, 8, 8],
                "conv_activation": "ELU",
                "deconv_activation": "ELU",
            },
        },
    )


def _call(rng: np.random.Generator, index: int) -> Clip:
    """2 s: quiet background (-40 dB), then a 0.5 s harmonic call at a random start."""
    n = 2 * RATE
    x = 0.001 * rng.standard_normal(n)
    start = int(rng.integers(0, n - RATE // 2))
    t = np.arange(RATE // 2) / RATE
    f0 = 800 + 200 * index
    x[start : start + RATE // 2] += 0.1 * (
        np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(4 * np.pi * f0 * t)
    )
    audio = x.astype(np.float32)
    return Clip(
        f"calls/c{index}.flac",
        "orca-call",
        f"calls/c{index}.flac",
        audio,
        active_frames(audio, FRAME),
        FRAME,
    )


def _noise(rng: np.random.Generator, index: int) -> Clip:
    audio = (0.05 * rng.standard_normal(3 * RATE)).astype(np.float32)
    n_frames = -(-audio.shape[0] // FRAME)
    return Clip(
        f"noise/n{index}.flac",
        "noise-ship",
        f"noise/n{index}.flac",
        audio,
        np.ones(n_frames, bool),
        FRAME,
    )


@pytest.fixture
def pool() -> Pool:
    rng = np.random.default_rng(5)
    return Pool(RATE, [_call(rng, i) for i in range(4)], [_noise(rng, i) for i in range(3)])


def test_active_frames_definition() -> None:
    frame = np.ones(100)
    x = np.concatenate([1.0 * frame, 0.5 * frame, 0.1 * frame, 0.05 * frame])  # 0, -6, -20, -26 dB
    assert active_frames(x, 100).tolist() == [True, True, True, False]
    assert active_frames(x, 100, threshold_db=10).tolist() == [True, True, False, False]
    assert active_frames(x[:350], 100).shape == (4,)  # partial last frame kept


def test_snr_and_noise_gain_match_the_definition(rng: np.random.Generator) -> None:
    call, noise = rng.standard_normal(1000), rng.standard_normal(1000)
    active = np.zeros(1000, bool)
    active[200:500] = True
    expected = 10 * np.log10(np.sum(call[200:500] ** 2) / np.sum(noise[200:500] ** 2))
    assert snr_db(call, noise, active) == pytest.approx(expected, abs=1e-12)
    gain = noise_gain_for_snr(call, noise, active, -7.5)
    assert snr_db(call, gain * noise, active) == pytest.approx(-7.5, abs=1e-9)


@pytest.mark.parametrize("target_db", [-10.0, 0.0, 6.5])
@pytest.mark.parametrize("augment", [False, True])
def test_mixture_snr_matches_its_definition(pool: Pool, target_db: float, augment: bool) -> None:
    rng = np.random.default_rng(11)
    mixture = make_mixture(
        pool,
        rng,
        3 * RATE,
        target_db,
        n_calls=2,
        crop_seconds=(0.5, 1.5),
        augment=augment,
        level_db=-30,
    )
    orca, noise = mixture.sources[ORCA_STEM], mixture.sources[NOISE_STEM]
    np.testing.assert_allclose(mixture.mix, orca + noise, atol=1e-7)
    # Recompute the SNR from scratch: active samples are where the call's frames are within
    # 20 dB of its file's loudest frame; here the synthetic call is the only loud part.
    assert mixture.active.any() and not mixture.active.all()
    assert np.abs(orca[~mixture.active]).max() < np.abs(orca[mixture.active]).max() / 3
    measured = 10 * np.log10(
        np.sum(orca[mixture.active].astype(np.float64) ** 2)
        / np.sum(noise[mixture.active].astype(np.float64) ** 2)
    )
    assert measured == pytest.approx(target_db, abs=1e-3)  # float32 rounding of the sources
    rms_db = 10 * np.log10(np.mean(mixture.mix.astype(np.float64) ** 2))
    assert rms_db == pytest.approx(-30, abs=1e-3) or np.abs(mixture.mix).max() == pytest.approx(
        0.98
    )
    assert len({c["path"] for c in mixture.meta["calls"]}) == 2  # different call files


def test_mixture_is_deterministic_and_noise_only_works(pool: Pool) -> None:
    a = make_mixture(pool, np.random.default_rng(3), RATE, 0.0, augment=True)
    b = make_mixture(pool, np.random.default_rng(3), RATE, 0.0, augment=True)
    np.testing.assert_array_equal(a.mix, b.mix)
    empty = make_mixture(pool, np.random.default_rng(3), RATE, 0.0, with_call=False)
    assert empty.snr_db is None and not empty.sources[ORCA_STEM].any()
    chosen = make_mixture(pool, np.random.default_rng(3), RATE, 0.0, noise_index=2)
    assert chosen.meta["noises"][0]["path"] == "noise/n2.flac"


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.shape[0])))
    return float(np.argmax(spectrum) * RATE / x.shape[0])


def test_noise_augment_changes_speed_and_direction() -> None:
    """Augmented noise: a 1 kHz tone with a rising envelope comes back at 0.8-1.25 kHz, some
    excerpts reversed (falling envelope), the same for the same seed; the default is untouched."""
    n = 4 * RATE
    t = np.arange(n) / RATE
    audio = (np.sin(2 * np.pi * 1000 * t) * (t % 1.0)).astype(np.float32)  # 1 s ramps
    clip = Clip("noise/tone.flac", "noise-ship", "noise/tone.flac", audio, np.ones(16, bool), FRAME)
    tone_pool = Pool(RATE, [_call(np.random.default_rng(1), 0)], [clip])
    n_out = RATE // 2
    peaks, reversed_count = [], 0
    for seed in range(40):
        mix = make_mixture(
            tone_pool, np.random.default_rng(seed), n_out, 0.0, with_call=False, noise_augment=True
        )
        noise = mix.sources[NOISE_STEM]
        assert noise.shape == (n_out,) and np.isfinite(noise).all()
        peaks.append(_peak_hz(noise))
        envelope = np.abs(noise).reshape(-1, 100).max(axis=1)
        # Inside one 1 s ramp the envelope rises; reversed it falls (one reset may intervene).
        steps = np.diff(envelope)
        reversed_count += int(np.sum(steps < 0) > np.sum(steps > 0))
    assert 780 <= min(peaks) and max(peaks) <= 1270  # 1 kHz times 0.8 .. 1.25, FFT bins 16 Hz
    assert max(peaks) - min(peaks) > 150  # the factor varies
    assert 8 <= reversed_count <= 32  # about half of 40
    again = make_mixture(
        tone_pool, np.random.default_rng(3), n_out, 0.0, with_call=False, noise_augment=True
    )
    first = make_mixture(
        tone_pool, np.random.default_rng(3), n_out, 0.0, with_call=False, noise_augment=True
    )
    np.testing.assert_array_equal(first.mix, again.mix)
    plain = make_mixture(tone_pool, np.random.default_rng(3), n_out, 0.0, with_call=False)
    assert _peak_hz(plain.sources[NOISE_STEM]) == pytest.approx(1000, abs=20)


def test_call_resample_range_reaches_the_calls(pool: Pool) -> None:
    factors = [
        make_mixture(
            pool, np.random.default_rng(seed), RATE, 0.0, augment=True, call_resample=(0.9, 0.92)
        ).meta["calls"][0]["resample"]
        for seed in range(10)
    ]
    assert all(0.9 <= f <= 0.92 for f in factors)


def test_prepare_audio_removes_dc_and_resamples() -> None:
    rate = 16000
    t = np.arange(2 * rate) / rate
    tone = 0.01 * np.sin(2 * np.pi * 1000 * t)
    stereo = np.stack([tone + 0.5, tone + 0.5], axis=1)  # 99.9 % DC by energy
    out = prepare_audio(stereo, rate, RATE)
    assert out.shape == (2 * RATE,) and out.dtype == np.float32
    middle = out[RATE // 2 : -RATE // 2]
    assert abs(float(middle.mean())) < 1e-4
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.01 / np.sqrt(2), rel=0.01)


def test_block_generator_shapes_and_determinism(pool: Pool) -> None:
    params = _params()
    generator = BlockGenerator(pool, params, seed=1, batch_size=3, p_no_call=0.0)
    x, y = generator.batch(4)
    assert x.shape == (3, 16, 64, 1) and x.dtype == np.float32
    assert set(y) == {ORCA_STEM, NOISE_STEM}
    assert all(v.shape == x.shape and (v >= 0).all() for v in y.values())
    assert y[ORCA_STEM].any()
    x2, y2 = generator.batch(4)  # same index, same data, whatever came before
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y[ORCA_STEM], y2[ORCA_STEM])
    assert not np.array_equal(x, generator.batch(5)[0])
    silent = BlockGenerator(pool, params, seed=1, batch_size=2, p_no_call=1.0).batch(0)
    assert not silent[1][ORCA_STEM].any()


def test_block_generator_codes_the_mix_as_aac_when_asked(pool: Pool) -> None:
    """``p_aac`` = 1: the batch's first block has the uncoded one's orca target and a different
    (coded) mix (later blocks differ more: the batch's examples share one generator, and the
    codec's draws move it on)."""
    params = _params()
    plain = BlockGenerator(pool, params, seed=1, batch_size=2, p_no_call=0.0).batch(0)
    coded = BlockGenerator(pool, params, seed=1, batch_size=2, p_no_call=0.0, p_aac=1.0).batch(0)
    np.testing.assert_array_equal(plain[1][ORCA_STEM][0], coded[1][ORCA_STEM][0])
    assert not np.array_equal(plain[0][0], coded[0][0]) and np.isfinite(coded[0]).all()


def test_block_magnitudes_sees_no_padding() -> None:
    params = _params()
    n = (params.T + params.frame_length // params.frame_step - 1) * params.frame_step
    x = np.ones(n, np.float32)  # constant: every frame inside has the same spectrum
    mags = block_magnitudes(x, params)
    assert mags.shape == (16, 64, 1)
    np.testing.assert_allclose(mags, np.broadcast_to(mags[:1], mags.shape), rtol=1e-5)


def test_l1_loss_numpy_matches_hand_computation() -> None:
    out = [np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.0, 0.0], [0.0, 1.0]])]
    target = [np.array([[0.0, 2.0], [5.0, 4.0]]), np.array([[1.0, 1.0], [1.0, 1.0]])]
    # stem 0: (1 + 0 + 2 + 0) / 4 = 0.75; stem 1: (1 + 1 + 1 + 0) / 4 = 0.75
    assert l1_per_stem_numpy(out, target) == [0.75, 0.75]


@pytest.mark.tools
def test_l1_loss_keras_matches_hand_computation() -> None:
    pytest.importorskip("tensorflow", reason=_TF_REASON)
    from keras import ops

    from tools.train.losses import l1_per_stem

    rng = np.random.default_rng(0)
    outputs = [rng.random((2, 4, 8, 1)).astype(np.float32) for _ in range(2)]
    targets = [rng.random((2, 4, 8, 1)).astype(np.float32) for _ in range(2)]
    losses = l1_per_stem(
        [ops.convert_to_tensor(o) for o in outputs], [ops.convert_to_tensor(t) for t in targets]
    )
    for loss, o, t in zip(losses, outputs, targets, strict=True):
        hand = sum(abs(float(a) - float(b)) for a, b in zip(o.ravel(), t.ravel(), strict=True))
        assert float(loss) == pytest.approx(hand / o.size, rel=1e-6)


@pytest.mark.shared_data
@needs_data
def test_train_and_validation_share_no_source_file() -> None:
    rows = manifest_entries(DATA)
    assert len({r["path"] for r in rows}) == len(rows)  # duplicated manifest rows dropped
    train = {r["path"] for r in rows if r["split"] == "train"}
    val = {r["path"] for r in rows if r["split"] == "val"}
    assert train and val and not train & val
    recordings = {
        split: {r["recording"] for r in rows if r["split"] == split} for split in ("train", "val")
    }
    assert not recordings["train"] & recordings["val"]
    # Known excerpts of one recording stay together (G clan song 01/02 are in NAXYS segment07p).
    for path, recording in SAME_RECORDING.items():
        sides = {r["split"] for r in rows if r["recording"] == recording}
        assert len(sides) == 1, (path, sides)
    assert not any(r["kind"].startswith("orcasound") for r in rows)  # "orca-" means calls only


@pytest.mark.tools
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_train_two_steps_resume_and_export(pool: Pool, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason=_TF_REASON)
    from streamsep.engine.model import load_model
    from tools.train.loop import TrainSettings, train

    params = _params()
    generator = BlockGenerator(pool, params, seed=0, batch_size=2)
    val_set = [BlockGenerator(pool, params, seed=9, batch_size=2, augment=False).batch(0)]
    out = tmp_path / "run"
    common = dict(out_dir=out, log_every=1, eval_every=2, checkpoint_every=2, progress=False)
    first = train(params, generator, val_set, TrainSettings(steps=2, export=False, **common))
    assert first["step"] == 2 and not (out / "export").exists()
    second = train(params, generator, val_set, TrainSettings(steps=3, resume=True, **common))
    assert second["step"] == 3
    state = json.loads((out / "ckpt" / "state.json").read_text())
    assert state["step"] == 3
    # A resumed run trains at the learning rate asked for now, not the checkpoint's.
    third = train(
        params, generator, val_set,
        TrainSettings(steps=4, resume=True, learning_rate=1e-4, **common),
    )  # fmt: skip
    assert third["step"] == 4
    saved = np.load(out / "ckpt" / "optimizer.npz")
    scalars = [
        float(saved[k]) for k in saved.files if saved[k].dtype == np.float32 and saved[k].ndim == 0
    ]
    assert any(np.isclose(v, 1e-4) for v in scalars) and not any(
        np.isclose(v, 1e-3) for v in scalars
    )
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4]
    assert [r["step"] for r in records if r["split"] == "val"] == [0, 2, 3, 4]
    assert all(np.isfinite(r["loss"]) for r in records)
    # A new run can start from another run's weights (fresh optimizer, step 0) and keeps a
    # copy of every --keep-every checkpoint.
    weights = out / "ckpt" / "last.weights.h5"
    fresh = tmp_path / "fresh"
    settings = dict(common, out_dir=fresh, export=False)
    started = train(
        params, generator, val_set,
        TrainSettings(steps=2, init_weights=weights, keep_every=1, **settings),
    )  # fmt: skip
    assert started["step"] == 2
    assert sorted(p.name for p in fresh.glob("ckpt-*")) == ["ckpt-1", "ckpt-2"]
    assert json.loads((fresh / "ckpt-1" / "state.json").read_text())["step"] == 1
    from_scratch = train(
        params, generator, val_set, TrainSettings(steps=0, **dict(settings, out_dir=tmp_path / "s"))
    )
    from_weights = train(
        params, generator, val_set,
        TrainSettings(steps=0, init_weights=weights, **dict(settings, out_dir=tmp_path / "w")),
    )  # fmt: skip
    # Validation at step 0 sees the loaded weights: equal to the end of the run they came from.
    assert from_weights["first_val"]["loss"] == pytest.approx(third["last_val"]["loss"], rel=1e-5)
    assert from_scratch["first_val"]["loss"] != pytest.approx(third["last_val"]["loss"], rel=1e-3)
    with pytest.raises(ConfigError, match="init-weights"):
        train(
            params, generator, val_set,
            TrainSettings(steps=1, init_weights=tmp_path / "missing.h5", **settings),
        )  # fmt: skip
    model = load_model(third["tflite"], params, 1)
    masks = model.predict(np.ones((16, 64, 1), np.float32))
    assert masks.shape == (2, 16, 64, 1)
    np.testing.assert_allclose(masks.sum(axis=0), 1.0, atol=1e-5)


def test_psa_target_is_the_projection_on_the_mix_phase() -> None:
    source = np.array([2 + 0j, 1j, -3 + 0j, 1 + 1j], np.complex64)
    mix = np.array([1 + 0j, 1 + 0j, 2 + 0j, 0 + 0j], np.complex64)
    # |S| cos(angle S - angle X): in phase, quadrature, opposite, silent mix.
    np.testing.assert_allclose(psa_target(source, mix), [2.0, 0.0, -3.0, 0.0], atol=1e-6)


def test_generator_psa_targets(pool: Pool) -> None:
    params = _params()
    x, y = BlockGenerator(pool, params, seed=1, batch_size=2, psa=True).batch(0)
    x0, y0 = BlockGenerator(pool, params, seed=1, batch_size=2).batch(0)
    np.testing.assert_array_equal(x, x0)  # the same mixtures
    for stem in (ORCA_STEM, NOISE_STEM):
        np.testing.assert_array_equal(y[stem], y0[stem])
        assert y[f"{stem}:psa"].shape == y[stem].shape
        assert np.all(y[f"{stem}:psa"] <= y[stem] + 1e-6)  # |S| cos <= |S|
    # The two stems' projections add up to the mix magnitude (S_orca + S_noise = X).
    np.testing.assert_allclose(y[f"{ORCA_STEM}:psa"] + y[f"{NOISE_STEM}:psa"], x, atol=1e-5)
    assert np.abs(block_spectra(np.zeros(4096), params)).max() == 0


@pytest.mark.tools
def test_sdr_and_level_losses_match_numpy(rng: np.random.Generator) -> None:
    pytest.importorskip("tensorflow", reason=_TF_REASON)
    from tools.train.losses import SDR_FLOOR, l1_level_per_stem, sdr_per_stem

    shape = (3, 4, 5, 1)
    mix = np.abs(rng.standard_normal(shape)).astype(np.float32) * np.float32(
        [[[[1]]], [[[10]]], [[[0.1]]]]
    )
    outs = [np.abs(rng.standard_normal(shape)).astype(np.float32) for _ in range(2)]
    targets = [rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    got = [float(v) for v in sdr_per_stem(outs, targets, mix, 2.0)]
    total = outs[0] ** 2 + outs[1] ** 2 + 1e-10
    floor = SDR_FLOOR * np.sum(mix.astype(np.float64) ** 2, axis=(1, 2, 3))
    for i in range(2):
        est = (outs[i] ** 2 + 5e-11) / total * mix
        err = np.sum((est - targets[i]) ** 2, axis=(1, 2, 3))
        energy = np.sum(targets[i].astype(np.float64) ** 2, axis=(1, 2, 3))
        assert got[i] == pytest.approx(
            np.mean(10 * np.log10((err + floor) / (energy + floor))), abs=1e-3
        )
    # Perfect ratio masks reach the targets: the loss is the floor's, far below 0 dB.
    perfect = [np.abs(t) for t in targets]
    mix_p = perfect[0] + perfect[1]
    best = [float(v) for v in sdr_per_stem(perfect, [np.abs(t) for t in targets], mix_p, 1.0)]
    assert max(best) < -20  # 10 log10(floor / energy), about -25 dB here
    # l1-level: every example weighs the same whatever its level.
    level = [float(v) for v in l1_level_per_stem(outs, targets, mix)]
    per_example = np.mean(np.abs(outs[0] - targets[0]), axis=(1, 2, 3)) / (
        mix.mean(axis=(1, 2, 3)) + 1e-8
    )
    assert level[0] == pytest.approx(per_example.mean(), rel=1e-5)


def test_edge_silence_blocks(pool: Pool) -> None:
    params = _params()
    plain = BlockGenerator(pool, params, seed=4, batch_size=4).batch(0)
    again = BlockGenerator(pool, params, seed=4, batch_size=4, p_edge_silence=0.0).batch(0)
    np.testing.assert_array_equal(plain[0], again[0])  # 0 draws nothing: old batches unchanged
    x, y = BlockGenerator(pool, params, seed=4, batch_size=8, p_edge_silence=1.0, psa=True).batch(0)
    frame_energy = x.sum(axis=(2, 3))  # (batch, T)
    edged = 0
    for b in range(x.shape[0]):
        silent = frame_energy[b] == 0
        assert not silent.all()
        # Silent frames form one run from an edge (frames that straddle it are partly silent).
        n = int(silent.sum())
        assert silent[:n].all() or silent[len(silent) - n :].all()
        edged += n > 0
        for stem in (ORCA_STEM, NOISE_STEM):  # the targets are silent there too
            assert np.all(y[stem][b][silent] == 0) and np.all(y[f"{stem}:psa"][b][silent] == 0)
    assert edged >= 6  # all but blocks whose silent stretch is shorter than one STFT frame


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--keep-every", "0"], "--keep-every"),
        (["--call-resample", "1.1", "0.9"], "--call-resample"),
        (["--synthetic-noise", "1.5"], "--synthetic-noise"),
        (["--synthetic-kinds", "snow"], "--synthetic-kinds"),
        (["--aac", "2"], "--aac"),
        (["--aac-kbps", "160", "64"], "--aac-kbps"),
    ],
)
def test_train_cli_names_bad_options(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tensorflow", reason=_TF_REASON)
    from tools.train.__main__ import main

    params = ROOT / "configs" / "orca-unet.json"
    with pytest.raises(SystemExit) as exited:  # argparse's usage error, before TensorFlow starts
        main(["--params", str(params), "--out", str(tmp_path / "run"), "--steps", "1", *flags])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.shared_data
@pytest.mark.skipif(not DATA.is_dir(), reason="shared data not available at ../shared/data")
def test_pack_holds_train_and_val_only(tmp_path: Path) -> None:
    """The device pack reads like the shared data, without the test split, and stays small."""
    from streamsep.errors import StreamsepError
    from tools.dataset.mixtures import load_pool
    from tools.dataset.splits import TEST_FILES
    from tools.train.pack import pack

    size = pack(DATA, tmp_path / "pack", 32000, 48 << 20)
    assert 0 < size <= 48 << 20
    packed = {r["path"]: r for r in manifest_entries(tmp_path / "pack")}
    assert not set(packed) & TEST_FILES
    assert {r["split"] for r in packed.values()} == {"train", "val"}
    for split in ("train", "val"):
        assert load_pool(tmp_path / "pack", split, 8000).files() == (
            load_pool(DATA, split, 8000).files()
        )
    with pytest.raises(StreamsepError, match="over --max-mib"):
        pack(DATA, tmp_path / "small", 32000, 1 << 20)
