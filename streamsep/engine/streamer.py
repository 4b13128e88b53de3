"""The streaming engine: audio in, separated stems out, at a constant, stated latency.

:class:`BlockSeparator` is built from two stages that the threaded pipeline runs on separate
threads with the model between them:

* :class:`Analyzer` -- DC-blocking high-pass, incremental STFT, block scheduling -> jobs;
* the model -- masks for each job;
* :class:`Synthesizer` -- mask overlap-add, mask extension, masking, incremental inverse STFT,
  and a delay line that turns "samples as they finish" into "exactly as many samples out as in,
  ``latency_samples`` late".

The output stream is ``y[t] = s[t - latency_samples]`` where ``s`` is the separated signal and
``y[t] = 0`` for ``t < latency_samples``; ``flush()`` returns the last ``latency_samples``.
"""

from __future__ import annotations

import logging
import time
from typing import Final

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.blocks import BlockJob, BlockScheduler, MaskCombiner
from streamsep.engine.highpass import HighPass
from streamsep.engine.model import MaskModel
from streamsep.engine.params import ModelParams
from streamsep.engine.sanitize import InputGuard, MaskGuard
from streamsep.engine.settings import StreamSettings
from streamsep.engine.spectral import StreamingIstft, StreamingStft, apply_masks

__all__ = ["Analyzer", "Synthesizer", "BlockSeparator", "PIECE_SAMPLES", "latency_samples"]

_LOGGER = logging.getLogger(__name__)

_MASK_PIECE_FRAMES: Final = 64
"""Frames masked and inverse-transformed at a time (bounds the temporaries of large blocks)."""
PIECE_SAMPLES: Final = 1 << 16
"""Samples fed at a time by ``flush()`` (its zeros) and by file separation (``batch``), so
that both bound their temporaries the same way."""


def latency_samples(params: ModelParams, lookahead_frames: int) -> int:
    """Algorithmic latency in samples: ``frame_length - 1 + lookahead_frames * frame_step``.

    The newest sample of a frame reaches the output once ``lookahead_frames`` more frames have
    arrived and the block that needs them has run; a frame spans ``frame_length`` samples.
    """
    return params.frame_length - 1 + lookahead_frames * params.frame_step


