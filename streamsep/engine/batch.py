"""Whole files and arrays through the streaming engine in bounded pieces.

A :class:`StreamJob` takes input at its own rate in pieces of any size: non-finite and extreme
samples are repaired (:mod:`streamsep.engine.sanitize`), channels adapted, the audio resampled
to the model rate (soxr, streaming), separated by a
:class:`~streamsep.engine.streamer.BlockSeparator`, the latency dropped, and the stems
resampled back to the input rate; it returns as many samples as it was given (the tail at
:meth:`StreamJob.finish`). Memory does not depend on the input's length.

:func:`separate_file` runs a file through it from a ``soundfile`` reader to one writer per
stem; outputs are written to hidden ``.partial`` files renamed into place at the end, and
removed on any failure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from streamsep.engine.audio import StreamResampler, adapt_channels
from streamsep.engine.sanitize import InputGuard
from streamsep.engine.streamer import PIECE_SAMPLES, BlockSeparator
from streamsep.errors import AudioFileError

__all__ = [
    "BLOCK_SAMPLES",
    "SeparationReport",
    "StreamJob",
    "StemWriter",
    "separate_file",
    "check_inputs",
    "plan_outputs",
]

_LOGGER = logging.getLogger(__name__)

BLOCK_SAMPLES: Final = PIECE_SAMPLES
"""Input samples read and separated per piece (the engine's piece size)."""

_WAV_LIMIT_BYTES: Final = (1 << 32) - (1 << 20)
"""Beyond this a RIFF WAV cannot hold the data: such outputs are written as RF64."""

ProgressCallback = Callable[[int, int], None]
"""Called with (input samples done, input samples total)."""


@dataclass(frozen=True)
class SeparationReport:
    """What happened to one input."""

    n_samples: int
    """Input samples (frames) read, at the input rate."""
    samples_filled: int
    """Input frames that held NaN or Inf and were replaced by silence."""
    samples_clipped: int
    """Input values clipped to ``+-MAX_ABS_SAMPLE``."""
    blocks_replaced: int
    """Model blocks whose output was not finite, replaced by uniform masks."""

    def summary(self) -> str:
        """A short note of the repairs, empty if there were none."""
        notes = []
        if self.samples_filled:
            notes.append(f"{self.samples_filled} non-finite sample(s) replaced by silence")
        if self.samples_clipped:
            notes.append(f"{self.samples_clipped} value(s) clipped")
        if self.blocks_replaced:
            notes.append(f"{self.blocks_replaced} non-finite model block(s) replaced")
        return "; ".join(notes)


class StreamJob:
    """One input stream at ``sample_rate`` through ``engine`` and back to ``sample_rate``.

    Parameters
    ----------
    engine : BlockSeparator
        Reset here; not to be used by anyone else until :meth:`finish`.
    sample_rate : int
        Rate of the input and of the output, Hz.
    what : str
        Names the input in log messages.

    Not thread-safe.
    """

    def __init__(self, engine: BlockSeparator, sample_rate: int, what: str = "input") -> None:
        self.engine = engine
        self.params = params = engine.params
        engine.reset()
        self._blocks_before = engine.mask_guard.blocks_replaced
        self.guard = InputGuard(sample_rate, what)
        self._to_model = StreamResampler(sample_rate, params.sample_rate, params.n_channels)
        self._back = StreamResampler(
            params.sample_rate, sample_rate, params.n_stems * params.n_channels
        )
        self._skip = engine.latency_samples
        self.n_in = 0
        """Input samples given so far."""
        self.n_out = 0
        """Output samples returned so far."""

    def feed(self, block: NDArray[np.floating]) -> NDArray[np.float32]:
        """Separate ``block`` (n_samples, n_channels) at the input rate.

        Returns
        -------
        ndarray, shape (n_stems, m, model n_channels), float32
            The next ``m`` output samples (``m`` lags the input by the latency).
        """
        x = np.asarray(block)
        if x.ndim == 1:
            x = x[:, None]
        self.n_in += x.shape[0]
        clean, _ = self.guard.process(x)
        model_rate = self._to_model.process(adapt_channels(clean, self.params.n_channels))
        return self._out(self.engine.feed(model_rate), last=False)

    def finish(self) -> NDArray[np.float32]:
        """Drain everything: the rest of the output, so that ``n_out == n_in``."""
        p = self.params
        tail = self._to_model.process(np.zeros((0, p.n_channels), np.float32), last=True)
        stems = np.concatenate([self.engine.feed(tail), self.engine.flush()], axis=1)
        out = self._out(stems, last=True)
        missing = self.n_in - self.n_out
        if missing > 0:  # the resamplers can come out a sample short
            pad = np.zeros((p.n_stems, missing, p.n_channels), np.float32)
            out = np.concatenate([out, pad], axis=1)
            self.n_out += missing
        return out

    def report(self) -> SeparationReport:
        """Counts of this input's repairs."""
        return SeparationReport(
            self.n_in,
            self.guard.samples_filled,
            self.guard.samples_clipped,
            self.engine.mask_guard.blocks_replaced - self._blocks_before,
        )

    def _out(self, stems: NDArray[np.float32], last: bool) -> NDArray[np.float32]:
        n_stems, _, n_channels = stems.shape
        if self._skip:  # the first latency_samples precede the input's start
            k = min(self._skip, stems.shape[1])
            stems = stems[:, k:]
            self._skip -= k
        room = max(0, self.n_in - self.n_out)  # never more out than in
        if self._back.identity:
            out = stems[:, :room]
            self.n_out += out.shape[1]
            return out
        joined = np.ascontiguousarray(stems.transpose(1, 0, 2)).reshape(-1, n_stems * n_channels)
        back = self._back.process(joined, last=last)[:room]
        self.n_out += back.shape[0]
        return np.ascontiguousarray(back.reshape(-1, n_stems, n_channels).transpose(1, 0, 2))


class StemWriter:
    """Writes one output file through a hidden ``.partial`` file next to it.

    :meth:`commit` renames it into place; :meth:`abort` closes and removes it. Write errors
    become :class:`AudioFileError` naming the file.
    """

    def __init__(self, path: Path, sample_rate: int, n_channels: int, n_frames: int) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.partial")
        flac = path.suffix.lower() == ".flac"
        self._clip = flac
        if flac:
            kind, subtype = "FLAC", "PCM_24"
        else:
            big = n_frames * n_channels * 4 > _WAV_LIMIT_BYTES
            kind, subtype = ("RF64" if big else "WAV"), "FLOAT"
        self._committed = False
        try:
            self._file: sf.SoundFile | None = sf.SoundFile(
                str(self.partial), "w", sample_rate, n_channels, subtype, format=kind
            )
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise AudioFileError(f"cannot write audio file {path}: {_reason(e, path)}") from e

    def write(self, audio: NDArray[np.float32]) -> None:
        """Append ``audio`` (n_samples, n_channels)."""
        assert self._file is not None
        data = np.clip(audio, -1.0, 1.0 - 2.0**-23) if self._clip else audio
        try:
            self._file.write(data)
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise AudioFileError(
                f"cannot write audio file {self.path}: {_reason(e, self.path)}"
            ) from e

    def close(self) -> None:
        """Finish writing the partial file."""
        assert self._file is not None
        try:
            self._file.close()
            self._file = None
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise AudioFileError(
                f"cannot write audio file {self.path}: {_reason(e, self.path)}"
            ) from e

    def commit(self) -> None:
        """Rename the closed partial file into place."""
        try:
            os.replace(self.partial, self.path)
            self._committed = True
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise AudioFileError(
                f"cannot write audio file {self.path}: {_reason(e, self.path)}"
            ) from e

    def abort(self) -> None:
        """Close and remove the partial file, or the committed one (never raises)."""
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            (self.path if self._committed else self.partial).unlink()


def _reason(error: BaseException, path: Path) -> str:
    """A short reason; libsndfile says only "System error." for a full disk."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    text = str(error).strip().rstrip(".") or type(error).__name__
    with contextlib.suppress(OSError):
        if os.statvfs(path.parent).f_bavail == 0:
            return f"{text} (no space left on device)"
    return text


def separate_file(
    engine: BlockSeparator,
    path: Path,
    outputs: Mapping[str, Path],
    *,
    progress: ProgressCallback | None = None,
) -> SeparationReport:
    """Separate the audio file ``path`` into ``outputs`` (``{stem: file}``), in bounded pieces.

    The stems are written at the input's rate and length, WAV as 32-bit float (RF64 beyond
    4 GiB), FLAC as 24-bit. On any failure no output file of this input is left behind.

    Raises
    ------
    AudioFileError
        If the input cannot be read or an output cannot be written.
    """
    names = list(engine.params.instrument_list)
    if sorted(outputs) != sorted(names):
        raise ValueError(f"outputs must name the stems {names}, got {sorted(outputs)}")
    try:
        reader = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioFileError(f"cannot read audio file {path}: {e}") from e
    writers: list[StemWriter] = []
    with reader:
        rate, total = int(reader.samplerate), max(0, int(reader.frames))
        try:
            for name in names:
                writers.append(StemWriter(outputs[name], rate, engine.params.n_channels, total))
            job = StreamJob(engine, rate, path.name)
            while True:
                try:
                    block = reader.read(BLOCK_SAMPLES, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as e:
                    raise AudioFileError(f"cannot read audio file {path}: {e}") from e
                if block.shape[0] == 0:
                    break
                _write(writers, job.feed(block))
                if progress is not None:
                    progress(job.n_in, max(total, job.n_in))
            _write(writers, job.finish())
            for writer in writers:
                writer.close()
            for writer in writers:
                writer.commit()
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
    report = job.report()
    if report.n_samples < total:
        _LOGGER.warning("%s: header says %d samples, read %d", path, total, report.n_samples)
    return report


def _write(writers: list[StemWriter], stems: NDArray[np.float32]) -> None:
    if stems.shape[1]:
        for writer, stem in zip(writers, stems, strict=True):
            writer.write(stem)


def check_inputs(paths: list[Path]) -> None:
    """Refuse inputs that are missing or not readable audio files (reads only headers).

    Raises
    ------
    AudioFileError
        Naming the first bad input.
    """
    for path in paths:
        if not path.is_file():
            what = "not a regular file" if path.exists() else "not found"
            raise AudioFileError(f"input {what}: {path}")
        try:
            sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise AudioFileError(f"cannot read audio file {path}: {e}") from e


def plan_outputs(
    inputs: list[Path], out_root: Path, stems: list[str], suffix: str
) -> list[dict[str, Path]]:
    """Output files ``out_root/<input stem>/<stem>.<suffix>`` of each input, checked and their
    folders created before any work: the folders must be creatable and writable, no two inputs
    may share one, and no output may be a folder.

    Raises
    ------
    AudioFileError
        Naming the first output that cannot be written.
    """
    if out_root.exists() and not out_root.is_dir():
        raise AudioFileError(f"output folder {out_root} exists and is not a folder")
    plans: list[dict[str, Path]] = []
    owners: dict[Path, Path] = {}
    for path in inputs:
        folder = out_root / path.stem
        if folder in owners:
            raise AudioFileError(
                f"inputs {owners[folder]} and {path} would both write to {folder}/"
            )
        owners[folder] = path
        plans.append({name: folder / f"{name}.{suffix}" for name in stems})
    for folder, plan in zip(owners, plans, strict=True):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder, prefix=".streamsep-probe"):
                pass
        except OSError as e:
            reason = (e.strerror or str(e)).lower()
            raise AudioFileError(f"cannot write to output folder {folder}: {reason}") from None
        for target in plan.values():
            if target.is_dir():
                raise AudioFileError(f"output {target} exists and is a folder")
    return plans
