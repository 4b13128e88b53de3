"""Wire format: header layout per docs/protocol.md, round trips, flags, int16 scaling, levels."""

from __future__ import annotations

import math
import struct
from fractions import Fraction

import numpy as np
import pytest

from streamsep.net import protocol as proto
from streamsep.net.levels import Calibration, LevelMeter


def _header(**overrides: int) -> proto.AudioHeader:
    fields = dict(
        flags=proto.FLAG_STREAM_START | proto.FLAG_GAP,
        n_frames=3,
        sequence=7,
        first_sample=123_456_789_012,
        capture_time_ns=1_764_000_000_123_456_789,
        lost_samples=17,
        filled_samples=5,
        sample_rate=44100,
        n_channels=2,
        sample_format=proto.FORMAT_FLOAT32,
    )
    fields.update(overrides)
    return proto.AudioHeader(**fields)


def test_header_layout_matches_the_spec_table() -> None:
    header = _header()
    raw = header.pack()
    assert proto.HEADER_SIZE == len(raw) == 64
    # Table 1 of docs/protocol.md, field by field.
    assert raw[0:4] == b"SSEP"
    assert struct.unpack_from("<H", raw, 4)[0] == 1
    assert struct.unpack_from("<H", raw, 6)[0] == 64
    assert struct.unpack_from("<I", raw, 8)[0] == header.flags
    assert struct.unpack_from("<I", raw, 12)[0] == 3
    assert struct.unpack_from("<Q", raw, 16)[0] == 7
    assert struct.unpack_from("<Q", raw, 24)[0] == 123_456_789_012
    assert struct.unpack_from("<q", raw, 32)[0] == 1_764_000_000_123_456_789
    assert struct.unpack_from("<Q", raw, 40)[0] == 17
    assert struct.unpack_from("<Q", raw, 48)[0] == 5
    assert struct.unpack_from("<I", raw, 56)[0] == 44100
    assert struct.unpack_from("<H", raw, 60)[0] == 2
    assert struct.unpack_from("<H", raw, 62)[0] == proto.FORMAT_FLOAT32


def test_flag_values_match_the_spec() -> None:
    assert (proto.FLAG_STREAM_START, proto.FLAG_END_OF_STREAM, proto.FLAG_GAP) == (1, 2, 4)
    assert proto.FLAG_CLIPPED == 8
    header = _header(flags=proto.FLAG_END_OF_STREAM | proto.FLAG_CLIPPED)
    assert header.has(proto.FLAG_END_OF_STREAM) and header.has(proto.FLAG_CLIPPED)
    assert not header.has(proto.FLAG_GAP) and not header.has(proto.FLAG_STREAM_START)


@pytest.fixture(params=[(1, 0), (2, 1), (2, 1000), (3, 17)], ids=lambda p: f"{p[0]}ch-{p[1]}")
def shape(request: pytest.FixtureRequest) -> tuple[int, int]:
    return request.param


@pytest.mark.parametrize("sample_format", ["float32", "int16"])
def test_pack_unpack_round_trip(
    shape: tuple[int, int], sample_format: str, rng: np.random.Generator
) -> None:
    n_channels, n_frames = shape
    x = (rng.standard_normal((n_frames, n_channels)) * 0.3).astype(np.float32)
    code = proto.SAMPLE_FORMATS[sample_format]
    header = _header(n_frames=n_frames, n_channels=n_channels, sample_format=code)
    frames = proto.pack_audio("audio.orca_vocals", header, x)
    assert len(frames) == 3
    assert len(frames[2]) == n_frames * n_channels * (4 if sample_format == "float32" else 2)
    topic, back, y = proto.unpack_audio(frames)
    assert topic == "audio.orca_vocals"
    assert back == header
    assert y.shape == (n_frames, n_channels) and y.dtype == np.float32
    if sample_format == "float32":
        np.testing.assert_array_equal(y, x)
    else:
        np.testing.assert_allclose(y, np.clip(x, -1, 1), atol=0.5 / 32767 + 1e-7, rtol=0)


