"""The threaded pipeline: ring buffer -> analysis -> model worker -> synthesis -> sinks.

Threads talk only through the :class:`~streamsep.engine.ringbuffer.RingBuffer` and two bounded
queues.
Internal queues apply back-pressure (a slow model makes analysis wait, and the ring fills), so
the ring is the only place samples can be dropped, and every dropped sample is counted there and
carried to the sinks as a gap. Lost samples are replaced by silence, so the output timeline
stays continuous and the sample index of every output chunk equals its input index.

Output chunks are at the model rate with the model's channel count; ``start_index`` counts
samples at the model rate from the stream start.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.audio import StreamResampler, adapt_channels
from streamsep.engine.blocks import BlockJob
from streamsep.engine.model import MaskModel
from streamsep.engine.ringbuffer import RingBuffer
from streamsep.engine.sanitize import InputGuard, MaskGuard
from streamsep.engine.settings import StreamSettings
from streamsep.engine.streamer import Analyzer, Synthesizer, _SampleFifo
from streamsep.errors import StreamsepError

__all__ = ["OutputChunk", "Sink", "CollectSink", "Pipeline", "PipelineStats"]

_LOGGER = logging.getLogger(__name__)

_READ_SAMPLES: Final = 8192
_POLL_SECONDS: Final = 0.1


@dataclass
class OutputChunk:
    """Separated audio handed to sinks, in stream order."""

    start_index: int
    """Model-rate index of the first sample since the stream start."""
    stems: NDArray[np.float32]
    """Shape (n_stems, n_samples, n_channels), in ``instrument_list`` order."""
    mix: NDArray[np.float32]
    """The model input for the same samples, shape (n_samples, n_channels)."""
    gaps: list[tuple[int, int]] = field(default_factory=list)
    """``(index, n_samples)`` of input lost before or inside this chunk and replaced by
    silence (indices at the model rate): lost input, and non-finite input samples
    (:mod:`streamsep.engine.sanitize`). An index may lie after this chunk's samples."""
    end_of_stream: bool = False
    """True on the last chunk of the stream."""

    @property
    def n_samples(self) -> int:
        """Samples per stem in this chunk."""
        return int(self.stems.shape[1])


class Sink(Protocol):
    """Receives output chunks on the synthesis thread; must not block for long."""

    def write(self, chunk: OutputChunk) -> None:
        """Take one chunk."""
        ...

    def close(self) -> None:
        """The stream ended (after the last :meth:`write`)."""
        ...


class CollectSink:
    """Keeps every chunk in memory (tests, small jobs). ``done`` is set at end of stream."""

    def __init__(self) -> None:
        self.chunks: list[OutputChunk] = []
        self.done = threading.Event()

    def write(self, chunk: OutputChunk) -> None:
        """Append ``chunk``."""
        self.chunks.append(chunk)

    def close(self) -> None:
        """Mark the stream finished."""
        self.done.set()

    def stems(self) -> NDArray[np.float32]:
        """All stems concatenated, shape (n_stems, n_samples, n_channels)."""
        return np.concatenate([c.stems for c in self.chunks], axis=1)

    def mix(self) -> NDArray[np.float32]:
        """The aligned mix, shape (n_samples, n_channels)."""
        return np.concatenate([c.mix for c in self.chunks], axis=0)


@dataclass
class PipelineStats:
    """Counters, updated by the pipeline threads (read them from any thread)."""

    samples_in: int = 0
    """Model-rate samples entering analysis (silence for lost input included)."""
    samples_out: int = 0
    """Samples per stem handed to sinks."""
    samples_lost: int = 0
    """Source-rate samples lost before analysis (ring overruns and marked gaps)."""
    samples_nonfinite: int = 0
    """Source-rate samples (frames) that were NaN or Inf, replaced by silence and reported as
    filled gaps."""
    samples_clipped: int = 0
    """Source-rate values clipped to ``+-MAX_ABS_SAMPLE``."""
    blocks_replaced: int = 0
    """Model blocks whose output was not finite, replaced by uniform masks."""
    blocks: int = 0
    """Model blocks run."""
    model_seconds: float = 0.0
    """Wall time in the model, seconds."""
    synthesis_seconds: float = 0.0
    """Wall time in analysis and synthesis, seconds."""


@dataclass
class _Work:
    jobs: list[BlockJob]
    n_input: int
    mix: NDArray[np.float32]
    gaps: list[tuple[int, int]]
    end: bool = False


