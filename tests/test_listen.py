"""``streamsep listen``: gap-free recordings (gaps filled with silence of the reported length),
rollover, levels lines, playback path; ``streamsep keys``."""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from streamsep.cli.main import main
from streamsep.cli.stream import FileStreamer
from streamsep.engine.offline import Separator
from streamsep.errors import ConfigError
from streamsep.net import protocol as proto
from streamsep.net.listen import ListenSettings, format_levels, listen
from streamsep.net.publish import PublishSettings

from ._net import ScriptedPublisher, ipc_endpoint
from .test_publish import SMALL_PARAMS

__all__ = ["ipc_endpoint"]  # a fixture

RATE = 8000
TOPIC = "audio.orca_vocals"


def _timeline(n: int) -> np.ndarray:
    """Stream sample i has value (i + 1) / 1e5 on channel 0 and its negative on channel 1."""
    v = (np.arange(n, dtype=np.float64) + 1) / 1e5
    return np.stack([v, -v], axis=1).astype(np.float32)


# (first_sample, n_samples, sequence, lost_samples): a slow joiner at 1000; the publisher drops
# 500 samples (announced); message 7 (700 samples) is lost in transport (not announced).
SCRIPT = [(1000, 2000, 3, 0), (3000, 1000, 4, 0), (4500, 3000, 5, 500), (8200, 2000, 7, 0)]
STREAM = _timeline(20000)


def _expected_recording(limit: int) -> np.ndarray:
    """What the file must hold: the received samples, silence where samples were missing."""
    out = np.zeros((9200, 2), np.float32)
    for first, n, _, _ in SCRIPT:
        out[first - 1000 : first - 1000 + n] = STREAM[first : first + n]
    return out[:limit]


def _play_script(pub: ScriptedPublisher, *, levels: bool = False) -> None:
    if levels:
        body = {"capture_time_ns": 1_764_000_000_000_000_000, "levels": {"orca_vocals": {
            "rms_dbfs": -31.25, "peak_dbfs": -18.0, "rms_db_re_1upa": 113.75,
            "peak_db_re_1upa": 127.0}}}  # fmt: skip
        pub.socket.send_multipart(proto.encode_json("levels", body))
    for first, n, sequence, lost in SCRIPT:
        flags = proto.FLAG_GAP if lost else 0
        pub.send(TOPIC, STREAM[first : first + n], sequence=sequence, first_sample=first,
                 flags=flags, lost=lost)  # fmt: skip
    pub.send(TOPIC, STREAM[10200:10300], sequence=8, first_sample=10200, flags=2)