def test_payload_is_interleaved_little_endian() -> None:
    x = np.array([[0.5, -0.25], [1.0, 2.0]], np.float32)
    raw = proto.encode_samples(x, proto.FORMAT_FLOAT32)
    assert struct.unpack("<4f", raw) == (0.5, -0.25, 1.0, 2.0)
    raw16 = proto.encode_samples(x, proto.FORMAT_INT16)
    assert struct.unpack("<4h", raw16) == (16384, -8192, 32767, 32767)


def test_int16_scaling_is_symmetric_and_clipped() -> None:
    x = np.array([[-2.0], [-1.0], [-0.5], [0.0], [1e-6], [0.5], [1.0], [3.0]], np.float32)
    ints = np.frombuffer(proto.encode_samples(x, proto.FORMAT_INT16), "<i2")
    np.testing.assert_array_equal(ints, [-32767, -32767, -16384, 0, 0, 16384, 32767, 32767])
    header = _header(n_frames=8, n_channels=1, sample_format=proto.FORMAT_INT16)
    y = proto.decode_samples(proto.encode_samples(x, proto.FORMAT_INT16), header)
    assert y[1, 0] == -1.0 and y[6, 0] == 1.0
    ramp = np.linspace(-1, 1, 100_001, dtype=np.float32)[:, None]
    header = _header(n_frames=ramp.shape[0], n_channels=1, sample_format=proto.FORMAT_INT16)
    err = proto.decode_samples(proto.encode_samples(ramp, proto.FORMAT_INT16), header) - ramp
    assert np.abs(err).max() <= 0.5 / 32767 + 1e-7


def _round_half_even(q: Fraction) -> int:
    floor = q.numerator // q.denominator
    rest = q - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2):
        return floor + 1
    return floor


def test_int16_follows_the_formula_exactly_at_half_lsb_boundaries() -> None:
    """``round(clip(x, -1, 1) * 32767)``, half to even, as the spec writes it: the float32
    values nearest to every (k + 0.5) / 32767 and their neighbours, against exact rational
    arithmetic. A float32 product rounds some of them the wrong way (error 0.5005 LSB)."""
    k = np.arange(-32767, 32767, dtype=np.float64)
    centre = ((k + 0.5) / 32767).astype(np.float32)
    x = np.concatenate([np.nextafter(centre, np.float32(-2)), centre, np.nextafter(centre, 2)])
    x = np.concatenate([x, np.float32([0.5 / 32767, -0.5 / 32767, 1.5 / 32767, 1, -1])])
    ints = np.frombuffer(proto.encode_samples(x[:, None], proto.FORMAT_INT16), "<i2")
    exact = [_round_half_even(Fraction(float(v)) * 32767) for v in x]
    np.testing.assert_array_equal(ints, exact)
    error = np.abs(ints - x.astype(np.float64) * 32767)
    assert error.max() <= 0.5
    float32_product = np.rint(x * np.float32(32767)).astype(np.int16)
    assert np.count_nonzero(float32_product != ints) > 0  # the bug this test guards against


def test_int16_of_non_finite_values() -> None:
    x = np.array([[np.nan], [np.inf], [-np.inf]], np.float32)
    ints = np.frombuffer(proto.encode_samples(x, proto.FORMAT_INT16), "<i2")
    np.testing.assert_array_equal(ints, [0, 32767, -32767])


def test_json_version_is_the_protocol_version_whatever_the_body_says() -> None:
    _, body = proto.decode_json(proto.encode_json("status", {"version": "0.1.0", "a": 1}))
    assert body == {"version": 1, "a": 1}


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda raw: b"XXXX" + raw[4:], "magic"),
        (lambda raw: raw[:4] + struct.pack("<H", 2) + raw[6:], "version"),
        (lambda raw: raw[:40], "expected >= 64 bytes"),
        (lambda raw: raw + b"\0\0\0\0", "header_size"),
        (lambda raw: raw[:62] + struct.pack("<H", 9), "sample format"),
    ],
)
def test_unpack_rejects_malformed_headers(mutate: object, message: str) -> None:
    raw = _header().pack()
    with pytest.raises(proto.ProtocolError, match=message):
        proto.AudioHeader.unpack(mutate(raw))  # type: ignore[operator]


