"""Block scheduling and mask overlap-add against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from streamsep.engine.blocks import BlockScheduler, MaskCombiner, block_weights

T, F, N_BINS, C, S = 8, 4, 6, 1, 2


@pytest.fixture(
    params=[(1, 0), (2, 3), (4, 4), (3, 7), (8, 7)], ids=lambda p: f"hop{p[0]}-look{p[1]}"
)
def hop_lookahead(request: pytest.FixtureRequest) -> tuple[int, int]:
    return request.param


@pytest.mark.parametrize("window", ["hann", "boxcar"])
def test_combined_masks_match_reference(
    hop_lookahead: tuple[int, int], window: str, rng: np.random.Generator
) -> None:
    hop, lookahead = hop_lookahead
    n_frames = 50
    frames = (rng.standard_normal((n_frames, N_BINS, C)) + 1j).astype(np.complex64)
    scheduler = BlockScheduler(T, F, hop, N_BINS, C)
    combiner = MaskCombiner(T, F, N_BINS, C, S, hop, lookahead, window)
    block_masks: dict[int, np.ndarray] = {}
    got_masks, got_stft = [], []
    for start in range(0, n_frames, 3):
        for job in scheduler.feed(frames[start : start + 3]):
            # The block input is the last T frames' magnitudes (zeros before frame 0).
            for p in range(T):
                f = job.end_frame - T + 1 + p
                want = np.abs(frames[f, :F]) if 0 <= f < n_frames else 0
                np.testing.assert_array_equal(job.spectrogram[p], want)
            job.masks = rng.uniform(0, 1, (S, T, F, C)).astype(np.float32)
            block_masks[job.end_frame] = job.masks
            masks, stft = combiner.add(job)
            got_masks.append(masks)
            got_stft.append(stft)
    masks = np.concatenate(got_masks, axis=1)
    stft = np.concatenate(got_stft)
    weights = block_weights(T, lookahead, window)
    n_done = masks.shape[1]
    assert n_done > n_frames - lookahead - hop - 3
    np.testing.assert_array_equal(stft, frames[:n_done])
    for f in range(n_done):
        num = np.zeros((S, F, C))
        den = 0.0
        for end, m in block_masks.items():
            if 0 <= end - f <= lookahead:
                p = f - (end - T + 1)
                w = weights[p - (T - 1 - lookahead)]
                num += w * m[:, p]
                den += w
        assert den > 0
        np.testing.assert_allclose(masks[:, f], num / den, rtol=1e-5, atol=1e-6)


def test_each_block_finishes_hop_frames() -> None:
    hop, lookahead = 4, 6
    scheduler = BlockScheduler(T, F, hop, N_BINS, C)
    combiner = MaskCombiner(T, F, N_BINS, C, S, hop, lookahead, "hann")
    frames = np.ones((40, N_BINS, C), np.complex64)
    counts = []
    for job in scheduler.feed(frames):
        job.masks = np.ones((S, T, F, C), np.float32)
        counts.append(combiner.add(job)[0].shape[1])
    # Blocks end at 3, 7, 11...; block e finishes frames e-6 .. e-3 (frames < 0 are dropped).
    assert counts[0] == 1 and set(counts[1:]) == {4}


def test_rejects_out_of_order_and_bad_settings() -> None:
    combiner = MaskCombiner(T, F, N_BINS, C, S, 2, 3, "hann")
    scheduler = BlockScheduler(T, F, 2, N_BINS, C)
    jobs = scheduler.feed(np.ones((6, N_BINS, C), np.complex64))
    jobs[1].masks = np.ones((S, T, F, C), np.float32)
    with pytest.raises(ValueError, match="expected block ending at 1"):
        combiner.add(jobs[1])
    with pytest.raises(ValueError, match="hop_frames"):
        MaskCombiner(T, F, N_BINS, C, S, 5, 3, "hann")
