"""streamsep's spectral front end against tf.signal with Spleeter's exact calls (tools extra)."""

from __future__ import annotations

import numpy as np
import pytest

from streamsep.engine import spectral

pytestmark = pytest.mark.tools


@pytest.fixture(scope="module")
def tf():  # noqa: ANN201 - the tensorflow module
    return pytest.importorskip("tensorflow", reason="tools extra (TensorFlow) not installed")


def _spleeter_stft(tf, waveform: np.ndarray, frame_length: int, frame_step: int) -> np.ndarray:  # noqa: ANN001
    """Spleeter's EstimatorSpecBuilder._build_stft_feature, verbatim in its TF calls."""
    n_channels = waveform.shape[1]
    padded = tf.concat([tf.zeros((frame_length, n_channels)), tf.constant(waveform)], 0)
    stft = tf.signal.stft(
        tf.transpose(padded),
        frame_length,
        frame_step,
        window_fn=lambda n, dtype: tf.signal.hann_window(n, periodic=True, dtype=dtype),
        pad_end=True,
    )
    return tf.transpose(stft, perm=[1, 2, 0]).numpy()


def _spleeter_istft(tf, stft: np.ndarray, frame_length: int, frame_step: int, n: int) -> np.ndarray:  # noqa: ANN001
    """Spleeter's EstimatorSpecBuilder._inverse_stft."""
    inversed = (
        tf.signal.inverse_stft(
            tf.transpose(tf.constant(stft), perm=[2, 0, 1]),
            frame_length,
            frame_step,
            window_fn=lambda n, dtype: tf.signal.hann_window(n, periodic=True, dtype=dtype),
        )
        * 2.0
        / 3.0
    )
    return tf.transpose(inversed).numpy()[frame_length : frame_length + n]


@pytest.mark.parametrize("n_samples", [44100 * 2 + 77, 8192])
def test_stft_and_istft_match_tf_signal(tf, n_samples: int) -> None:  # noqa: ANN001
    rng = np.random.default_rng(5)
    x = (rng.uniform(-1, 1, (n_samples, 2)) * 0.5).astype(np.float32)
    ours = spectral.stft(x, 4096, 1024)
    theirs = _spleeter_stft(tf, x, 4096, 1024)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1e-4 * max(1.0, np.abs(theirs).max())
    masked = (theirs * rng.uniform(0, 1, theirs.shape)).astype(np.complex64)
    y_ours = spectral.istft(masked, 4096, 1024, n_samples)
    y_theirs = _spleeter_istft(tf, masked, 4096, 1024, n_samples)
    assert y_ours.shape == y_theirs.shape
    assert np.abs(y_ours - y_theirs).max() <= 1e-4


def test_streaming_versions_match_batch_with_spleeter_params() -> None:
    rng = np.random.default_rng(6)
    x = (rng.uniform(-1, 1, (50000, 2)) * 0.5).astype(np.float32)
    batch = spectral.stft(x, 4096, 1024)
    stream = spectral.StreamingStft(4096, 1024, 2)
    frames, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 6000))
        frames.append(stream.feed(x[i : i + n]))
        i += n
    frames.append(stream.flush())
    assert np.abs(np.concatenate(frames) - batch).max() <= 1e-6
    istft = spectral.StreamingIstft(4096, 1024, 2)
    y = np.concatenate([istft.feed(batch[k : k + 5]) for k in range(0, len(batch), 5)])
    assert np.abs(y[: len(x)] - spectral.istft(batch, 4096, 1024, len(x))).max() <= 1e-6
