"""Publish one audio file as a live stream: FileSource -> Pipeline -> Publisher.

This is what ``streamsep stream`` runs; it is also the end-to-end harness of the protocol
tests. The optional control endpoint answers ``status`` with :func:`pipeline_status`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Final

from streamsep.engine.model import MaskModel
from streamsep.engine.pipeline import Pipeline
from streamsep.engine.settings import StreamSettings
from streamsep.errors import StreamsepError
from streamsep.net.control import ControlServer, ControlSettings
from streamsep.net.publish import Publisher, PublishSettings
from streamsep.net.status import pipeline_status
from streamsep.sources.file import FileSource, file_info

__all__ = ["FileStreamer", "stream_file"]

_LOGGER = logging.getLogger(__name__)

_WAIT_SLICE_SECONDS: Final = 0.5


class FileStreamer:
    """Runs one file through the pipeline into a publisher (and an optional control server).

    Parameters
    ----------
    path : str or Path
        WAV/FLAC input; its rate and channels are adapted to the model's.
    model : MaskModel
        Used on the pipeline's worker thread.
    publish : PublishSettings
        Publisher configuration (validated, keys read, before any socket opens).
    stream : StreamSettings, optional
        Block scheduling.
    realtime : bool
        Pace the file at its sample rate (a live source) instead of as fast as possible.
    control : ControlSettings, optional
        Also answer control requests.

    Raises
    ------
    AudioFileError, ConfigError
        On an unreadable input or bad settings.
    """

    def __init__(
        self,
        path: str | Path,
        model: MaskModel,
        publish: PublishSettings,
        *,
        stream: StreamSettings | None = None,
        realtime: bool = False,
        control: ControlSettings | None = None,
    ) -> None:
        rate, n_channels, _ = file_info(path)
        params = model.params
        self.publisher = Publisher(
            publish,
            stems=params.instrument_list,
            sample_rate=params.sample_rate,
            n_channels=params.n_channels,
            status=self.status,
        )
        self.pipeline = Pipeline(
            model, stream, source_rate=rate, source_channels=n_channels, sinks=[self.publisher]
        )
        self.source = FileSource(path, self.pipeline.ring, realtime=realtime)
        self.control = None if control is None else ControlServer(control, self.status)
        self._started = time.monotonic()

    def status(self) -> dict[str, Any]:
        """:func:`pipeline_status` of this stream (without the publisher counters, which the
        publisher adds to its own status messages)."""
        return pipeline_status(self.pipeline, None, self._started)

    def file_status(self) -> dict[str, Any]:
        """The input file's counters: ``samples_read``, ``samples_lost`` (never read: the file
        ended before its header's length) and ``ended_early`` with the ``error``."""
        source = self.source
        return {
            "path": str(source.path),
            "samples_read": source.samples_written,
            "samples_lost": source.samples_lost,
            "ended_early": source.error is not None,
            "error": None if source.error is None else str(source.error),
        }

    def start(self, wait_subscribers: int = 0, wait_seconds: float = 60.0) -> None:
        """Bind (unless the publisher was started already), wait for ``wait_subscribers``
        subscriptions, then start reading the file.

        Raises
        ------
        StreamsepError
            If binding fails or the subscribers do not come within ``wait_seconds``.
        """
        if not self.publisher.started:
            self.publisher.start()
        if self.control is not None:
            self.control.start()
        if wait_subscribers > 0:
            _LOGGER.info("waiting for %d subscription(s)", wait_subscribers)
            if not self.publisher.wait_for_subscribers(wait_subscribers, wait_seconds):
                raise StreamsepError(
                    f"expected {wait_subscribers} subscription(s) within {wait_seconds} s, got "
                    f"{self.publisher.stats()['subscriptions']}"
                )
        self._started = time.monotonic()
        self.publisher.set_capture_start(time.time_ns())
        self.pipeline.start()
        self.source.start()

    def wait_pipeline(self, timeout: float | None = None) -> bool:
        """Wait until the pipeline has handed the end of stream to the publisher."""
        return self.pipeline.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the end-of-stream messages are sent (or given up). False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.pipeline.wait(timeout):
            return False
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self.publisher.wait(remaining)

    def stop(self) -> None:
        """Stop every thread (an unfinished stream is cut short)."""
        self.source.stop()
        self.source.join(_WAIT_SLICE_SECONDS * 4)
        self.pipeline.stop()
        self.pipeline.join(_WAIT_SLICE_SECONDS * 4)
        self.publisher.close()
        self.publisher.stop()
        if self.control is not None:
            self.control.stop()

    def __enter__(self) -> FileStreamer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stream_file(
    path: str | Path,
    model: MaskModel,
    publish: PublishSettings,
    *,
    stream: StreamSettings | None = None,
    realtime: bool = False,
    control: ControlSettings | None = None,
    wait_subscribers: int = 0,
    wait_seconds: float = 60.0,
) -> dict[str, Any]:
    """Publish ``path`` and return when its end of stream is sent; returns the final status
    (:func:`pipeline_status` plus ``file``: :meth:`FileStreamer.file_status`; a file that ended
    early has ``ended_early`` set, its missing samples went out as a gap at the end).

    See :class:`FileStreamer` for the parameters.
    """
    with FileStreamer(
        path, model, publish, stream=stream, realtime=realtime, control=control
    ) as streamer:
        streamer.start(wait_subscribers, wait_seconds)
        while not streamer.wait_pipeline(_WAIT_SLICE_SECONDS):
            pass
        streamer.publisher.wait(publish.end_timeout_seconds + _WAIT_SLICE_SECONDS * 4)
        if streamer.publisher.error is not None:
            raise streamer.publisher.error
        status = pipeline_status(streamer.pipeline, streamer.publisher, streamer._started)
        status["file"] = streamer.file_status()
    return status
