"""A streaming detector of orca activity on the separated stems.

The stream is cut into fixed windows of ``window_seconds`` on the absolute sample-index grid
(window ``k`` holds samples ``[k W, (k + 1) W)``), so the result does not depend on how the
audio is chunked. For each window the detector computes, in the band ``band_low_hz`` ..
``band_high_hz`` (Hann-windowed FFT, Parseval-normalised to the band-limited mean square):

* ``orca_db``: the orca stem's band power, dBFS;
* ``noise_db``: the noise stem's band power, dBFS (absent when the detector runs on the raw
  mix alone);
* ``background_db``: a running estimate of ``orca_db`` when nothing is calling: it follows a
  drop within ``background_fall_seconds`` and a rise only within ``background_rise_seconds``,
  so a call stands out of it for far longer than a call lasts, while a slow rise (a ship
  approaching) is absorbed. It starts at the first window, or, with a noise stem and
  ``background_start_db`` > 0, that far below it: then a file that starts during a call (a
  short clip) does not take the call for its background, while a stream's first minute may
  raise events on a background that the noise term does not veto.

and the score, dB::

    score = min(orca_db - background_db, orca_db - noise_db + noise_offset_db,
                flatness_db - tone_flatness_db)

(without a noise stem: no second term; a detector built with an ``extra_term`` adds that term to
the minimum: experiments with call classifiers, ``tools/call_classifier.py``). ``flatness_db``
is the spectral flatness of the orca stem's band (geometric over arithmetic mean of its power
spectrum, dB; 0 for white noise, very negative for a pure tone); the third term keeps steady
pure tones (the rectangular tonal pulses among the OrcaCNN negatives, for one), which the model
passes to the orca stem, from counting as calls; ``tone_flatness_db`` = -300 dB turns it off.
Hysteresis turns scores into events: an event opens when a window reaches
``start_threshold_db``; it starts at the first window of the run of windows at or above
``end_threshold_db`` that led there; it goes on while windows at or above ``end_threshold_db``
follow each other with gaps shorter than ``merge_gap_seconds`` (so one call sequence is one
event), and ends after the last of them once ``merge_gap_seconds`` have passed without one: an
event is known, and published, that long after its end. Events whose windows at or above
``end_threshold_db`` add up to less than ``min_duration_seconds`` are dropped; one longer than
``max_event_seconds`` is closed and a new one may open. The defaults come from
``tools/evaluate_detection.py`` (``docs/detection.md``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from streamsep.events.terms import ExtraTerm, WindowView
from streamsep.validate import check_number, fail

__all__ = [
    "DetectorSettings",
    "Event",
    "Detector",
    "ExtraTerm",
    "WindowScore",
    "WindowView",
    "events_of",
]

_FLOOR_DB: Final = -150.0  # power floor: digital silence reads this, not -inf
_BAND_EDGE_FRACTION: Final = 0.05  # band_hz is where 5 % and 95 % of the event's energy lie
_TONE_OFF_DB: Final = -300.0  # tone_flatness_db at or below this: no tonality term


@dataclass(frozen=True)
class DetectorSettings:
    """How windows are scored and scores become events (the detector keys of ``[events]``)."""

    band_low_hz: float = 500.0
    """Lower edge of the band, Hz (>= 0)."""
    band_high_hz: float = 15000.0
    """Upper edge of the band, Hz (> band_low_hz; cut at the Nyquist frequency)."""
    window_seconds: float = 0.1
    """Scoring window, seconds (> 0)."""
    start_threshold_db: float = 10.0
    """Score that opens an event, dB."""
    end_threshold_db: float = 6.0
    """Score below which an event's activity ends, dB (<= start_threshold_db)."""
    min_duration_seconds: float = 0.3
    """Least time at or above the end threshold for an event to count, seconds (>= 0)."""
    merge_gap_seconds: float = 1.0
    """Quiet time after which an event ends; activity within it continues the event, seconds
    (>= 0). Events are published this long after their end at the earliest."""
    max_event_seconds: float = 600.0
    """An event is closed after this long, seconds (> 0)."""
    noise_offset_db: float = 10.0
    """Added to orca minus noise band power before the minimum with the background term, dB."""
    background_rise_seconds: float = 60.0
    """Time constant of the background estimate when the band power rises, seconds (> 0)."""
    background_fall_seconds: float = 2.0
    """Time constant of the background estimate when the band power falls, seconds (> 0)."""
    background_start_db: float = 0.0
    """With a noise stem, the background estimate starts this far below the first window's
    ``orca_db``, dB (>= 0; 0: at it). For short files (``streamsep detect`` on clips)."""
    tone_flatness_db: float = -65.0
    """Spectral flatness of the orca stem's band (dB) at which a window's score is capped at
    0: a window this tonal scores at most ``flatness_db - tone_flatness_db``; -300: off."""

    def __post_init__(self) -> None:
        for key in (
            "band_high_hz",
            "window_seconds",
            "max_event_seconds",
            "background_rise_seconds",
            "background_fall_seconds",
        ):
            check_number(f"events.{key}", getattr(self, key), positive=True)
        for key in (
            "band_low_hz",
            "min_duration_seconds",
            "merge_gap_seconds",
            "background_start_db",
        ):
            check_number(f"events.{key}", getattr(self, key), minimum=0)
        db_keys = ("start_threshold_db", "end_threshold_db", "noise_offset_db", "tone_flatness_db")
        for key in db_keys:
            check_number(f"events.{key}", getattr(self, key))
        if self.band_high_hz <= self.band_low_hz:
            raise fail(
                "events.band_high_hz", f"> band_low_hz ({self.band_low_hz:g})", self.band_high_hz
            )
        if self.end_threshold_db > self.start_threshold_db:
            raise fail(
                "events.end_threshold_db",
                f"<= start_threshold_db ({self.start_threshold_db:g})",
                self.end_threshold_db,
            )

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-able dict (carried by every event)."""
        return asdict(self)


@dataclass(frozen=True)
class Event:
    """One detected period of orca activity. Indices count samples at ``sample_rate`` from the
    stream start; ``end_index`` is exclusive."""

    start_index: int
    end_index: int
    peak_index: int
    """Centre of the highest-scoring window."""
    peak_score_db: float
    peak_level_dbfs: float
    """Band-limited RMS level of the orca stem over the highest-scoring window, dBFS."""
    band_low_hz: float
    band_high_hz: float
    """Where 5 % and 95 % of the orca stem's in-band energy during the event lie, Hz."""
    peak_hz: float
    """Frequency of the orca stem's strongest in-band bin summed over the event, Hz."""
    active_seconds: float
    """Time at or above the end threshold, seconds."""
    sample_rate: int

    @property
    def duration_seconds(self) -> float:
        """``(end_index - start_index) / sample_rate``."""
        return (self.end_index - self.start_index) / self.sample_rate


