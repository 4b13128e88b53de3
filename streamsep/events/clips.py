"""Clips of events: the mix and the orca stem from ``pre_roll`` before an event's start to
``post_roll`` after its end, sample-exact on the stream's indices.

:class:`ClipAssembler` runs on the thread that feeds the detector (the daemon's synthesis
thread): it keeps a short history of the two signals and hands each finished clip, as arrays,
to a writer (:mod:`streamsep.events.store`). :func:`write_clip` turns the arrays into FLAC.

Sample values: with ``int16`` publishing the file holds exactly the published 16-bit integers
(``round(clip(x, -1, 1) * 32767)``, read them back as ``int16``); with ``float32`` it holds
24-bit integers ``round(x * 2**23)`` (values outside [-1, 1) clipped), within half a 24-bit
step of the published floats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from streamsep.net import protocol as proto

__all__ = ["Clip", "ClipAssembler", "write_clip"]

_MARGIN_SECONDS: Final = 10.0  # history kept beyond the pre-roll while no event is open


@dataclass
class Clip:
    """Audio of one event: ``signals[name]`` has shape (n_samples, n_channels), float32, and
    covers stream indices ``[first_index, first_index + n_samples)``."""

    event_id: str
    first_index: int
    signals: dict[str, NDArray[np.float32]]

    @property
    def n_samples(self) -> int:
        """Samples per channel."""
        return int(next(iter(self.signals.values())).shape[0])


@dataclass
class _Pending:
    event_id: str
    first: int
    last: int  # exclusive


class ClipAssembler:
    """Collects the audio of events until their post-roll has passed.

    Parameters
    ----------
    names : tuple of str
        Names of the signals given to :meth:`add` (e.g. ``("mix", "orca_vocals")``).
    sample_rate : int
        Hz.
    pre_roll_seconds, post_roll_seconds, max_clip_seconds : float
        Clip extent (see :class:`~streamsep.events.settings.EventsSettings`).
    emit : callable
        Receives each finished :class:`Clip` (must not block).

    Not thread-safe: one thread calls everything.
    """

    def __init__(
        self,
        names: tuple[str, ...],
        sample_rate: int,
        pre_roll_seconds: float,
        post_roll_seconds: float,
        max_clip_seconds: float,
        emit: Callable[[Clip], None],
    ) -> None:
        self.names = names
        self.pre_roll = round(pre_roll_seconds * sample_rate)
        self.post_roll = round(post_roll_seconds * sample_rate)
        self.max_clip = max(1, round(max_clip_seconds * sample_rate))
        self.margin = round(_MARGIN_SECONDS * sample_rate)
        self._emit = emit
        self._history: list[tuple[int, tuple[NDArray[np.float32], ...]]] = []
        self._pending: list[_Pending] = []
        self._end = 0  # index after the newest sample

    @property
    def history_samples(self) -> int:
        """Samples per signal held now."""
        return sum(block[0].shape[0] for _, block in self._history)

    def add(
        self, start_index: int, signals: tuple[NDArray[np.float32], ...], open_start: int | None
    ) -> None:
        """Keep a copy of aligned ``signals`` from ``start_index`` (same order as ``names``);
        ``open_start`` is the start index of the detector's open event, if any."""
        n = signals[0].shape[0]
        if n:
            self._history.append(
                (start_index, tuple(np.array(s, dtype=np.float32) for s in signals))
            )
            self._end = start_index + n
        self._finish(final=False)
        keep = self._end - self.pre_roll - self.margin
        if open_start is not None:
            keep = min(
                keep, max(open_start - self.pre_roll, self._end - self.max_clip - self.pre_roll)
            )
        for p in self._pending:
            keep = min(keep, p.first)
        while self._history and self._history[0][0] + self._history[0][1][0].shape[0] <= keep:
            self._history.pop(0)

    def event(self, event_id: str, start_index: int, end_index: int) -> None:
        """An event ended: its clip is emitted once ``post_roll`` more samples have arrived."""
        oldest = self._history[0][0] if self._history else start_index
        first = max(oldest, start_index - self.pre_roll)
        last = min(end_index + self.post_roll, first + self.max_clip)
        self._pending.append(_Pending(event_id, first, last))
        self._finish(final=False)

    def flush(self) -> None:
        """End of stream: emit every pending clip, cut at the last sample."""
        self._finish(final=True)
        self._history.clear()

    def _finish(self, final: bool) -> None:
        done = [p for p in self._pending if final or self._end >= p.last]
        for p in done:
            self._pending.remove(p)
            clip = self._cut(p.event_id, p.first, min(p.last, self._end))
            if clip is not None:
                self._emit(clip)

    def _cut(self, event_id: str, first: int, last: int) -> Clip | None:
        parts: list[list[NDArray[np.float32]]] = [[] for _ in self.names]
        start = None
        for index, block in self._history:
            n = block[0].shape[0]
            a, b = max(first, index), min(last, index + n)
            if a >= b:
                continue
            if start is None:
                start = a
            for part, signal in zip(parts, block, strict=True):
                part.append(signal[a - index : b - index])
        if start is None:
            return None
        return Clip(
            event_id,
            start,
            {name: np.concatenate(p) for name, p in zip(self.names, parts, strict=True)},
        )


def write_clip(
    path: Path, samples: NDArray[np.float32], sample_rate: int, sample_format: str
) -> int:
    """Write one signal of a clip as FLAC (``path`` gets ``.part`` until complete); returns
    the file's size in bytes.

    Raises
    ------
    OSError, soundfile.LibsndfileError
        If the file cannot be written.
    """
    x = np.asarray(samples, dtype=np.float64)
    ints: Any
    if sample_format == "int16":  # the publisher's own encoding: the same integers
        payload = proto.encode_samples(samples, proto.FORMAT_INT16)
        ints = np.frombuffer(payload, dtype="<i2").reshape(x.shape).astype(np.int16)
        subtype = "PCM_16"
    else:
        scale = float(2**23)
        ints = (np.clip(np.rint(x * scale), -scale, scale - 1).astype(np.int32)) << 8
        subtype = "PCM_24"
    part = path.with_name(path.name + ".part")
    with sf.SoundFile(str(part), "w", sample_rate, x.shape[1], subtype=subtype, format="FLAC") as f:
        f.write(ints)
    part.replace(path)
    return path.stat().st_size
