"""Raw archive: lossless FLAC files rolled by sample count, no sample missing or duplicated,
named by the UTC time of their first sample, a new file after every gap, and a disk-space
guard that stops archiving loudly (the end-to-end test through JACK is in test_daemon)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamsep.daemon.archive import ArchiveSettings, RawArchive, check_margin, file_name
from streamsep.engine.clock import CaptureClock
from streamsep.errors import ConfigError

from .jack import wait_for

RATE = 1000
T0_NS = 1_795_000_000_123_456_789  # 2026-11-18T11:06:40.123456789Z


def _counter(first: int, n: int, channels: int = 2) -> np.ndarray:
    k = np.arange(first, first + n, dtype=np.int64)
    x = ((k % 1_000_000) - 500_000).astype(np.float32) / np.float32(2**23)
    return np.stack([x, -x][:channels], axis=1)


def _archive(tmp_path: Path, **kwargs: object) -> RawArchive:
    settings = ArchiveSettings(
        enabled=True,
        directory=str(tmp_path / "archive"),
        file_seconds=0.25,
        min_free_mb=0,
        **kwargs,  # type: ignore[arg-type]
    )
    return RawArchive(settings, sample_rate=RATE, n_channels=2, clock=CaptureClock(RATE, T0_NS))


def _read(paths: list[Path], dtype: str = "int32") -> list[np.ndarray]:
    return [sf.read(str(p), dtype=dtype, always_2d=True)[0] for p in paths]


def test_files_concatenated_equal_the_input(tmp_path: Path, rng: np.random.Generator) -> None:
    archive = _archive(tmp_path)
    archive.start()
    index = 0
    while index < 1234:
        n = int(rng.integers(1, 300))
        archive.write(index, _counter(index, n))
        index += n
    archive.stop()
    files = sorted((tmp_path / "archive").iterdir())
    sizes = [250] * (index // 250) + ([index % 250] if index % 250 else [])
    assert [p.suffix for p in files] == [".flac"] * len(sizes)  # no .part left
    pieces = _read(files)
    assert [p.shape[0] for p in pieces] == sizes
    archived = np.concatenate(pieces).astype(np.float64) / 2**31
    assert np.array_equal(archived, _counter(0, index).astype(np.float64))
    # Named by the UTC time of the first sample: 250 ms apart.
    assert files[0].name == file_name("", T0_NS) == "20261118T110640.123456Z.flac"
    assert files[1].name == "20261118T110640.373456Z.flac"
    assert archive.stats.files == len(sizes) and archive.stats.samples_written == index
    assert archive.stats.bytes_written == sum(p.stat().st_size for p in files)
    assert sf.info(str(files[0])).subtype == "PCM_24"


def test_a_gap_starts_a_new_file(tmp_path: Path) -> None:
    archive = _archive(tmp_path, prefix="lab_")
    archive.start()
    archive.write(0, _counter(0, 300))
    archive.write(800, _counter(800, 100))  # samples 300..799 were lost upstream
    archive.stop()
    files = sorted((tmp_path / "archive").iterdir())
    assert [p.name for p in files] == [
        "lab_20261118T110640.123456Z.flac",  # 0..249
        "lab_20261118T110640.373456Z.flac",  # 250..299, cut short by the gap
        "lab_20261118T110640.923456Z.flac",  # 800..899
    ]
    pieces = _read(files)
    assert [p.shape[0] for p in pieces] == [250, 50, 100]
    archived = np.concatenate(pieces).astype(np.float64) / 2**31
    expected = np.concatenate([_counter(0, 300), _counter(800, 100)]).astype(np.float64)
    assert np.array_equal(archived, expected)


def test_disk_guard_stops_and_resumes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    free = [10 * 2**20]
    settings = ArchiveSettings(
        enabled=True, directory=str(tmp_path / "a"), file_seconds=0.25, min_free_mb=5
    )
    archive = RawArchive(
        settings,
        sample_rate=RATE,
        n_channels=2,
        clock=CaptureClock(RATE, T0_NS),
        disk_free=lambda path: free[0],
    )
    archive.start()
    archive.write(0, _counter(0, 100))
    wait_for(lambda: archive.stats.samples_written == 100, 10, "the first block written")
    free[0] = 4 * 2**20  # below min_free_mb: stop, loudly
    with caplog.at_level(logging.ERROR, logger="streamsep.daemon.archive"):
        archive.write(100, _counter(100, 100))
        wait_for(lambda: archive.stats.stopped, 10, "the disk guard")
    assert "archive: STOPPED: only 4.0 MiB free" in caplog.text
    free[0] = int(5.2 * 2**20)  # above min_free_mb but not 10 % above it: still stopped
    archive.write(200, _counter(200, 100))
    wait_for(lambda: archive.stats.samples_dropped == 200, 10, "a dropped block")
    assert archive.stats.stopped
    free[0] = 100 * 2**20
    archive.write(300, _counter(300, 100))
    archive.stop()
    assert not archive.stats.stopped and archive.stats.samples_written == 200
    files = sorted((tmp_path / "a").iterdir())
    assert [p.shape[0] for p in _read(files)] == [100, 100]  # a new file after the hole


def test_full_queue_drops_and_counts(tmp_path: Path) -> None:
    archive = _archive(tmp_path, queue_seconds=0.5)  # 500 samples; the writer is not started
    archive.write(0, _counter(0, 400))
    archive.write(400, _counter(400, 200))
    assert archive.stats.samples_dropped == 200 and archive.queue_samples == 400
    archive.start()
    archive.write(600, _counter(600, 100))
    archive.stop()
    files = sorted((tmp_path / "archive").iterdir())
    assert [p.shape[0] for p in _read(files)] == [250, 150, 100]  # the hole starts a file


def test_sixteen_bits_and_clipping(tmp_path: Path) -> None:
    archive = _archive(tmp_path, bits_per_sample=16)
    archive.start()
    x = np.array([[0.5, -1.0], [1.0, 2.0**-15]], dtype=np.float32)
    archive.write(0, x)
    archive.stop()
    (path,) = (tmp_path / "archive").iterdir()
    assert sf.info(str(path)).subtype == "PCM_16"
    y = sf.read(str(path), dtype="int16")[0]
    assert y.tolist() == [[16384, -32768], [32767, 1]]
    assert archive.stats.samples_clipped == 1


def test_unwritable_folder_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="archive.directory: cannot write in"):
        RawArchive(
            ArchiveSettings(enabled=True, directory=str(tmp_path / "file" / "sub")),
            sample_rate=RATE,
            n_channels=1,
            clock=CaptureClock(RATE, T0_NS),
        )


def test_settings_checks() -> None:
    with pytest.raises(ConfigError, match="archive.file_seconds must be a number > 0, got 0"):
        ArchiveSettings(file_seconds=0)
    with pytest.raises(ConfigError, match="archive.prefix must be a name without path"):
        ArchiveSettings(prefix="a/b")


def _fill(
    directory: Path, disk_free: object = None, min_free_mb: float = 3
) -> tuple[RawArchive, int]:
    """20 s of incompressible 48 kHz stereo 24-bit noise (5.8 MB as FLAC) into ``directory``
    with ``min_free_mb = 3``; returns the stopped archive and the samples offered."""
    rate = 48000
    settings = ArchiveSettings(
        enabled=True,
        directory=str(directory),
        file_seconds=2.0,
        min_free_mb=min_free_mb,
        queue_seconds=30,
    )
    archive = RawArchive(
        settings,
        sample_rate=rate,
        n_channels=2,
        clock=CaptureClock(rate, T0_NS),
        disk_free=disk_free,  # type: ignore[arg-type]
    )
    noise = np.random.default_rng(11).uniform(-1, 1, (20 * rate, 2)).astype(np.float32)
    archive.start()
    for index in range(0, noise.shape[0], 1024):
        archive.write(index, noise[index : index + 1024])
    archive.stop()
    return archive, noise.shape[0]


def _check_margin_kept(
    archive: RawArchive, offered: int, free_after: int, caplog: pytest.LogCaptureFixture
) -> None:
    stats = archive.stats
    assert free_after >= 3 * 2**20, f"only {free_after / 2**20:.2f} MiB left free"
    assert stats.stopped and stats.samples_written > 0
    assert stats.samples_written + stats.samples_dropped == offered  # every sample counted
    stopped = [r for r in caplog.records if "archive: STOPPED" in r.getMessage()]
    assert len(stopped) == 1, caplog.text  # logged once, not per block
    files = sorted(archive.directory.iterdir())
    assert not [p for p in files if p.name.endswith(".part")]
    assert sum(sf.info(str(p)).frames for p in files) == stats.samples_written


def test_disk_guard_keeps_its_margin_on_a_small_disk(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 5 MiB disk simulated through the free-space seam (what the files occupy): the
    archive stops before fewer than ``min_free_mb = 3`` MiB are left."""
    directory = tmp_path / "small"
    directory.mkdir()
    size = 5 * 2**20

    def disk_free(path: Path) -> int:
        return size - sum(p.stat().st_blocks * 512 for p in path.iterdir())

    with caplog.at_level(logging.ERROR, logger="streamsep.daemon.archive"):
        archive, offered = _fill(directory, disk_free)
    _check_margin_kept(archive, offered, disk_free(directory), caplog)


