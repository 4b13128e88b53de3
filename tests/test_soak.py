"""The soak tool's verification logic (tools/soak.py): unit checks on made-up chunks, then one
real daemon run on a few seconds of the fixture recordings (passthrough, about 5 s)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from streamsep.net import protocol as proto
from streamsep.net.subscribe import Chunk
from streamsep.resources import data_path
from tools import soak

RATE = 48000


def _chunk(
    first: int,
    n: int,
    *,
    sequence: int,
    flags: int = 0,
    missing: int = 0,
    missing_messages: int = 0,
    topic: str = "audio.noise",
) -> Chunk:
    header = proto.AudioHeader(
        flags=flags,
        n_frames=n,
        sequence=sequence,
        first_sample=first,
        capture_time_ns=first * 1_000_000_000 // RATE,
        lost_samples=missing,
        filled_samples=0,
        sample_rate=RATE,
        n_channels=1,
        sample_format=proto.FORMAT_FLOAT32,
    )
    samples = np.zeros((n, 1), dtype=np.float32)
    stem = topic.removeprefix("audio.")
    return Chunk(topic, stem, header, samples, missing, missing_messages, sequence == 0)


def _stream(sizes: list[int]) -> list[Chunk]:
    chunks, first = [], 0
    for i, n in enumerate(sizes):
        last = i == len(sizes) - 1
        flags = proto.FLAG_END_OF_STREAM if last else 0
        chunks.append(_chunk(first, n, sequence=i, flags=flags))
        first += n
    return chunks


def test_verifier_accepts_a_complete_stream() -> None:
    v = soak.Verifier()
    for c in _stream([100, 200, 50, 0]):
        v.add(c, arrival_ns=c.capture_time_ns + 10**8)
    assert v.problems(350) == []
    assert v.topics["audio.noise"].received == 350


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        ("drop", "index gaps"),
        ("flag", "gap flags"),
        ("late_join", "first index 100"),
        ("no_end", "no end of stream"),
        ("short", "expected 400"),
    ],
)
def test_verifier_reports_each_fault(mutate: str, expected: str) -> None:
    chunks = _stream([100, 200, 50, 0])
    total = 350
    if mutate == "drop":  # a message lost: indices jump, sequence too
        del chunks[1]
    elif mutate == "flag":
        c = chunks[2]
        chunks[2] = _chunk(c.first_sample, c.n_samples, sequence=2, flags=proto.FLAG_GAP)
    elif mutate == "late_join":
        chunks = chunks[1:]
    elif mutate == "no_end":
        chunks = chunks[:-1]
    elif mutate == "short":
        total = 400
    v = soak.Verifier()
    for c in chunks:
        v.add(c, arrival_ns=0)
    problems = v.problems(total)
    assert any(expected in p for p in problems), problems


def test_rss_growth_and_lag_bounds() -> None:
    # (wall s, VmRSS kB, audio s received): 10x real time, so audio minute 5 is wall 30 s.
    flat = [(float(t), 100_000 + (t % 3), 10.0 * t) for t in range(0, 100)]
    assert soak.rss_growth(flat, 1000.0)["ok"] is True
    leaking = [(float(t), 100_000 + 200 * t, 10.0 * t) for t in range(0, 100)]
    growth = soak.rss_growth(leaking, 1000.0)
    assert growth["ok"] is False and growth["from_seconds"] == pytest.approx(10.0)
    hour = soak.rss_growth(flat, 3600.0)
    assert hour["from_audio_seconds"] == 300.0 and hour["from_seconds"] == pytest.approx(30.0)
    # Warm-up growth before audio minute 5 does not count.
    warm_up = [(t, 50_000 + 500 * t if t < 30 else kb, a) for t, kb, a in flat]
    assert soak.rss_growth(warm_up, 3600.0)["ok"] is True
    drain_spike = flat[:-2] + [(98.0, 150_000, 980.0), (99.0, 150_000, 990.0)]  # flush
    assert soak.rss_growth(drain_spike, 1000.0)["ok"] is True
    assert soak.lag_bounded({0: 5.0, 1: 0.6, 2: 0.61, 3: 0.62, 4: 9.0})["ok"] is True
    assert soak.lag_bounded({0: 0.6, 1: 0.6, 2: 1.0, 3: 2.0, 4: 2.0})["ok"] is False


def test_real_daemon_run_is_verified(tmp_path: Path) -> None:
    audio = tmp_path / "in.flac"
    n = soak.build_input(audio, 3.0)
    assert n == 3 * soak.BASE_RATE
    report = soak.run_daemon(
        tmp_path,
        audio=audio,
        base_samples=n,
        loops=2,
        realtime=False,
        params=str(data_path("passthrough.json")),
        model="passthrough",
        base_config=None,
        sample_seconds=0.2,
        tag="t",
        timeout_seconds=60,
    )
    problems = [p for p in report["problems"] if not p.startswith("RSS growth")]  # too short
    assert problems == [], report
    assert report["daemon"]["samples_captured"] == 2 * n
    assert report["daemon"]["samples_published"] == 2 * n
    assert set(report["topics"]) == {"audio.orca_vocals", "audio.noise", "audio.mix"}
    for topic in report["topics"].values():
        assert topic["received"] == 2 * n and topic["first_index"] == 0


def test_relative_model_paths_work_and_a_failing_daemon_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's config lives in a temporary folder: a params path relative to the caller's
    folder still finds its file; a daemon that cannot start is reported with its error, not
    taken for a subscriber that joined late."""
    audio = tmp_path / "in.flac"
    n = soak.build_input(audio, 1.0)
    shutil.copy(data_path("passthrough.json"), tmp_path / "p.json")
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"  # where the daemon's config goes, not the caller's folder
    work.mkdir()
    common = {
        "audio": audio,
        "base_samples": n,
        "loops": 1,
        "realtime": False,
        "base_config": None,
        "sample_seconds": 0.2,
        "timeout_seconds": 60,
    }
    report = soak.run_daemon(work, params="p.json", model="passthrough", tag="rel", **common)
    assert report["daemon"]["samples_published"] == n
    with pytest.raises(
        SystemExit, match=r"daemon exited with status \d+ before publishing: .*m\.tflite"
    ):
        soak.run_daemon(work, params="p.json", model="m.tflite", tag="bad", **common)