@dataclass(frozen=True)
class WindowScore:
    """One scored window (for evaluation and plots)."""

    index: int
    score_db: float
    orca_db: float
    noise_db: float | None
    background_db: float
    peak_hz: float
    """Frequency of the orca stem's strongest in-band bin, Hz."""
    extra_db: float | None = None
    """The extra term's value, dB (None without one)."""


@dataclass
class _Open:
    start_window: int
    last_active: int  # last window at or above the end threshold
    active_windows: int
    peak_window: int
    peak_score: float
    peak_level: float
    spectrum: NDArray[np.float64]


class Detector:
    """Scores windows of the orca (and noise) stem and turns them into :class:`Event` objects.

    Parameters
    ----------
    settings : DetectorSettings
    sample_rate : int
        Rate of the audio fed, Hz.

    :meth:`feed` and :meth:`flush` run on one thread (the daemon's synthesis thread); not
    thread-safe.
    """

    def __init__(
        self,
        settings: DetectorSettings,
        sample_rate: int,
        extra_term: ExtraTerm | None = None,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
        self.settings = settings
        self.sample_rate = sample_rate
        self.window_samples = max(1, round(settings.window_seconds * sample_rate))
        w = self.window_samples
        self._taper = np.hanning(w + 2)[1:-1]  # never all zero, even for tiny windows
        self._n_fft = 1 << max(0, (w - 1).bit_length())
        freqs = np.fft.rfftfreq(self._n_fft, 1.0 / sample_rate)
        self._band = (freqs >= settings.band_low_hz) & (freqs <= settings.band_high_hz)
        self._freqs: NDArray[np.float64] = freqs[self._band].astype(np.float64)
        # Parseval with the taper: band mean square = 2 sum |X_k|^2 / (n_fft * sum(w^2)).
        self._norm = 2.0 / (self._n_fft * float(np.sum(self._taper**2)))
        seconds = w / sample_rate
        self._rise = 1.0 - math.exp(-seconds / settings.background_rise_seconds)
        self._fall = 1.0 - math.exp(-seconds / settings.background_fall_seconds)
        self._merge_windows = math.ceil(settings.merge_gap_seconds / seconds - 1e-9)
        self._min_windows = math.ceil(settings.min_duration_seconds / seconds - 1e-9)
        self._max_windows = max(1, math.floor(settings.max_event_seconds / seconds + 1e-9))
        self.extra_term = extra_term
        """An extra term of the score (None: the three above only)."""
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new stream)."""
        self._pending: list[NDArray[np.float64]] = []  # partial window, per signal
        self._pending_start = -1  # window index of the partial window
        self._pending_n = 0
        self._background: float | None = None
        self._run_start: int | None = None  # first window of the current run >= end threshold
        self._open: _Open | None = None
        self.scores: list[WindowScore] | None = None
        """Set to a list to record every window's score (evaluation)."""

    @property
    def open(self) -> bool:
        """Whether an event is open (started, not yet ended)."""
        return self._open is not None

    @property
    def open_start_index(self) -> int | None:
        """Start index of the open event, if any."""
        return None if self._open is None else self._open.start_window * self.window_samples

    def feed(
        self,
        start_index: int,
        orca: NDArray[np.floating],
        noise: NDArray[np.floating] | None = None,
    ) -> list[Event]:
        """Take aligned samples from ``start_index`` on; returns the events that ended.

        Parameters
        ----------
        start_index : int
            Stream index of the first sample; must continue the previous call (a jump resets
            the partial window: the samples are scored as if the missing ones were silence).
        orca, noise : ndarray, shape (n_samples, n_channels) or (n_samples,), float
            The orca stem and the noise stem (None: score against the background only).
        """
        signals = [_mono_power_ready(orca)] + ([] if noise is None else [_mono_power_ready(noise)])
        n = signals[0].shape[0]
        events: list[Event] = []
        w = self.window_samples
        pos = 0
        while pos < n:
            index = start_index + pos
            window, offset = divmod(index, w)
            if self._pending_start != window:
                if self._pending_start >= 0 and self._pending_n:
                    events += self._finish_window()  # a jump: score what we have
                self._pending = [np.zeros((w, s.shape[1])) for s in signals]
                self._pending_start = window
                self._pending_n = 0
            take = min(n - pos, w - offset)
            for buf, s in zip(self._pending, signals, strict=True):
                buf[offset : offset + take] = s[pos : pos + take]
            self._pending_n += take
            pos += take
            if offset + take == w:
                events += self._finish_window()
        return events

    def flush(self) -> list[Event]:
        """End of stream: score the partial window and close an open event."""
        events: list[Event] = []
        if self._pending_start >= 0 and self._pending_n:
            events += self._finish_window()
        if self._open is not None:
            event = self._close()
            if event is not None:
                events.append(event)
        self._pending_start = -1
        return events

    # -- internals ---------------------------------------------------------------------------

    def _band_power(self, x: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        spectrum = np.fft.rfft(x * self._taper[:, None], n=self._n_fft, axis=0)
        power = (np.abs(spectrum[self._band]) ** 2).mean(axis=1) * self._norm
        return float(power.sum()), power

    def _finish_window(self) -> list[Event]:
        k = self._pending_start
        self._pending_start = -1
        s = self.settings
        orca_power, orca_spectrum = self._band_power(self._pending[0])
        orca_db = max(_FLOOR_DB, 10 * math.log10(orca_power)) if orca_power > 0 else _FLOOR_DB
        noise_db = None
        if len(self._pending) > 1:
            noise_power, _ = self._band_power(self._pending[1])
            noise_db = (
                max(_FLOOR_DB, 10 * math.log10(noise_power)) if noise_power > 0 else _FLOOR_DB
            )
        if self._background is None:
            self._background = orca_db - (0.0 if noise_db is None else s.background_start_db)
        score = orca_db - self._background
        if noise_db is not None:
            score = min(score, orca_db - noise_db + s.noise_offset_db)
        tone_term = s.tone_flatness_db > _TONE_OFF_DB
        # the flatness costs a log per bin: only where a term uses it
        flatness = _flatness_db(orca_spectrum) if tone_term or self.extra_term is not None else 0.0
        if tone_term:
            score = min(score, flatness - s.tone_flatness_db)
        extra_db = None
        if self.extra_term is not None:
            view = WindowView(
                k, self._freqs, orca_spectrum, orca_db, noise_db, self._background, flatness,
                self._pending[0],
            )  # fmt: skip
            extra_db = self.extra_term(view)
            score = min(score, extra_db)
        if self.scores is not None:
            self.scores.append(
                WindowScore(
                    k * self.window_samples,
                    score,
                    orca_db,
                    noise_db,
                    self._background,
                    float(self._freqs[int(np.argmax(orca_spectrum))]) if self._freqs.size else 0.0,
                    extra_db,
                )
            )
        rate = self._rise if orca_db > self._background else self._fall
        self._background += rate * (orca_db - self._background)
        events: list[Event] = []
        active = score >= s.end_threshold_db
        if active and self._run_start is None:
            self._run_start = k
        elif not active:
            self._run_start = None
        o = self._open
        if o is None:
            if score >= s.start_threshold_db:
                start = self._run_start if self._run_start is not None else k
                self._open = _Open(start, k, k - start + 1, k, score, orca_db, orca_spectrum.copy())
            return events
        if active:
            o.last_active = k
            o.active_windows += 1
            o.spectrum += orca_spectrum
            if score > o.peak_score:
                o.peak_window, o.peak_score, o.peak_level = k, score, orca_db
        if k - o.start_window + 1 >= self._max_windows:
            event = self._close()
            return [event] if event is not None else []
        if not active and k - o.last_active >= self._merge_windows:
            event = self._close()
            return [event] if event is not None else []
        return events

    def _close(self) -> Event | None:
        o = self._open
        assert o is not None
        self._open = None
        self._run_start = None
        if o.active_windows < self._min_windows:
            return None
        w = self.window_samples
        total = float(o.spectrum.sum())
        if total > 0 and self._freqs.size:
            cumulative = np.cumsum(o.spectrum) / total
            low = float(self._freqs[int(np.searchsorted(cumulative, _BAND_EDGE_FRACTION))])
            i_high = min(
                int(np.searchsorted(cumulative, 1 - _BAND_EDGE_FRACTION)), self._freqs.size - 1
            )
            high = float(self._freqs[i_high])
            peak_hz = float(self._freqs[int(np.argmax(o.spectrum))])
        else:
            low, high, peak_hz = self.settings.band_low_hz, self.settings.band_high_hz, 0.0
        return Event(
            start_index=o.start_window * w,
            end_index=(o.last_active + 1) * w,
            peak_index=o.peak_window * w + w // 2,
            peak_score_db=round(o.peak_score, 3),
            peak_level_dbfs=round(o.peak_level, 3),
            band_low_hz=round(low, 1),
            band_high_hz=round(high, 1),
            peak_hz=round(peak_hz, 1),
            active_seconds=round(o.active_windows * w / self.sample_rate, 6),
            sample_rate=self.sample_rate,
        )


def _flatness_db(power: NDArray[np.float64]) -> float:
    """Spectral flatness of a power spectrum, dB (0 when flat; bins at 0 count as 1e-30)."""
    if power.size == 0:
        return 0.0
    p = np.maximum(power, 1e-30)
    return float(10.0 * (np.mean(np.log10(p)) - math.log10(float(np.mean(p)))))


def _mono_power_ready(x: NDArray[np.floating]) -> NDArray[np.float64]:
    """``x`` as float64 of shape (n_samples, n_channels); non-finite values become 0."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if not np.all(np.isfinite(a)):
        a = np.where(np.isfinite(a), a, 0.0)
    return a


def events_of(
    detector: Detector,
    start_index: int,
    orca: NDArray[np.floating],
    noise: NDArray[np.floating] | None,
    chunk: int = 1 << 16,
) -> list[Event]:
    """All events of one whole signal fed in ``chunk``-sample pieces, then flushed."""
    events: list[Event] = []
    for i in range(0, orca.shape[0], chunk):
        events += detector.feed(
            start_index + i, orca[i : i + chunk], None if noise is None else noise[i : i + chunk]
        )
    return events + detector.flush()
