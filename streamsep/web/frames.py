"""The browser wire format: what the server sends on ``/ws`` (``docs/web.md``).

Binary messages (little-endian) start with a 32-byte header, struct ``<BBHIIIdd``:

====== ==== ======= =====================================================================
offset size type    field
====== ==== ======= =====================================================================
0      1    uint8   kind: 1 spectrogram columns, 2 audio
1      1    uint8   stem index (into the ``stems`` list of the ``hello`` message)
2      2    uint16  n_bins (kind 1) or 0
4      4    uint32  count: columns (kind 1) or samples (kind 2)
8      4    uint32  seq: per-client message number (holes = messages dropped for this client)
12     4    uint32  reserved, 0
16     8    float64 capture time (UTC ms since 1970) of the first column's centre / first sample
24     8    float64 capture time (UTC ms) of the end of the source chunk (for latency)
====== ==== ======= =====================================================================

then the payload: ``count * n_bins`` uint8 (column-major: one column's bins from 0 Hz up,
then the next; byte ``b`` is ``db_min + b / 255 * (db_max - db_min)`` dBFS), or ``count``
int16 mono samples at ``audio_rate`` (full scale 32767).

Text messages are JSON objects with ``seq`` and ``type``: ``hello``, ``stream`` (a stem's
stream started or ended), ``gap``, ``levels``, ``status``, ``detection`` (an orca activity
event, its ``body`` as published on the ``events`` topic), ``client`` (this client's drop
count). The server reads ``{"type": "audio", "stems": [...]}`` (which stems' audio to send).
"""

from __future__ import annotations

import json
import struct
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "HEADER",
    "KIND_SPECTROGRAM",
    "KIND_AUDIO",
    "pack_columns",
    "pack_audio",
    "with_seq",
    "json_message",
]

HEADER: Final = struct.Struct("<BBHIIIdd")
KIND_SPECTROGRAM: Final = 1
KIND_AUDIO: Final = 2
_SEQ_OFFSET: Final = 8
_JSON_PREFIX: Final = '{"seq": '


def pack_columns(
    stem_index: int, columns: NDArray[np.uint8], t0_ms: float, t_end_ms: float
) -> bytes:
    """A spectrogram message; ``columns`` has shape (n_columns, n_bins), uint8."""
    n_columns, n_bins = columns.shape
    head = HEADER.pack(KIND_SPECTROGRAM, stem_index, n_bins, n_columns, 0, 0, t0_ms, t_end_ms)
    return head + np.ascontiguousarray(columns, np.uint8).tobytes()


def pack_audio(stem_index: int, samples: NDArray[np.int16], t0_ms: float, t_end_ms: float) -> bytes:
    """An audio message; ``samples`` has shape (n_samples,), int16 at the audio rate."""
    head = HEADER.pack(KIND_AUDIO, stem_index, 0, samples.shape[0], 0, 0, t0_ms, t_end_ms)
    return head + np.ascontiguousarray(samples, "<i2").tobytes()


def json_message(type_: str, **body: Any) -> str:
    """A text message of type ``type_`` without its ``seq`` (added per client by
    :func:`with_seq`)."""
    return json.dumps({"type": type_, **body}, separators=(",", ":"), allow_nan=False)


def with_seq(message: bytes | str, seq: int) -> bytes | str:
    """``message`` with this client's sequence number filled in."""
    if isinstance(message, str):
        return f"{_JSON_PREFIX}{seq}," + message[1:]
    out = bytearray(message)
    struct.pack_into("<I", out, _SEQ_OFFSET, seq & 0xFFFFFFFF)
    return bytes(out)
