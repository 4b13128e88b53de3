"""The file source: a WAV header's declared length, and a file that ends early marking the
samples never read as a gap at the end of the ring (the daemon and the CLI: test_daemon.py,
test_cli.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamsep.engine.ringbuffer import RingBuffer
from streamsep.errors import AudioFileError
from streamsep.sources.file import FileSource, declared_samples

from ._daemon import damaged_file


def test_declared_samples(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros((1000, 2), np.float32), 8000, subtype="PCM_24")
    assert declared_samples(wav) == 1000
    data = wav.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    assert declared_samples(tmp_path / "cut.wav") == 1000  # the header's, not the bytes'
    # A chunk of odd size before "data" is padded to an even size.
    odd = data[:12] + b"junk" + struct.pack("<I", 3) + b"abc\0" + data[12:]
    (tmp_path / "odd.wav").write_bytes(odd)
    assert declared_samples(tmp_path / "odd.wav") == 1000
    streamed = bytearray(data)
    streamed[data.index(b"data") + 4 : data.index(b"data") + 8] = b"\xff\xff\xff\xff"
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    assert declared_samples(tmp_path / "streamed.wav") is None  # length unknown
    sf.write(tmp_path / "a.flac", np.zeros((1000, 1), np.float32), 8000)
    assert declared_samples(tmp_path / "a.flac") is None  # libsndfile knows a FLAC's length
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00")
    assert declared_samples(tmp_path / "junk.wav") is None
    assert declared_samples(tmp_path / "absent.wav") is None


@pytest.mark.parametrize("damage", ["cut_wav", "corrupt_flac"])
def test_damaged_file_ends_with_a_gap_in_the_ring(tmp_path: Path, damage: str) -> None:
    path, readable = damaged_file(tmp_path, damage, 30000, 16000)
    ring = RingBuffer(100000, 2)
    source = FileSource(path, ring, loops=3)  # the stream ends at the first damaged pass
    source.start()
    source.join(10)
    assert source.done.is_set()
    assert isinstance(source.error, AudioFileError)
    assert source.samples_written == readable and source.samples_lost == 30000 - readable
    received, lost = 0, 0
    while True:
        result = ring.read(100000, timeout=1)
        if result.samples.shape[0] == 0 and result.lost_before == 0:
            break
        assert received + lost == result.start_index - result.lost_before
        received += result.samples.shape[0]
        lost += result.lost_before
    assert (received, lost) == (readable, 30000 - readable)  # the gap comes last


def test_whole_file_loops_without_loss(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.flac", np.zeros((5000, 2), np.float32), 16000)
    ring = RingBuffer(100000, 2)
    source = FileSource(tmp_path / "a.flac", ring, loops=3)
    source.start()
    source.join(10)
    assert source.error is None and source.samples_lost == 0
    assert source.samples_written == 15000 and ring.available == 15000
