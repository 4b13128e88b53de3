"""Offline detection on audio files (``streamsep detect``): each file runs through the very
pipeline the daemon uses (ring -> analysis -> model -> synthesis -> output resampler back to the
file's rate) and the same :class:`~streamsep.events.detector.Detector`, so a file gives the
events a daemon playing it would give.

Times: indices count samples of the file from 0. A file named like an archive file
(``...YYYYmmddTHHMMSS.ffffffZ...``) gets UTC times from its name; others get none.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from streamsep.engine.offline import Separator
from streamsep.engine.outrate import OutputResampler
from streamsep.engine.pipeline import OutputChunk, Pipeline
from streamsep.errors import AudioFileError, ConfigError
from streamsep.events.detector import Detector, DetectorSettings, Event
from streamsep.events.record import utc_iso
from streamsep.sources.file import FileSource, file_info

__all__ = ["AUDIO_SUFFIXES", "FileEvent", "audio_files", "detect_file", "utc_of_name", "CSV_FIELDS"]

AUDIO_SUFFIXES: Final = (".wav", ".flac", ".ogg", ".aiff", ".aif")
_STAMP: Final = re.compile(r"(\d{8}T\d{6})\.(\d{6})Z")
_WAIT_SECONDS: Final = 0.2

CSV_FIELDS: Final = (
    "file", "start_index", "end_index", "peak_index", "sample_rate", "start_seconds",
    "end_seconds", "start_utc", "end_utc", "peak_utc", "duration_seconds", "active_seconds",
    "peak_score_db", "peak_level_dbfs", "band_low_hz", "band_high_hz", "peak_hz",
)  # fmt: skip
"""Columns of ``streamsep detect --out`` (one row per event)."""


@dataclass(frozen=True)
class FileEvent:
    """An event found in a file."""

    path: Path
    event: Event
    t0_ns: int | None
    """UTC of the file's first sample (from its name), or None."""

    def row(self) -> dict[str, object]:
        """The CSV row (:data:`CSV_FIELDS`)."""
        e, rate = self.event, self.event.sample_rate

        def utc(index: int) -> str:
            return "" if self.t0_ns is None else utc_iso(self.t0_ns + index * 1_000_000_000 // rate)

        return {
            "file": str(self.path), "start_index": e.start_index, "end_index": e.end_index,
            "peak_index": e.peak_index, "sample_rate": rate,
            "start_seconds": round(e.start_index / rate, 6),
            "end_seconds": round(e.end_index / rate, 6),
            "start_utc": utc(e.start_index), "end_utc": utc(e.end_index),
            "peak_utc": utc(e.peak_index),
            "duration_seconds": round(e.duration_seconds, 6), "active_seconds": e.active_seconds,
            "peak_score_db": e.peak_score_db, "peak_level_dbfs": e.peak_level_dbfs,
            "band_low_hz": e.band_low_hz, "band_high_hz": e.band_high_hz, "peak_hz": e.peak_hz,
        }  # fmt: skip


def utc_of_name(path: Path) -> int | None:
    """UTC ns of an archive-style stamp ``YYYYmmddTHHMMSS.ffffffZ`` in the file name."""
    match = _STAMP.search(path.name)
    if match is None:
        return None
    try:
        moment = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(
            tzinfo=dt.timezone.utc
        )
    except ValueError:
        return None
    return int(moment.timestamp()) * 1_000_000_000 + int(match.group(2)) * 1000


def audio_files(inputs: Sequence[str | Path]) -> list[Path]:
    """The files of ``inputs`` (folders searched recursively for audio files, sorted).

    Raises
    ------
    AudioFileError
        If an input does not exist or a folder holds no audio file.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
            )
            if not found:
                raise AudioFileError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {path}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise AudioFileError(f"input not found: {path}")
    return files


class _DetectSink:
    def __init__(
        self,
        detector: Detector,
        orca: int,
        noise: int | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.detector = detector
        self.orca = orca
        self.noise = noise
        self.progress = progress
        self.events: list[Event] = []

    def write(self, chunk: OutputChunk) -> None:
        noise = chunk.stems[self.noise] if self.noise is not None else None
        self.events += self.detector.feed(chunk.start_index, chunk.stems[self.orca], noise)
        if chunk.end_of_stream:
            self.events += self.detector.flush()
        if self.progress is not None:
            self.progress(chunk.start_index + chunk.n_samples)

    def close(self) -> None:
        pass


def detect_file(
    path: Path,
    separator: Separator,
    settings: DetectorSettings,
    *,
    orca_stem: str = "orca_vocals",
    noise_stem: str = "noise",
    progress: Callable[[int], None] | None = None,
) -> list[FileEvent]:
    """The events of one file (see the module docstring).

    Parameters
    ----------
    progress : callable, optional
        Called with the samples of the file done so far (on the pipeline's thread).

    Raises
    ------
    AudioFileError, ConfigError
        On an unreadable file or a stem the model lacks.
    """
    stems = list(separator.params.instrument_list)
    for name in (orca_stem, noise_stem):
        if name and name not in stems:
            raise ConfigError(f"the model has no stem {name!r} (stems: {stems})")
    rate, n_channels, n_samples = file_info(path)
    sink = _DetectSink(
        Detector(settings, rate), stems.index(orca_stem),
        stems.index(noise_stem) if noise_stem else None, progress,
    )  # fmt: skip
    params = separator.params
    output = OutputResampler(
        sink, params.sample_rate, rate, params.n_stems, params.n_channels,
        total_samples=lambda: n_samples,
    )  # fmt: skip
    pipeline = Pipeline(
        separator.model,
        separator.stream,
        source_rate=rate,
        source_channels=n_channels,
        sinks=[output],
    )
    source = FileSource(path, pipeline.ring, realtime=False, loops=1)
    pipeline.start()
    source.start()
    try:
        while not pipeline.wait(_WAIT_SECONDS):
            pass
    finally:
        source.stop()
        pipeline.stop()
        pipeline.join(5.0)
    t0 = utc_of_name(path)
    return [FileEvent(path, event, t0) for event in sink.events]


def iter_rows(events: Sequence[FileEvent]) -> Iterator[dict[str, object]]:
    """CSV rows of ``events``."""
    for e in events:
        yield e.row()
