"""Wire format of the published streams, version 1 (the spec is ``docs/protocol.md``).

Audio messages are three ZeroMQ frames: the topic (``audio.<stem>`` or ``audio.mix``), a
64-byte little-endian :class:`AudioHeader`, and interleaved PCM. Levels and status messages are
two frames: the topic (``levels``, ``status``) and a UTF-8 JSON object. This module depends on
nothing but :mod:`struct`, :mod:`json` and NumPy, so that it stays a readable reference for
subscribers written in other languages.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from streamsep.errors import StreamsepError

__all__ = [
    "VERSION",
    "MAGIC",
    "HEADER_FORMAT",
    "HEADER_SIZE",
    "FLAG_STREAM_START",
    "FLAG_END_OF_STREAM",
    "FLAG_GAP",
    "FLAG_CLIPPED",
    "FORMAT_FLOAT32",
    "FORMAT_INT16",
    "SAMPLE_FORMATS",
    "AUDIO_PREFIX",
    "MIX_TOPIC",
    "LEVELS_TOPIC",
    "STATUS_TOPIC",
    "EVENTS_TOPIC",
    "SILENCE_DB",
    "ProtocolError",
    "AudioHeader",
    "audio_topic",
    "pack_audio",
    "unpack_audio",
    "encode_samples",
    "decode_samples",
    "encode_json",
    "decode_json",
    "level_dbfs",
    "dbfs_to_db_re_1upa",
]

VERSION: Final = 1
"""Protocol version carried in every header and JSON message."""
MAGIC: Final = b"SSEP"
"""First four bytes of every audio header."""
HEADER_FORMAT: Final = "<4sHHIIQQqQQIHH"
"""``struct`` layout of :class:`AudioHeader` (see ``docs/protocol.md``, table 1)."""
HEADER_SIZE: Final = struct.calcsize(HEADER_FORMAT)
"""Bytes in a version-1 header (64)."""

FLAG_STREAM_START: Final = 1 << 0
"""First message the publisher sent on this topic since the stream started."""
FLAG_END_OF_STREAM: Final = 1 << 1
"""Last message of the stream on this topic."""
FLAG_GAP: Final = 1 << 2
"""Samples are missing: ``lost_samples > 0`` and/or ``filled_samples > 0``."""
FLAG_CLIPPED: Final = 1 << 3
"""Some sample of this message had ``|x| >= 1.0`` before encoding."""

FORMAT_FLOAT32: Final = 1
"""Sample format code: IEEE-754 float32, little-endian, full scale 1.0."""
FORMAT_INT16: Final = 2
"""Sample format code: signed 16-bit little-endian, ``round(clip(x, -1, 1) * 32767)``
(computed in float64)."""
SAMPLE_FORMATS: Final = {"float32": FORMAT_FLOAT32, "int16": FORMAT_INT16}
"""Setting name -> sample format code."""
_DTYPES: Final[dict[int, np.dtype[Any]]] = {
    FORMAT_FLOAT32: np.dtype("<f4"),
    FORMAT_INT16: np.dtype("<i2"),
}
_INT16_SCALE: Final = 32767.0

AUDIO_PREFIX: Final = "audio."
"""Prefix of every audio topic; the stem name follows."""
MIX_TOPIC: Final = "audio.mix"
"""Topic of the unseparated model input."""
LEVELS_TOPIC: Final = "levels"
"""Topic of the JSON level reports."""
STATUS_TOPIC: Final = "status"
"""Topic of the JSON publisher status reports."""
EVENTS_TOPIC: Final = "events"
"""Topic of the JSON orca activity events (``streamsep.events``)."""

SILENCE_DB: Final = -240.0
"""Level reported for digital silence (dBFS); JSON has no ``-Infinity``."""


class ProtocolError(StreamsepError):
    """A message does not follow ``docs/protocol.md``."""


@dataclass(frozen=True)
class AudioHeader:
    """The fixed header of an audio message (all integers, little-endian on the wire)."""

    flags: int
    """Bit set of ``FLAG_*``."""
    n_frames: int
    """Samples per channel in the payload, >= 0."""
    sequence: int
    """Per-topic message counter from 0; increments per message actually sent."""
    first_sample: int
    """Index of the first payload sample since the stream start, at ``sample_rate``."""
    capture_time_ns: int
    """Capture time of the first payload sample, UTC nanoseconds since the Unix epoch."""
    lost_samples: int
    """Samples (per channel) absent from the stream just before this message (dropped after
    separation: publisher queue or ZeroMQ high-water mark)."""
    filled_samples: int
    """Input samples lost before separation and replaced by silence; that silence starts in
    this message (it may continue into the next ones). Indices stay continuous."""
    sample_rate: int
    """Samples per second per channel, Hz."""
    n_channels: int
    """Interleaved channels in the payload, >= 1."""
    sample_format: int
    """``FORMAT_FLOAT32`` or ``FORMAT_INT16``."""
    version: int = VERSION
    """Protocol version of the message."""

    @property
    def end_sample(self) -> int:
        """Index one past the last payload sample."""
        return self.first_sample + self.n_frames

    @property
    def bytes_per_sample(self) -> int:
        """Bytes of one sample of one channel in the payload."""
        return _DTYPES[self.sample_format].itemsize

    def has(self, flag: int) -> bool:
        """Whether ``flag`` (one of ``FLAG_*``) is set."""
        return bool(self.flags & flag)

    def pack(self) -> bytes:
        """The 64 header bytes."""
        return struct.pack(
            HEADER_FORMAT, MAGIC, self.version, HEADER_SIZE, self.flags, self.n_frames,
            self.sequence, self.first_sample, self.capture_time_ns, self.lost_samples,
            self.filled_samples, self.sample_rate, self.n_channels, self.sample_format,
        )  # fmt: skip

    @classmethod
    def unpack(cls, data: bytes) -> AudioHeader:
        """Parse a header. Compatible revisions of version 1 may append fields (then
        ``header_size`` > 64); they are ignored here.

        Raises
        ------
        ProtocolError
            On a wrong magic, a version other than 1, or a short or inconsistent header.
        """
        if len(data) < HEADER_SIZE:
            raise ProtocolError(f"header: expected >= {HEADER_SIZE} bytes, got {len(data)}")
        fields = struct.unpack_from(HEADER_FORMAT, data)
        magic, version, header_size, flags, n_frames, sequence, first_sample = fields[:7]
        capture_time_ns, lost, filled, rate, n_channels, sample_format = fields[7:]
        if magic != MAGIC:
            raise ProtocolError(f"header: expected magic {MAGIC!r}, got {magic!r}")
        if version != VERSION:
            raise ProtocolError(f"header: expected version {VERSION}, got {version}")
        if header_size < HEADER_SIZE or header_size != len(data):
            raise ProtocolError(f"header: header_size {header_size}, frame is {len(data)} bytes")
        if sample_format not in _DTYPES:
            raise ProtocolError(f"header: unknown sample format {sample_format}")
        if n_channels < 1 or rate < 1:
            raise ProtocolError(f"header: n_channels {n_channels}, sample_rate {rate}")
        return cls(
            flags, n_frames, sequence, first_sample, capture_time_ns, lost, filled, rate,
            n_channels, sample_format, version,
        )  # fmt: skip


def audio_topic(stem: str) -> str:
    """The topic of ``stem`` (``"mix"`` gives :data:`MIX_TOPIC`)."""
    return AUDIO_PREFIX + stem


def encode_samples(samples: NDArray[np.floating], sample_format: int) -> bytes:
    """Interleaved little-endian PCM of ``samples``, shape (n_samples, n_channels).

    int16 values are ``round(clip(x, -1, 1) * 32767)`` (rounding half to even), computed in
    float64, where the product of a float32 value and 32767 is exact: the error is at most 0.5
    LSB. -32768 is never produced; NaN encodes as 0.
    """
    if sample_format == FORMAT_FLOAT32:
        return np.ascontiguousarray(samples, dtype="<f4").tobytes()
    if sample_format == FORMAT_INT16:
        x = np.asarray(samples, dtype=np.float32).astype(np.float64)
        scaled = np.rint(np.clip(np.nan_to_num(x, nan=0.0), -1.0, 1.0) * _INT16_SCALE)
        return np.ascontiguousarray(scaled, dtype="<i2").tobytes()
    raise ProtocolError(f"unknown sample format {sample_format}")


def decode_samples(payload: bytes, header: AudioHeader) -> NDArray[np.float32]:
    """``(n_frames, n_channels)`` float32 from a payload (int16 is divided by 32767).

    Raises
    ------
    ProtocolError
        If the payload size disagrees with the header.
    """
    dtype = _DTYPES[header.sample_format]
    expected = header.n_frames * header.n_channels * dtype.itemsize
    if len(payload) != expected:
        raise ProtocolError(f"payload: expected {expected} bytes, got {len(payload)}")
    raw = np.frombuffer(payload, dtype=dtype).reshape(header.n_frames, header.n_channels)
    if header.sample_format == FORMAT_INT16:
        return raw.astype(np.float32) / np.float32(_INT16_SCALE)
    return raw.astype(np.float32)


def pack_audio(topic: str, header: AudioHeader, samples: NDArray[np.floating]) -> list[bytes]:
    """The three frames of an audio message.

    Parameters
    ----------
    topic : str
        ``audio.<stem>``.
    header : AudioHeader
        Its ``n_frames`` and ``n_channels`` must match ``samples``.
    samples : ndarray, shape (n_frames, n_channels), float
        Full scale is 1.0.
    """
    if samples.ndim != 2 or samples.shape != (header.n_frames, header.n_channels):
        raise ProtocolError(
            f"samples: expected shape ({header.n_frames}, {header.n_channels}), got {samples.shape}"
        )
    return [topic.encode(), header.pack(), encode_samples(samples, header.sample_format)]


def unpack_audio(frames: list[bytes]) -> tuple[str, AudioHeader, NDArray[np.float32]]:
    """``(topic, header, samples)`` of an audio message; samples (n_frames, n_channels) float32.

    Raises
    ------
    ProtocolError
        If the message is not a version-1 audio message.
    """
    if len(frames) != 3:
        raise ProtocolError(f"audio message: expected 3 frames, got {len(frames)}")
    topic = bytes(frames[0]).decode("utf-8", errors="replace")
    header = AudioHeader.unpack(bytes(frames[1]))
    return topic, header, decode_samples(bytes(frames[2]), header)


def encode_json(topic: str, body: dict[str, Any]) -> list[bytes]:
    """The two frames of a levels or status message. ``version`` is set to :data:`VERSION`,
    replacing any ``version`` key of ``body``."""
    return [topic.encode(), json.dumps({**body, "version": VERSION}, allow_nan=False).encode()]


def decode_json(frames: list[bytes]) -> tuple[str, dict[str, Any]]:
    """``(topic, body)`` of a levels or status message.

    Raises
    ------
    ProtocolError
        If it is not two frames with a JSON object.
    """
    if len(frames) != 2:
        raise ProtocolError(f"json message: expected 2 frames, got {len(frames)}")
    try:
        body = json.loads(bytes(frames[1]))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"json message: {e}") from e
    if not isinstance(body, dict):
        raise ProtocolError(f"json message: expected an object, got {type(body).__name__}")
    return bytes(frames[0]).decode("utf-8", errors="replace"), body


def level_dbfs(value: float) -> float:
    """``20 log10(value)`` for an RMS or peak of full-scale-1.0 samples, dBFS.

    A full-scale sine reads 0 dBFS peak and -3.01 dBFS RMS; zero reads :data:`SILENCE_DB`.
    """
    if not value > 0.0:
        return SILENCE_DB
    return max(SILENCE_DB, 20.0 * math.log10(value))


def dbfs_to_db_re_1upa(
    dbfs: float,
    sensitivity_db_re_1v_per_upa: float,
    gain_db: float,
    full_scale_volts: float,
) -> float:
    """Convert a level in dBFS to sound pressure level in dB re 1 µPa.

    ``dB re 1 µPa = dBFS + 20 log10(full_scale_volts) - gain_db - sensitivity_db_re_1v_per_upa``

    Parameters
    ----------
    dbfs : float
        Level of the digital signal, dB relative to sample value 1.0.
    sensitivity_db_re_1v_per_upa : float
        Hydrophone sensitivity, dB re 1 V/µPa (typically -210 to -160).
    gain_db : float
        Gain between hydrophone and converter input, dB.
    full_scale_volts : float
        Converter input voltage (peak) that gives sample value 1.0, volts.
    """
    if dbfs <= SILENCE_DB:
        return SILENCE_DB
    return dbfs + 20.0 * math.log10(full_scale_volts) - gain_db - sensitivity_db_re_1v_per_upa