def _run_in_thread(target: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = target(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised by the test
            result["error"] = e

    thread = threading.Thread(target=run, name="test-listen", daemon=True)
    thread.start()
    return thread, result


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_listen_record_for_n_seconds_fills_gaps_with_silence(
    suffix: str,
    ipc_endpoint: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Acceptance 4: exactly the received samples, gaps filled by silence of the reported
    length, cut at exactly N seconds."""
    path = tmp_path / f"rec{suffix}"
    pub = ScriptedPublisher(ipc_endpoint)
    argv = ["listen", "--connect", ipc_endpoint, "--stem", "orca_vocals", "--record", str(path),
            "--seconds", "1", "--levels", "--idle-timeout", "20"]  # fmt: skip
    caplog.set_level(logging.WARNING, logger="streamsep.net.listen")
    thread, result = _run_in_thread(main, argv)
    try:
        pub.wait_subscriptions(2)
        _play_script(pub, levels=True)
        thread.join(30)
    finally:
        pub.close()
    assert not thread.is_alive() and result.get("value") == 0, result
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == RATE and data.shape == (RATE, 2)  # exactly 1 s
    expected = _expected_recording(RATE)
    if suffix == ".wav":
        np.testing.assert_array_equal(data, expected)
    else:
        np.testing.assert_allclose(data, expected, atol=2.0**-23, rtol=0)
    assert not data[2000 + 1000 : 2000 + 1000 + 500].any()  # the announced gap
    assert not data[6500 : 6500 + 700].any()  # the gap seen by index arithmetic
    gaps = [r.getMessage() for r in caplog.records if "filled with silence" in r.getMessage()]
    assert len(gaps) == 2
    assert "500 samples (0.062 s) missing before sample 4500" in gaps[0]
    assert "700 samples (0.087 s) missing before sample 8200" in gaps[1]
    out = capsys.readouterr().out
    assert "orca_vocals rms   -31.2 peak   -18.0 dBFS (113.8 / 127.0 dB re 1 µPa)" in out
    assert "orca_vocals: 1.000 s, 6800 samples received, 1200 filled in 2 gap(s)" in out


def test_listen_record_dir_rolls_over_at_exact_sample_counts(
    ipc_endpoint: str, tmp_path: Path
) -> None:
    settings = ListenSettings(
        endpoint=ipc_endpoint, stems=("orca_vocals",), record_dir=str(tmp_path / "rec"),
        rollover_seconds=0.25, record_format="wav", idle_timeout_seconds=20,
    )  # fmt: skip
    pub = ScriptedPublisher(ipc_endpoint)
    thread, result = _run_in_thread(listen, settings)
    try:
        pub.wait_subscriptions(1)
        _play_script(pub)
        thread.join(30)
    finally:
        pub.close()
    assert not thread.is_alive() and "error" not in result, result
    report = result["value"].stems["orca_vocals"]
    assert report.ended and report.filled_samples == 1200 and report.received_samples == 8100
    files = [Path(f) for f in report.files]
    assert [p.name for p in files] == sorted(p.name for p in (tmp_path / "rec").iterdir())
    pieces = [sf.read(p, dtype="float32", always_2d=True)[0] for p in files]
    assert [len(p) for p in pieces] == [2000, 2000, 2000, 2000, 1300]
    expected = np.concatenate([_expected_recording(9200), STREAM[10200:10300]])
    np.testing.assert_array_equal(np.concatenate(pieces), expected)
    # Names carry the UTC capture time of each file's first sample (sample 1000 + 2000 k).
    assert files[0].name == "orca_vocals_20251124T160000.125Z.wav"
    assert files[1].name == "orca_vocals_20251124T160000.375Z.wav"


def test_listen_records_a_published_file_end_to_end(
    ipc_endpoint: str, tmp_path: Path, rng: np.random.Generator
) -> None:
    x = (rng.standard_normal((2 * RATE + 77, 2)) * 0.2).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, RATE, subtype="FLOAT")
    separator = Separator(SMALL_PARAMS, "passthrough")
    settings = ListenSettings(
        endpoint=ipc_endpoint, stems=("orca_vocals", "mix"), record_path=str(tmp_path / "out.wav"),
        idle_timeout_seconds=20,
    )  # fmt: skip
    publish = PublishSettings(endpoints=[ipc_endpoint])
    with FileStreamer(tmp_path / "in.wav", separator.model, publish) as streamer:
        thread, result = _run_in_thread(listen, settings)
        streamer.start(wait_subscribers=2, wait_seconds=10)
        thread.join(30)
        assert streamer.wait(10)
    assert not thread.is_alive() and "error" not in result, result
    vocals, _ = sf.read(tmp_path / "out.orca_vocals.wav", dtype="float32", always_2d=True)
    mix, _ = sf.read(tmp_path / "out.mix.wav", dtype="float32", always_2d=True)
    np.testing.assert_array_equal(vocals, separator.separate(x, RATE)["orca_vocals"])
    np.testing.assert_array_equal(mix, x)


def test_play_writes_the_timeline_with_silence_for_gaps(
    ipc_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The --play path against a stand-in sounddevice module (no audio device here)."""
    written: list[np.ndarray] = []

    class FakeOutputStream:
        def __init__(self, samplerate: int, channels: int, dtype: str) -> None:
            assert (samplerate, channels, dtype) == (RATE, 2, "float32")

        def start(self) -> None: ...

        def write(self, block: np.ndarray) -> bool:
            written.append(block.copy())
            return False

        def stop(self) -> None: ...

        def close(self) -> None: ...

    fake = types.SimpleNamespace(OutputStream=FakeOutputStream, PortAudioError=OSError)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    settings = ListenSettings(endpoint=ipc_endpoint, stems=("orca_vocals",), play=True,
                              seconds=1.0, idle_timeout_seconds=20)  # fmt: skip
    pub = ScriptedPublisher(ipc_endpoint)
    thread, result = _run_in_thread(listen, settings)
    try:
        pub.wait_subscriptions(1)
        _play_script(pub)
        thread.join(30)
    finally:
        pub.close()
    assert not thread.is_alive() and "error" not in result, result
    np.testing.assert_array_equal(np.concatenate(written), _expected_recording(RATE))


def test_format_levels_without_calibration() -> None:
    silence = {"rms_dbfs": -240.0, "peak_dbfs": -240.0}
    line = format_levels({"capture_time_ns": 0, "levels": {"noise": silence}})
    assert line == "00:00:00.000Z | noise rms  -240.0 peak  -240.0 dBFS"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"record_path": "a.wav", "record_dir": "d"}, "exclusive"),
        ({"record_path": "a.mp3"}, "must end in .flac or .wav"),
        ({"rollover_seconds": 5.0}, "rollover_seconds needs record_dir"),
        ({"record_dir": "d", "record_format": "ogg"}, "record_format"),
        ({"seconds": 0.0}, "seconds must be > 0"),
    ],
)
def test_listen_settings_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ListenSettings(endpoint="ipc:///x", **kwargs)


def test_keys_command_makes_a_pair_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", str(tmp_path / "k"), "--name", "hydro1"]) == 0
    public, secret = tmp_path / "k" / "hydro1.key", tmp_path / "k" / "hydro1.key_secret"
    assert "public-key" in public.read_text() and "secret-key" in secret.read_text()
    assert "secret-key" not in public.read_text()
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert str(public) in capsys.readouterr().out
    assert main(["keys", str(tmp_path / "k"), "--name", "hydro1"]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