@pytest.fixture
def tmpfs_5mib(tmp_path: Path) -> Iterator[Path]:
    """A real 5 MiB tmpfs (needs root and ``mount``; skipped otherwise)."""
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_disk_guard_keeps_its_margin_on_a_5_mib_tmpfs(
    tmpfs_5mib: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="streamsep.daemon.archive"):
        archive, offered = _fill(tmpfs_5mib / "archive")
    _check_margin_kept(archive, offered, shutil.disk_usage(tmpfs_5mib).free, caplog)


def test_margin_beyond_the_disk_is_a_config_error(tmp_path: Path) -> None:
    total_mb = shutil.disk_usage(tmp_path).total / 2**20
    settings = ArchiveSettings(enabled=True, directory=str(tmp_path / "a"), min_free_mb=total_mb)
    with pytest.raises(ConfigError, match=r"archive.min_free_mb = .* is more than the whole disk"):
        check_margin(settings)
    with pytest.raises(ConfigError, match="more than the whole disk"):
        RawArchive(settings, sample_rate=RATE, n_channels=1, clock=CaptureClock(RATE, T0_NS))
    check_margin(ArchiveSettings(enabled=True, directory=str(tmp_path / "a"), min_free_mb=1))


def test_a_full_disk_is_survived(tmpfs_5mib: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Another writer fills the disk (here: the free-space check is told the disk is empty):
    writes fail with ENOSPC; the writer thread logs one line, counts the samples and keeps
    going; no traceback. (With ``min_free_mb = 0`` the guard alone stops before 100 %.)"""
    with caplog.at_level(logging.WARNING, logger="streamsep.daemon.archive"):
        archive, offered = _fill(tmpfs_5mib / "archive", lambda path: 1 << 40, min_free_mb=0)
    stats = archive.stats
    assert stats.samples_written > 0 and stats.samples_dropped > 0
    assert stats.samples_written + stats.samples_dropped == offered
    failures = [r for r in caplog.records if "archive: write failed" in r.getMessage()]
    assert 1 <= len(failures) <= 2, caplog.text  # then retried every 10 s
    assert not any(r.exc_info for r in caplog.records)


def test_zero_margin_still_stops_before_the_disk_is_full(
    tmpfs_5mib: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="streamsep.daemon.archive"):
        archive, offered = _fill(tmpfs_5mib / "archive", min_free_mb=0)
    assert archive.stats.stopped and shutil.disk_usage(tmpfs_5mib).free > 0
    assert "write failed" not in caplog.text
