"""A sink wrapper that converts the pipeline's output from the model rate to another rate.

The pipeline hands out :class:`~streamsep.engine.pipeline.OutputChunk` objects at the model rate; a
live daemon publishes at the capture rate (48, 96, 192 kHz...), so that a subscriber's sample
``i`` is the input's sample ``i``. soxr's streaming resampler is delay-compensated, so the
``k``-th output sample is the converted signal at ``k / to_rate`` seconds and ``start_index``
is simply the count of samples emitted before. At the end of the stream the output can be cut
or padded to an exact length (the number of samples captured), so that the last published
index equals the last captured one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.audio import StreamResampler
from streamsep.engine.pipeline import OutputChunk, Sink

__all__ = ["OutputResampler"]


class OutputResampler:
    """Resamples every chunk (stems, mix, gap positions) and forwards it to ``sink``.

    A :class:`~streamsep.engine.pipeline.Sink`; :meth:`write` and :meth:`close` run on the
    pipeline's
    synthesis thread. Not thread-safe otherwise.

    Parameters
    ----------
    sink : Sink
        Receives the converted chunks (e.g. the publisher).
    from_rate, to_rate : int
        Model rate and output rate, Hz.
    n_stems, n_channels : int
        Shape of the chunks' stems: (n_stems, n_samples, n_channels).
    total_samples : callable, optional
        Returns the exact output length of the whole stream (read at the end of stream); the
        last chunk is cut or zero-padded to it.
    on_chunk : callable, optional
        Called with each converted chunk before it is forwarded (latency metering).
    """

    def __init__(
        self,
        sink: Sink,
        from_rate: int,
        to_rate: int,
        n_stems: int,
        n_channels: int,
        *,
        total_samples: Callable[[], int] | None = None,
        on_chunk: Callable[[OutputChunk], None] | None = None,
    ) -> None:
        self.sink = sink
        self.from_rate = from_rate
        self.to_rate = to_rate
        self.n_stems = n_stems
        self.n_channels = n_channels
        self._total_samples = total_samples
        self._on_chunk = on_chunk
        # Stems and mix go through one resampler side by side: equal lengths by construction.
        self._resampler = StreamResampler(from_rate, to_rate, (n_stems + 1) * n_channels)
        self.samples_out = 0
        """Samples per stem forwarded so far (at ``to_rate``)."""

    def _index(self, index: int) -> int:
        return index * self.to_rate // self.from_rate

    def write(self, chunk: OutputChunk) -> None:
        """Convert ``chunk`` and forward it. Called from the synthesis thread."""
        n = chunk.n_samples
        c = self.n_channels
        joined = np.empty((n, (self.n_stems + 1) * c), dtype=np.float32)
        for i in range(self.n_stems):
            joined[:, i * c : (i + 1) * c] = chunk.stems[i]
        joined[:, self.n_stems * c :] = chunk.mix
        out = self._resampler.process(joined, last=chunk.end_of_stream)
        if chunk.end_of_stream and self._total_samples is not None:
            out = _fit(out, self._total_samples() - self.samples_out)
        m = out.shape[0]
        stems: NDArray[np.float32] = np.stack(
            [out[:, i * c : (i + 1) * c] for i in range(self.n_stems)]
        )
        mix = np.ascontiguousarray(out[:, self.n_stems * c :])
        gaps = []
        for index, n_lost in chunk.gaps:
            start = self._index(index)
            gaps.append((start, max(1, self._index(index + n_lost) - start)))
        converted = OutputChunk(self.samples_out, stems, mix, gaps, chunk.end_of_stream)
        self.samples_out += m
        if m or gaps or chunk.end_of_stream:
            if self._on_chunk is not None:
                self._on_chunk(converted)
            self.sink.write(converted)

    def close(self) -> None:
        """End of stream: close the wrapped sink."""
        self.sink.close()


def _fit(out: NDArray[np.float32], n: int) -> NDArray[np.float32]:
    """``out`` cut or zero-padded to ``n`` rows (``n`` may be negative: nothing left)."""
    n = max(0, n)
    if out.shape[0] >= n:
        return out[:n]
    padded = np.zeros((n, out.shape[1]), dtype=np.float32)
    padded[: out.shape[0]] = out
    return padded