class Pipeline:
    """Runs a model over a live stream written into :attr:`ring`.

    Parameters
    ----------
    model : MaskModel
        Used only on the worker thread once started.
    stream : StreamSettings
        Block hop, lookahead, weighting.
    source_rate : int
        Sample rate of what is written into the ring, Hz (resampled to the model rate).
    source_channels : int
        Channels written into the ring (mono is duplicated for stereo models, more averaged).
    sinks : list of Sink
        Called on the synthesis thread.
    ring_seconds : float
        Ring capacity in seconds of source audio.
    queue_blocks : int
        Capacity of each internal queue, in work items.
    """

    def __init__(
        self,
        model: MaskModel,
        stream: StreamSettings | None = None,
        *,
        source_rate: int,
        source_channels: int,
        sinks: list[Sink],
        ring_seconds: float = 30.0,
        queue_blocks: int = 8,
    ) -> None:
        self.model = model
        self.params = model.params
        self.stream = stream or StreamSettings()
        self.hop_frames, self.lookahead_frames = self.stream.resolve(
            self.params.T, self.params.stream
        )
        self.source_rate = source_rate
        self.source_channels = source_channels
        self.sinks = list(sinks)
        self.ring = RingBuffer(max(1, int(ring_seconds * source_rate)), source_channels)
        self._analyzer = Analyzer(self.params, self.hop_frames)
        self._synthesizer = Synthesizer(
            self.params, self.hop_frames, self.lookahead_frames, self.stream.effective_window
        )
        self._resampler = StreamResampler(
            source_rate, self.params.sample_rate, self.params.n_channels
        )
        self._input_guard = InputGuard(source_rate, "capture")
        self._mask_guard = MaskGuard()
        self._jobs: queue.Queue[_Work] = queue.Queue(maxsize=queue_blocks)
        self._results: queue.Queue[_Work] = queue.Queue(maxsize=queue_blocks)
        self._mix = _SampleFifo(1, self.params.n_channels, self._synthesizer.latency_samples)
        self._abort = threading.Event()
        self._finished = threading.Event()
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self.stats = PipelineStats()

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency at the model rate, samples."""
        return self._synthesizer.latency_samples

    @property
    def latency_seconds(self) -> float:
        """Algorithmic latency in seconds."""
        return self.latency_samples / self.params.sample_rate

    @property
    def queue_depths(self) -> tuple[int, int]:
        """Items waiting for the model and for synthesis."""
        return self._jobs.qsize(), self._results.qsize()

    def start(self) -> None:
        """Start the analysis, worker and synthesis threads."""
        if self._threads:
            raise StreamsepError("pipeline already started")
        _LOGGER.info(
            "pipeline: %d Hz %d ch -> model %d Hz; hop %d frames, lookahead %d frames, "
            "latency %d samples (%.3f s)",
            self.source_rate,
            self.source_channels,
            self.params.sample_rate,
            self.hop_frames,
            self.lookahead_frames,
            self.latency_samples,
            self.latency_seconds,
        )
        for name, target in (
            ("streamsep-analysis", self._run_analysis),
            ("streamsep-worker", self._run_worker),
            ("streamsep-synthesis", self._run_synthesis),
        ):
            thread = threading.Thread(target=self._guard, args=(target,), name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Abort now: threads exit without draining (use ``ring.close()`` + :meth:`wait` to
        drain)."""
        self._abort.set()
        self.ring.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the stream is drained and every sink closed; re-raise a thread's error.

        Returns False on timeout.
        """
        done = self._finished.wait(timeout)
        if self._errors:
            raise self._errors[0]
        return done

    def join(self, timeout: float | None = None) -> None:
        """Join the threads (after :meth:`stop` or end of stream)."""
        for thread in self._threads:
            thread.join(timeout)

    def _guard(self, target: Any) -> None:
        try:
            target()
        except BaseException as e:  # noqa: BLE001 - reported to the owner through wait()
            _LOGGER.exception("%s failed", threading.current_thread().name)
            self._errors.append(e)
            self._abort.set()
            self._finished.set()

    def _put(self, q: queue.Queue[_Work], item: _Work) -> bool:
        while not self._abort.is_set():
            try:
                q.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[_Work]) -> _Work | None:
        while not self._abort.is_set():
            try:
                return q.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
        return None

    def _run_analysis(self) -> None:
        n_channels = self.params.n_channels
        while not self._abort.is_set():
            result = self.ring.read(_READ_SAMPLES, timeout=_POLL_SECONDS)
            end = result.samples.shape[0] == 0 and result.lost_before == 0 and self.ring.closed
            if result.samples.shape[0] == 0 and result.lost_before == 0 and not end:
                continue
            if result.lost_before:
                self.stats.samples_lost += result.lost_before
                if not self._fill_gap(result.lost_before):
                    return
            started = time.perf_counter()
            pieces: list[NDArray[np.float32]] = []
            gaps: list[tuple[int, int]] = []
            if result.samples.shape[0]:
                clean, filled = self._input_guard.process(result.samples)
                if filled:
                    gaps = [self._model_range(index, n) for index, n in filled]
                    self.stats.samples_nonfinite = self._input_guard.samples_filled
                self.stats.samples_clipped = self._input_guard.samples_clipped
                pieces.append(self._resampler.process(adapt_channels(clean, n_channels)))
            if end:
                pieces.append(self._resampler.process(np.zeros((0, n_channels), np.float32), True))
            x = np.concatenate(pieces) if pieces else np.zeros((0, n_channels), np.float32)
            jobs = self._analyzer.feed(x)
            self.stats.samples_in += x.shape[0]
            if end:
                n_real = self._analyzer.n_input
                jobs += self._analyzer.feed(
                    np.zeros((self.latency_samples, n_channels), np.float32)
                )
                self.stats.synthesis_seconds += time.perf_counter() - started
                self._put(self._jobs, _Work(jobs, n_real, x, gaps, end=True))
                return
            self.stats.synthesis_seconds += time.perf_counter() - started
            if not self._put(self._jobs, _Work(jobs, self._analyzer.n_input, x, gaps)):
                return

    def _model_range(self, index: int, n: int) -> tuple[int, int]:
        """Source-rate ``(index, n)`` -> the model-rate ``(index, n >= 1)`` covering it."""
        to_rate, from_rate = self.params.sample_rate, self.source_rate
        start = index * to_rate // from_rate
        end = -(-(index + n) * to_rate // from_rate)
        return start, max(1, end - start)

    def _fill_gap(self, n_lost: int) -> bool:
        """Feed ``n_lost`` source-rate samples of silence in pieces of at most
        ``_READ_SAMPLES``, so that a long outage costs bounded memory; each piece's work item
        reports its share of the gap. Returns False if the pipeline was aborted."""
        n_channels = self.params.n_channels
        silence = np.zeros((_READ_SAMPLES, n_channels), np.float32)
        remaining = n_lost
        self._input_guard.advance(n_lost)
        while remaining:
            n = min(remaining, _READ_SAMPLES)
            remaining -= n
            started = time.perf_counter()
            n_before = self._analyzer.n_input
            filled = self._resampler.process(silence[:n])
            jobs = self._analyzer.feed(filled)
            self.stats.samples_in += filled.shape[0]
            self.stats.synthesis_seconds += time.perf_counter() - started
            work = _Work(jobs, self._analyzer.n_input, filled, [(n_before, filled.shape[0])])
            if not self._put(self._jobs, work):
                return False
        return True

    def _run_worker(self) -> None:
        while True:
            work = self._get(self._jobs)
            if work is None:
                return
            for job in work.jobs:
                started = time.perf_counter()
                job.masks = self._mask_guard.check(self.model.predict(job.spectrogram))
                self.stats.blocks_replaced = self._mask_guard.blocks_replaced
                self.stats.model_seconds += time.perf_counter() - started
                self.stats.blocks += 1
            if not self._put(self._results, work) or work.end:
                return

    def _run_synthesis(self) -> None:
        latency = self.latency_samples
        emitted = 0  # stem samples handed to sinks (input-timeline index of the next one)
        while True:
            work = self._get(self._results)
            if work is None:
                return
            started = time.perf_counter()
            for job in work.jobs:
                self._synthesizer.add(job)
            self._mix.push(work.mix[None])
            if work.end:
                out = self._synthesizer.take(work.n_input + latency)
            else:
                out = self._synthesizer.take(work.n_input)
            # The first `latency` output samples precede the stream start: drop them.
            skip = max(0, min(out.shape[1], latency - (self._synthesizer.n_output - out.shape[1])))
            stems = out[:, skip:]
            n = stems.shape[1]
            mix = self._mix.pop(n)[0]
            chunk = OutputChunk(emitted, stems, mix, work.gaps, end_of_stream=work.end)
            self.stats.synthesis_seconds += time.perf_counter() - started
            if n or work.gaps or work.end:
                for sink in self.sinks:
                    sink.write(chunk)
            emitted += n
            self.stats.samples_out = emitted
            if work.end:
                for sink in self.sinks:
                    sink.close()
                self._finished.set()
                return
