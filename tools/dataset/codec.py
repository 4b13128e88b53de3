"""An AAC round trip, as audio reaches streamsep from Orcasound's HLS streams.

Orcasound nodes publish AAC (48 kHz, about 64-170 kbit/s per stream in ``streams/`` of the
shared data) in MPEG-TS segments; :func:`aac_round_trip` codes a signal the same way with
PyAV's (FFmpeg's) encoder and decodes it again, sample-aligned with the input: the encoder's
priming (one frame) is cut, so that sample ``i`` of the output is the coded sample ``i`` of the
input.
"""

from __future__ import annotations

import fractions
from typing import Final

import av
import numpy as np
import soxr
from numpy.typing import NDArray

__all__ = ["AAC_RATE", "aac_round_trip"]

AAC_RATE: Final = 48_000
"""The rate the signal is coded at (Hz), as on Orcasound's streams."""


def aac_round_trip(x: NDArray[np.floating], rate: int, kbps: float) -> NDArray[np.float32]:
    """``x`` (mono, ``rate`` Hz) coded as AAC-LC at ``kbps`` kbit/s and decoded, same shape.

    The signal is resampled to :data:`AAC_RATE` for the codec and back (soxr); the output is
    aligned with the input (the encoder's priming frame removed) and cut to its length.
    """
    if x.ndim != 1:
        raise ValueError(f"aac_round_trip: expected mono audio of shape (n,), got {x.shape}")
    if kbps <= 0:
        raise ValueError(f"aac_round_trip: bit rate must be > 0 kbit/s, got {kbps}")
    n = x.shape[0]
    coded_in = soxr.resample(np.asarray(x, np.float32), rate, AAC_RATE).astype(np.float32)
    encoder: av.AudioCodecContext = av.CodecContext.create("aac", "w")  # type: ignore[assignment]
    encoder.sample_rate = AAC_RATE
    encoder.layout = "mono"
    encoder.format = "fltp"
    encoder.bit_rate = int(kbps * 1000)
    encoder.time_base = fractions.Fraction(1, AAC_RATE)
    encoder.open()
    size = int(encoder.frame_size)
    padded = np.pad(coded_in, (0, -coded_in.shape[0] % size))
    packets = []
    for k in range(padded.shape[0] // size):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(padded[None, k * size : (k + 1) * size]),
            format="fltp",
            layout="mono",
        )
        frame.sample_rate = AAC_RATE
        frame.pts = k * size
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    decoder: av.AudioCodecContext = av.CodecContext.create("aac", "r")  # type: ignore[assignment]
    decoder.sample_rate = AAC_RATE
    decoder.layout = "mono"
    if encoder.extradata:
        decoder.extradata = encoder.extradata
    decoded = [f.to_ndarray()[0] for p in [*packets, None] for f in decoder.decode(p)]
    out = np.concatenate(decoded)[size : size + coded_in.shape[0]]
    back = soxr.resample(out.astype(np.float32), AAC_RATE, rate).astype(np.float32)
    return np.pad(back, (0, max(0, n - back.shape[0])))[:n]