class Analyzer:
    """Audio ``(n_samples, n_channels)`` at the model rate -> :class:`BlockJob` s.

    Not thread-safe: one thread owns it.
    """

    def __init__(self, params: ModelParams, hop_frames: int) -> None:
        self.params = params
        self._highpass = (
            HighPass(params.highpass_hz, params.sample_rate, params.n_channels)
            if params.highpass_hz
            else None
        )
        self._stft = StreamingStft(params.frame_length, params.frame_step, params.n_channels)
        self._scheduler = BlockScheduler(
            params.T,
            params.F,
            hop_frames,
            params.n_bins,
            params.n_channels,
            floor=params.context == "floor",
        )

    def reset(self) -> None:
        """Back to the start of a stream."""
        if self._highpass is not None:
            self._highpass.reset()
        self._stft.reset()
        self._scheduler.reset()

    @property
    def n_input(self) -> int:
        """Samples received since the stream start."""
        return self._stft.n_input

    def feed(self, chunk: NDArray[np.floating]) -> list[BlockJob]:
        """Add ``chunk`` (n_samples, n_channels); return the blocks it completes, in order."""
        x = np.asarray(chunk, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.params.n_channels:
            raise ValueError(
                f"chunk: expected shape (n_samples, {self.params.n_channels}), got {x.shape}"
            )
        if self._highpass is not None:
            x = self._highpass.process(x)
        return self._scheduler.feed(self._stft.feed(x))


class _SampleFifo:
    """Growable FIFO of ``(n_stems, n_samples, n_channels)`` float32 audio."""

    def __init__(self, n_stems: int, n_channels: int, capacity: int) -> None:
        self._buf = np.zeros((n_stems, max(capacity, 1), n_channels), dtype=np.float32)
        self._start = 0
        self._end = 0

    def clear(self) -> None:
        """Drop everything; keep the allocated buffer."""
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    def push(self, samples: NDArray[np.float32]) -> None:
        n = samples.shape[1]
        if self._end + n > self._buf.shape[1]:
            live = self._buf[:, self._start : self._end]
            # Grow (to twice what is needed) only when compacting is not enough.
            need = len(self) + n
            capacity = self._buf.shape[1] if need <= self._buf.shape[1] else 2 * need
            if capacity > self._buf.shape[1]:
                new = np.zeros((self._buf.shape[0], capacity, self._buf.shape[2]), np.float32)
            else:
                new = self._buf
            new[:, : live.shape[1]] = live
            self._buf, self._start, self._end = new, 0, live.shape[1]
        self._buf[:, self._end : self._end + n] = samples
        self._end += n

    def pop(self, n: int) -> NDArray[np.float32]:
        assert n <= len(self), "fifo underrun: latency accounting is wrong"
        out = self._buf[:, self._start : self._start + n].copy()
        self._start += n
        return out


class Synthesizer:
    """Masked :class:`BlockJob` s -> stems ``(n_stems, n_samples, n_channels)``.

    Not thread-safe: one thread owns it.
    """

    def __init__(
        self, params: ModelParams, hop_frames: int, lookahead_frames: int, window: str
    ) -> None:
        self.params = params
        self.latency_samples = latency_samples(params, lookahead_frames)
        self._combiner = MaskCombiner(
            params.T,
            params.F,
            params.n_bins,
            params.n_channels,
            params.n_stems,
            hop_frames,
            lookahead_frames,
            window,
        )
        self._istft = [
            StreamingIstft(params.frame_length, params.frame_step, params.n_channels)
            for _ in params.instrument_list
        ]
        capacity = self.latency_samples + (hop_frames + 4) * params.frame_step
        self._fifo = _SampleFifo(params.n_stems, params.n_channels, capacity)
        self.reset()

    def reset(self) -> None:
        """Back to the start of a stream."""
        self._combiner.reset()
        for istft in self._istft:
            istft.reset()
        self._fifo.clear()
        self._fifo.push(
            np.zeros(
                (self.params.n_stems, self.latency_samples, self.params.n_channels), np.float32
            )
        )
        self.n_output = 0
        """Samples returned since the stream start (including the leading silence)."""

    def add(self, job: BlockJob) -> None:
        """Add the next block (with masks); its finished samples wait in the delay line."""
        masks, stft = self._combiner.add(job)
        if stft.shape[0] == 0:
            return
        extension = self.params.mask_extension
        n = stft.shape[0]
        # One stem and _MASK_PIECE_FRAMES frames at a time: a full-size block's masked STFT
        # is 17 MB per stem.
        self._fifo.push(
            np.stack(
                [
                    istft.feed_pieces(
                        (
                            apply_masks(masks[i : i + 1, a : a + _MASK_PIECE_FRAMES],
                                        stft[a : a + _MASK_PIECE_FRAMES], extension)[0]
                            for a in range(0, n, _MASK_PIECE_FRAMES)
                        ),
                        n,
                    )
                    for i, istft in enumerate(self._istft)
                ]
            )
        )  # fmt: skip

    def take(self, n_input: int) -> NDArray[np.float32]:
        """Return output up to ``n_input`` samples in total (as many samples out as in)."""
        n = n_input - self.n_output
        out = self._fifo.pop(n)
        self.n_output = n_input
        return out


class BlockSeparator:
    """Streaming separator: ``feed()`` any chunk sizes, ``flush()`` at the end.

    Parameters
    ----------
    model : MaskModel
        Gives masks for each block (its ``params`` describe the DSP).
    stream : StreamSettings
        Block hop, lookahead and weighting.

    Notes
    -----
    ``feed(x)`` returns exactly ``len(x)`` samples per stem: the separated signal delayed by
    :attr:`latency_samples`. ``flush()`` pushes zeros through, returns the last
    :attr:`latency_samples` samples and resets for a new stream. Not thread-safe.
    """

    def __init__(self, model: MaskModel, stream: StreamSettings | None = None) -> None:
        self.model = model
        self.params = model.params
        self.stream = stream or StreamSettings()
        self.hop_frames, self.lookahead_frames = self.stream.resolve(
            self.params.T, self.params.stream
        )
        self._analyzer = Analyzer(self.params, self.hop_frames)
        self._synthesizer = Synthesizer(
            self.params, self.hop_frames, self.lookahead_frames, self.stream.effective_window
        )
        self.input_guard = InputGuard(self.params.sample_rate)
        """Non-finite input -> silence, extreme values clipped (counts since construction)."""
        self.mask_guard = MaskGuard()
        """Non-finite model output -> uniform masks (counts since construction)."""
        self.n_blocks = 0
        """Model blocks run so far."""
        self.model_seconds = 0.0
        """Wall time spent in the model, in seconds."""

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency in samples at the model rate."""
        return self._synthesizer.latency_samples

    @property
    def latency_seconds(self) -> float:
        """Algorithmic latency in seconds."""
        return self.latency_samples / self.params.sample_rate

    def feed(self, chunk: NDArray[np.floating]) -> NDArray[np.float32]:
        """Separate ``chunk`` (n_samples, n_channels).

        Returns
        -------
        ndarray, shape (n_stems, n_samples, n_channels), float32
            The stems, ``latency_samples`` behind the input.

        Non-finite input samples become silence and extreme ones are clipped
        (:mod:`streamsep.engine.sanitize`); see :attr:`input_guard` for the counts.
        """
        x = np.asarray(chunk)
        if x.ndim != 2 or x.shape[1] != self.params.n_channels:
            raise ValueError(
                f"chunk: expected shape (n_samples, {self.params.n_channels}), got {x.shape}"
            )
        clean, _ = self.input_guard.process(x)
        for job in self._analyzer.feed(clean):
            started = time.perf_counter()
            job.masks = self.mask_guard.check(self.model.predict(job.spectrogram))
            self.model_seconds += time.perf_counter() - started
            self.n_blocks += 1
            self._synthesizer.add(job)
        return self._synthesizer.take(self._analyzer.n_input)

    def flush(self) -> NDArray[np.float32]:
        """Return the last ``latency_samples`` samples per stem and reset for a new stream."""
        # In pieces, as the input came: one piece of the whole latency (a full-size Spleeter
        # block, 12 s) would make the STFT's temporaries 50 MB at once.
        piece = np.zeros((PIECE_SAMPLES, self.params.n_channels), dtype=np.float32)
        outs = [
            self.feed(piece[: min(PIECE_SAMPLES, self.latency_samples - i)])
            for i in range(0, self.latency_samples, PIECE_SAMPLES)
        ]
        self.reset()
        if not outs:
            return np.zeros((self.params.n_stems, 0, self.params.n_channels), np.float32)
        return np.concatenate(outs, axis=1)

    def reset(self) -> None:
        """Forget the current stream."""
        self.input_guard.reset()
        self._analyzer.reset()
        self._synthesizer.reset()
