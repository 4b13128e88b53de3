"""The event detector (tone bursts: indices, merge gap, minimum duration, level, band), clip
assembly, the event log and clip writer with its disk guard, the webhook notifier against a
local HTTP server, and the ``[events]`` config section."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamsep.daemon.config import parse_config
from streamsep.errors import ConfigError
from streamsep.events.clips import Clip, ClipAssembler, write_clip
from streamsep.events.detector import Detector, DetectorSettings, events_of
from streamsep.events.settings import WebhookSettings
from streamsep.events.store import DiskGuard, EventStore
from streamsep.events.webhook import WebhookNotifier

from ._events import BURST_AMPLITUDE, HookServer, bursts

RATE = 32000
SETTINGS = DetectorSettings()


def _events(x: np.ndarray, settings: DetectorSettings = SETTINGS, chunk: int = 4096) -> list:
    return events_of(Detector(settings, RATE), 0, x, None, chunk=chunk)


def test_one_burst_is_one_event_with_its_indices() -> None:
    x = bursts(RATE, 10.0, [(3.0, 4.5)])
    (event,) = _events(x)
    w = Detector(SETTINGS, RATE).window_samples
    assert abs(event.start_index - 3 * RATE) <= w
    assert abs(event.end_index - 4.5 * RATE) <= w
    assert 3 * RATE <= event.peak_index <= 4.5 * RATE
    # A sine of amplitude A: mean square A^2 / 2 -> 20 log10(A) - 3.01 dBFS.
    assert event.peak_level_dbfs == pytest.approx(20 * np.log10(BURST_AMPLITUDE) - 3.01, abs=0.5)
    assert event.band_low_hz <= 2000 <= event.band_high_hz
    assert event.peak_hz == pytest.approx(2000, abs=20)
    assert event.peak_score_db > SETTINGS.start_threshold_db


@pytest.mark.parametrize("chunk", [1, 97, 4096, 1 << 20])
def test_events_do_not_depend_on_chunking(chunk: int) -> None:
    x = bursts(RATE, 8.0, [(1.0, 2.0), (5.0, 5.8)])[: 8 * RATE if chunk > 1 else RATE * 3]
    assert _events(x, chunk=chunk) == _events(x, chunk=len(x))


def test_merge_gap_joins_a_call_sequence_and_splits_beyond_it() -> None:
    gap = SETTINGS.merge_gap_seconds
    joined = _events(bursts(RATE, 12.0, [(2.0, 3.0), (3.0 + gap / 2, 4.0 + gap / 2)]))
    assert len(joined) == 1
    assert joined[0].end_index >= (4.0 + gap / 2) * RATE - Detector(SETTINGS, RATE).window_samples
    split = _events(bursts(RATE, 12.0, [(2.0, 3.0), (3.0 + 2 * gap + 0.3, 4.0 + 2 * gap + 0.3)]))
    assert len(split) == 2


def test_minimum_duration() -> None:
    short = SETTINGS.min_duration_seconds / 2
    assert _events(bursts(RATE, 6.0, [(2.0, 2.0 + short)])) == []
    long = SETTINGS.min_duration_seconds * 2
    assert len(_events(bursts(RATE, 6.0, [(2.0, 2.0 + long)]))) == 1


def test_noise_stem_holding_the_energy_vetoes() -> None:
    x = bursts(RATE, 8.0, [(3.0, 4.5)])
    louder = 4 * x  # the noise stem 12 dB above the orca stem: vetoed
    assert events_of(Detector(SETTINGS, RATE), 0, x, louder) == []
    quiet = bursts(RATE, 8.0, [], seed=5)
    assert len(events_of(Detector(SETTINGS, RATE), 0, x, quiet)) == 1


def test_out_of_band_and_slow_changes_are_not_events() -> None:
    assert _events(bursts(RATE, 8.0, [(3.0, 5.0)], freq_hz=200.0)) == []
    rng = np.random.default_rng(3)
    n = 600 * RATE
    ramp = np.geomspace(1e-3, 1e-2, n)  # +20 dB over ten minutes (a ship approaching)
    assert _events((rng.normal(0, 1, n) * ramp).astype(np.float32)[:, None]) == []


def test_tonality_term_caps_pure_tones_not_broadband_sound() -> None:
    """``tone_flatness_db``: a window scores at most its band flatness minus the setting."""
    tone = bursts(RATE, 8.0, [(3.0, 4.5)])  # a sine 37 dB over white noise: flatness ~ -40 dB
    rng = np.random.default_rng(7)
    noisy = bursts(RATE, 8.0, [])
    noisy[3 * RATE : int(4.5 * RATE)] += rng.normal(0, 0.05, (int(1.5 * RATE), 1)).astype(
        np.float32
    )  # a broadband burst as loud as the sine: flatness ~ -2 dB (Hann window)
    off = DetectorSettings(tone_flatness_db=-300.0)
    settings = DetectorSettings(tone_flatness_db=-30.0)
    assert SETTINGS.tone_flatness_db == -65.0  # the default: the sine still counts (below)
    assert len(_events(tone, off)) == len(_events(tone)) == 1 and _events(tone, settings) == []
    (event,) = _events(noisy, settings)
    assert event.peak_score_db > settings.start_threshold_db
    during = []
    for s in (off, SETTINGS, settings):
        detector = Detector(s, RATE)
        detector.scores = []
        events_of(detector, 0, tone, None)
        during.append([w.score_db for w in detector.scores if 3.1 * RATE < w.index < 4.4 * RATE])
    assert min(during[0]) > 30  # off: the sine 37 dB over the background
    assert 20 < min(during[1]) and max(during[1]) < 30  # default: its flatness (~ -40) + 65
    assert -15 < min(during[2]) and max(during[2]) < -5  # capped at its flatness (~ -40) + 30


def test_open_event_closes_at_end_of_stream_and_at_max_length() -> None:
    (event,) = _events(bursts(RATE, 5.0, [(3.0, 5.0)]))
    assert event.end_index == 5 * RATE
    settings = DetectorSettings(max_event_seconds=2.0)
    events = _events(bursts(RATE, 10.0, [(1.0, 9.0)]), settings)
    assert len(events) >= 3 and all(e.duration_seconds <= 2.0 for e in events)


def test_non_finite_input_is_scored_as_zero() -> None:
    x = bursts(RATE, 6.0, [(2.0, 3.0)])
    x[100:200] = np.nan
    assert len(_events(x)) == 1


def test_settings_errors_name_the_key(tmp_path: Path) -> None:
    def parse(table: dict) -> object:
        return parse_config({"events": table}, name="c.toml", base_dir=tmp_path)

    s = parse({"enabled": True, "start_threshold_db": 10, "webhook_url": "http://127.0.0.1:9/x"})
    assert s.events.detector.start_threshold_db == 10.0  # type: ignore[attr-defined]
    assert s.events.directory == str(tmp_path / "events")  # type: ignore[attr-defined]
    for table, message in [
        ({"start_threshold": 3}, "unknown key events.start_threshold; did you mean"),
        ({"end_threshold_db": 20}, "events.end_threshold_db must be <= start_threshold_db"),
        ({"window_seconds": 0}, "events.window_seconds must be a number > 0, got 0"),
        ({"webhook_url": "ftp://x"}, "events.webhook_url must be an http:// or https:// URL"),
        ({"webhook_retries": -1}, "events.webhook_retries must be an integer >= 0, got -1"),
        ({"exec_command": "notify-send"}, "events.exec_command must be a list of strings"),
        ({"pre_roll_seconds": "5"}, 'events.pre_roll_seconds must be a number >= 0, got "5"'),
    ]:
        with pytest.raises(ConfigError) as e:
            parse(table)
        assert str(e.value).startswith("c.toml: " + message), str(e.value)
        assert "\n" not in str(e.value)


def test_clip_assembler_cuts_the_exact_range() -> None:
    clips: list[Clip] = []
    asm = ClipAssembler(("mix", "orca"), 1000, 0.5, 0.3, 60.0, clips.append)
    signal = np.arange(20000, dtype=np.float32)[:, None]
    pos = 0
    rng = np.random.default_rng(0)
    announced = False
    while pos < signal.shape[0]:
        n = int(rng.integers(1, 700))
        block = signal[pos : pos + n]
        asm.add(pos, (block, -block), None)
        pos += block.shape[0]
        if pos > 9000 and not announced:
            asm.event("e1", 7000, 8000)  # start 7000 - 500 pre-roll, end 8000 + 300 post-roll
            announced = True
    (clip,) = clips
    assert clip.first_index == 6500 and clip.n_samples == 1800
    np.testing.assert_array_equal(clip.signals["mix"][:, 0], np.arange(6500, 8300))
    np.testing.assert_array_equal(clip.signals["orca"][:, 0], -np.arange(6500, 8300))
    assert asm.history_samples <= 500 + 10 * 1000 + 700  # pre-roll + margin + a block


def test_clip_files_hold_the_published_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = np.clip(rng.normal(0, 0.3, (5000, 2)), -1.2, 1.2).astype(np.float32)
    write_clip(tmp_path / "a.flac", x, 48000, "int16")
    back, rate = sf.read(tmp_path / "a.flac", dtype="int16")
    assert rate == 48000
    expected = np.rint(np.clip(x.astype(np.float64), -1, 1) * 32767).astype(np.int16)
    np.testing.assert_array_equal(back, expected)  # exact in float64, as the publisher
    write_clip(tmp_path / "b.flac", x, 48000, "float32")
    back24, _ = sf.read(tmp_path / "b.flac", dtype="float64")
    inside = np.abs(x) < 1
    assert np.max(np.abs(back24 - x)[inside]) <= 2.0**-24 + 1e-12


def _store(tmp_path: Path, free: list[int]) -> EventStore:
    guard = DiskGuard(tmp_path, 100.0, lambda path: free[0])
    return EventStore(
        tmp_path, sample_rate=1000, sample_format="int16", node="lab", guard=guard,
        queue_events=4,
    )  # fmt: skip


def test_store_appends_events_and_clips_and_obeys_the_disk_guard(tmp_path: Path) -> None:
    free = [10**12]
    store = _store(tmp_path, free)
    store.start(lambda index: 1_764_000_000_000_000_000 + index * 1_000_000)
    store.put_event({"kind": "event", "id": "lab_1"})
    signals = {
        "mix": np.full((100, 1), 0.5, np.float32),
        "orca_vocals": np.zeros((100, 1), np.float32),
    }
    store.put_clip(Clip("lab_1", 250, signals))
    assert store.idle.wait(5) or store.idle.wait(5)
    free[0] = 10  # below 100 MiB: the guard stops writing
    store.guard._due = 0.0
    store.put_event({"kind": "event", "id": "lab_2"})
    store.close()
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in lines] == ["event", "clip"]
    assert lines[1]["first_index"] == 250 and lines[1]["n_samples"] == 100
    assert lines[1]["files"]["mix"] == "lab_20251124T160000.250000Z_mix.flac"
    mix, _ = sf.read(tmp_path / lines[1]["files"]["mix"], dtype="int16")
    assert np.all(mix == round(0.5 * 32767))
    assert store.stats.events_logged == 1 and store.stats.events_not_logged == 1


def test_webhook_posts_rate_limits_and_retries() -> None:
    server = HookServer()
    try:
        hook = WebhookNotifier(WebhookSettings(url=server.url, min_interval_seconds=600), "lab")
        hook.start()
        sent = [hook.notify({"id": f"e{i}"}) for i in range(5)]  # a burst
        assert sent == [True, False, False, False, False]
        assert server.wait_posts(1, 10)
        hook.close()
        assert server.posts[0]["event"] == {"id": "e0"} and server.posts[0]["node"] == "lab"
        assert len(server.posts) == 1 and hook.stats.suppressed == 4
        # A failing server (HTTP 500) is retried with back-off until it answers 2xx.
        server.status = 500
        hook = WebhookNotifier(
            WebhookSettings(url=server.url, min_interval_seconds=0, backoff_seconds=0.05), "lab"
        )
        hook.start()
        hook.notify({"id": "x"})
        assert server.wait_posts(3, 10)
        server.status = 200
        deadline = time.monotonic() + 10
        while hook.stats.sent == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        hook.close()
        assert hook.stats.sent == 1 and hook.stats.attempts >= 3
    finally:
        server.close()


def test_dead_webhook_never_blocks_notify() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    hook = WebhookNotifier(WebhookSettings(url=url, min_interval_seconds=0, queue_events=3), "lab")
    hook.start()
    t0 = time.perf_counter()
    for i in range(50):
        hook.notify({"id": i})
    assert time.perf_counter() - t0 < 0.1
    t0 = time.perf_counter()
    hook.close()
    assert time.perf_counter() - t0 < 3.0
    assert hook.stats.sent == 0 and hook.stats.dropped >= 46


def test_exec_hook_gets_the_event_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "hook.json"
    guard = DiskGuard(tmp_path, 0.0)
    store = EventStore(
        tmp_path, sample_rate=1000, sample_format="float32", node="", guard=guard,
        queue_events=4, exec_command=("sh", "-c", f"cat > {out}"),
    )  # fmt: skip
    store.start(lambda index: index)
    store.put_event({"kind": "event", "id": "x1"})
    store.close()
    assert json.loads(out.read_text()) == {"kind": "event", "id": "x1"}
    assert store.stats.exec_failures == 0


def test_detect_cli_names_a_missing_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamsep.cli.main import main

    assert main(["detect", str(tmp_path / "nope.wav")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"streamsep: error: input not found: {tmp_path / 'nope.wav'}"
    (tmp_path / "empty").mkdir()
    assert main(["detect", str(tmp_path / "empty")]) == 1
    assert "no audio files" in capsys.readouterr().err


def test_background_start_below_the_first_window_finds_a_call_at_the_start() -> None:
    """A file that starts during a call: with the background started 20 dB low the call is an
    event; started at the first window (default) it is taken for the background."""
    x = bursts(RATE, 4.0, [(0.0, 1.5)])
    quiet = bursts(RATE, 4.0, [], seed=5)  # a noise stem under the call
    assert events_of(Detector(SETTINGS, RATE), 0, x, quiet) == []
    early = DetectorSettings(background_start_db=20.0)
    (event,) = events_of(Detector(early, RATE), 0, x, quiet)
    assert event.start_index == 0 and abs(event.end_index - 1.5 * RATE) <= RATE // 10
    # Without a noise stem nothing guards a stream's start: the setting does not apply.
    assert events_of(Detector(early, RATE), 0, x, None) == _events(x)


def test_detect_cli_background_start_reaches_the_detector_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--background-start-db`` is a detector setting: a bad value fails before any work,
    naming the key."""
    from streamsep.cli.main import main

    assert main(["detect", str(tmp_path / "nope.wav"), "--background-start-db", "-1"]) == 1
    err = capsys.readouterr().err.strip()
    assert "events.background_start_db" in err and "nope.wav" not in err
