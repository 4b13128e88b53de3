"""Spectral front end: round trip, incremental == batch, masks."""

from __future__ import annotations

import numpy as np
import pytest

from streamsep.engine import spectral


@pytest.fixture(params=[(256, 64), (4096, 1024), (512, 256)], ids=lambda p: f"{p[0]}/{p[1]}")
def frames(request: pytest.FixtureRequest) -> tuple[int, int]:
    return request.param


@pytest.fixture(params=[1, 2], ids=lambda c: f"{c}ch")
def n_channels(request: pytest.FixtureRequest) -> int:
    return request.param


@pytest.mark.parametrize("frame_length", [256, 4096])
def test_round_trip_rms(frame_length: int, n_channels: int, rng: np.random.Generator) -> None:
    # Spleeter's 2/3 gain makes Hann analysis+synthesis exact at 75 % overlap.
    frame_step = frame_length // 4
    x = (rng.standard_normal((20011, n_channels)) * 0.3).astype(np.float32)
    spec = spectral.stft(x, frame_length, frame_step)
    assert spec.shape == (
        -(-(len(x) + frame_length) // frame_step),
        frame_length // 2 + 1,
        n_channels,
    )
    y = spectral.istft(spec, frame_length, frame_step, len(x))
    assert y.shape == x.shape
    assert np.sqrt(np.mean((y - x) ** 2)) < 1e-6


@pytest.mark.parametrize("max_chunk", [1, 37, 700, 5000])
def test_streaming_stft_matches_batch(
    frames: tuple[int, int], n_channels: int, max_chunk: int, rng: np.random.Generator
) -> None:
    frame_length, frame_step = frames
    x = (rng.standard_normal((9000, n_channels)) * 0.5).astype(np.float32)
    batch = spectral.stft(x, frame_length, frame_step)
    stream = spectral.StreamingStft(frame_length, frame_step, n_channels)
    out, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, max_chunk + 1))
        out.append(stream.feed(x[i : i + n]))
        i += n
    out.append(stream.flush())
    frames_out = np.concatenate(out)
    assert frames_out.shape == batch.shape
    assert np.abs(frames_out - batch).max() <= 1e-6 * max(1.0, np.abs(batch).max())


@pytest.mark.parametrize("max_frames", [1, 3, 50])
def test_streaming_istft_matches_batch(
    frames: tuple[int, int], n_channels: int, max_frames: int, rng: np.random.Generator
) -> None:
    frame_length, frame_step = frames
    x = (rng.standard_normal((9000, n_channels)) * 0.5).astype(np.float32)
    spec = spectral.stft(x, frame_length, frame_step)
    spec = spec * rng.uniform(0, 1, spec.shape).astype(np.float32)  # not a valid STFT any more
    batch = spectral.istft(spec, frame_length, frame_step, len(x))
    stream = spectral.StreamingIstft(frame_length, frame_step, n_channels)
    out, i = [], 0
    while i < len(spec):
        n = int(rng.integers(1, max_frames + 1))
        out.append(stream.feed(spec[i : i + n]))
        i += n
    y = np.concatenate(out)[: len(x)]
    assert y.shape == batch.shape
    assert np.abs(y - batch).max() <= 1e-6


def test_stream_stft_first_frame_ready_before_input() -> None:
    stream = spectral.StreamingStft(256, 64, 1)
    first = stream.feed(np.zeros((0, 1), np.float32))
    assert first.shape[0] == 1 and np.all(first == 0)
    assert stream.feed(np.ones((63, 1), np.float32)).shape[0] == 0
    assert stream.feed(np.ones((1, 1), np.float32)).shape[0] == 1


def test_ratio_masks_formula() -> None:
    out = np.array([[[3.0, 0.0]], [[4.0, 0.0]]], dtype=np.float32)  # (2 stems, 1, 2)
    masks = spectral.ratio_masks(out, 2.0)
    eps = 1e-10
    assert masks[0, 0, 0] == pytest.approx((9 + eps / 2) / (25 + eps))
    assert masks[1, 0, 0] == pytest.approx((16 + eps / 2) / (25 + eps))
    assert masks[0, 0, 1] == pytest.approx(0.5)  # silence splits evenly, as in Spleeter
    np.testing.assert_allclose(masks.sum(axis=0), 1.0, rtol=1e-6)
    m1 = spectral.ratio_masks(out, 1.0)
    assert m1[0, 0, 0] == pytest.approx(3 / 7, rel=1e-6)


def test_extend_masks() -> None:
    masks = np.arange(8, dtype=np.float32).reshape(1, 4, 2)  # (frames=1, F=4, C=2)
    zeros = spectral.extend_masks(masks, 6, "zeros")
    assert zeros.shape == (1, 6, 2)
    assert np.all(zeros[:, 4:] == 0) and np.all(zeros[:, :4] == masks)
    average = spectral.extend_masks(masks, 6, "average")
    np.testing.assert_allclose(average[0, 4], masks[0].mean(axis=0))
    np.testing.assert_allclose(average[0, 5], masks[0].mean(axis=0))
    with pytest.raises(ValueError, match="mask_extension"):
        spectral.extend_masks(masks, 6, "mirror")


def test_hann_window_is_periodic() -> None:
    w = spectral.hann_window(8)
    assert w[0] == 0 and w[4] == pytest.approx(1.0)
    # Periodic: w[n] == w[N - n]
    np.testing.assert_allclose(w[1:], w[1:][::-1], atol=1e-7)


@pytest.mark.parametrize("mode", ["zeros", "average"])
def test_apply_masks_equals_extend_then_multiply(mode: str, rng: np.random.Generator) -> None:
    masks = rng.uniform(0, 1, (2, 5, 4, 2)).astype(np.float32)
    spectra = (rng.standard_normal((5, 7, 2)) + 1j * rng.standard_normal((5, 7, 2))).astype(
        np.complex64
    )
    want = spectral.extend_masks(masks, 7, mode) * spectra[None]
    np.testing.assert_allclose(spectral.apply_masks(masks, spectra, mode), want, rtol=1e-6)


def test_istft_fed_in_pieces_equals_one_feed() -> None:
    """``feed_pieces`` (what the synthesizer uses to bound its temporaries) returns what one
    ``feed`` of the concatenated frames returns, carry included, to float32 rounding: the
    inverse FFT of a frame can round differently with the number of frames in the call
    (pocketfft's SIMD batching; bitwise equal on x86-64 here, not on arm64)."""
    rng = np.random.default_rng(3)
    spectra = (
        rng.standard_normal((2, 37, 129, 2)) + 1j * rng.standard_normal((2, 37, 129, 2))
    ).astype(np.complex64)
    whole = spectral.StreamingIstft(256, 64, 2)
    pieces = spectral.StreamingIstft(256, 64, 2)
    for block in spectra:  # two calls: the second starts from the first's carry
        expected = whole.feed(block)
        got = pieces.feed_pieces((block[a : a + 5] for a in range(0, 37, 5)), 37)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
        assert got.dtype == np.float32
    with pytest.raises(ValueError, match="pieces hold 5 frames, expected 6"):
        pieces.feed_pieces([spectra[0, :5]], 6)