def test_unpack_accepts_a_longer_compatible_header() -> None:
    raw = bytearray(_header(n_frames=1, n_channels=1).pack() + b"\1" * 16)
    raw[6:8] = struct.pack("<H", 80)
    assert proto.AudioHeader.unpack(bytes(raw)).n_frames == 1


def test_unpack_rejects_a_payload_of_the_wrong_size() -> None:
    frames = proto.pack_audio("audio.noise", _header(), np.zeros((3, 2), np.float32))
    with pytest.raises(proto.ProtocolError, match="payload: expected 24 bytes, got 20"):
        proto.unpack_audio([frames[0], frames[1], frames[2][:20]])
    with pytest.raises(proto.ProtocolError, match="expected 3 frames"):
        proto.unpack_audio(frames[:2])


def test_json_messages_round_trip() -> None:
    frames = proto.encode_json("levels", {"levels": {"noise": {"rms_dbfs": -240.0}}})
    topic, body = proto.decode_json(frames)
    assert topic == "levels" and body["version"] == 1
    assert body["levels"]["noise"]["rms_dbfs"] == -240.0
    with pytest.raises(ValueError):
        proto.encode_json("levels", {"x": math.inf})
    with pytest.raises(proto.ProtocolError):
        proto.decode_json([b"levels", b"[1, 2]"])


def test_dbfs_of_a_full_scale_sine_and_of_silence() -> None:
    t = np.arange(48000) / 48000
    sine = np.sin(2 * np.pi * 1000 * t)
    assert proto.level_dbfs(float(np.sqrt(np.mean(sine**2)))) == pytest.approx(-3.0103, abs=1e-3)
    assert proto.level_dbfs(1.0) == 0.0
    assert proto.level_dbfs(0.1) == pytest.approx(-20.0)
    assert proto.level_dbfs(0.0) == proto.SILENCE_DB == -240.0


def test_db_re_1upa_formula() -> None:
    # The worked example of docs/protocol.md section 6.
    spl = proto.dbfs_to_db_re_1upa(-20.0, -165.0, 20.0, 2.0)
    assert spl == pytest.approx(-20 + 20 * math.log10(2.0) - 20 + 165)
    assert spl == pytest.approx(131.0206, abs=1e-4)
    assert proto.dbfs_to_db_re_1upa(proto.SILENCE_DB, -165.0, 20.0, 2.0) == proto.SILENCE_DB


def test_level_meter_windows_and_calibration() -> None:
    meter = LevelMeter(["a", "b"], window_samples=100, calibration=Calibration(-165.0, 20.0, 2.0))
    a = np.full((60, 2), 0.1, np.float32)
    b = np.zeros((60, 2), np.float32)
    b[10, 1] = 0.5
    assert meter.add(0, [a, b]) is None
    first, n, levels = meter.add(60, [a, b])  # type: ignore[misc]
    assert (first, n) == (0, 120)
    assert levels["a"]["rms_dbfs"] == pytest.approx(-20.0, abs=1e-3)
    assert levels["a"]["peak_dbfs"] == pytest.approx(-20.0, abs=1e-3)
    assert levels["a"]["rms_db_re_1upa"] == pytest.approx(131.021, abs=1e-3)
    expected_rms = 20 * math.log10(math.sqrt(2 * 0.25 / 240))  # b was added twice
    assert levels["b"]["rms_dbfs"] == pytest.approx(expected_rms, abs=1e-3)
    assert levels["b"]["peak_dbfs"] == pytest.approx(-6.021, abs=1e-3)
    # A partial window is flushed at the end of the stream.
    assert meter.add(120, [a[:5], b[:5]], end=True)[:2] == (120, 5)  # type: ignore[index]
    assert meter.add(125, [a[:0], b[:0]], end=True) is None
