"""Web monitor without a browser: settings and the open-listen refusal, spectrogram scaling,
the browser wire format, the live HLS output across gaps and restarts, and 20 WebSocket
clients at once with a stalled one (the server as a ``streamsep web`` subprocess), and the
checks on orca activity events passed to the page."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from streamsep.errors import ConfigError, StreamsepError
from streamsep.net import protocol as proto
from streamsep.net.subscribe import Chunk
from streamsep.web import frames
from streamsep.web.feed import Feed, detection_body
from streamsep.web.hls import HlsWriter
from streamsep.web.settings import HlsOutSettings, WebSettings
from streamsep.web.spectrogram import ColumnMaker

from ._net import free_tcp_endpoint
from ._web import TonePublisher

RATE = 16000


# -- acceptance 6: a non-loopback --listen needs a token ----------------------------------------


def test_open_listen_without_token_is_refused_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "streamsep", "web", "--connect", "tcp://127.0.0.1:9",
         "--listen", "0.0.0.0:8080"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "streamsep: error: refusing to listen on 0.0.0.0:8080 without an access token: anyone "
        "who can reach it could watch and listen; set a token (--token / web.token)"
    ]


def test_settings_checks() -> None:
    WebSettings(listen="[::1]:0")
    WebSettings(listen="localhost:8080")
    WebSettings(listen="0.0.0.0:8080", token="x" * 16)
    with pytest.raises(ConfigError, match="at least 16 characters"):
        WebSettings(listen="0.0.0.0:8080", token="short")
    with pytest.raises(ConfigError, match='web.listen must be "HOST:PORT", got "8080"'):
        WebSettings(listen="8080")
    with pytest.raises(ConfigError, match="web.db_max must be > web.db_min"):
        WebSettings(db_min=0, db_max=-10)
    with pytest.raises(ConfigError, match=r"hls_out.segment_seconds must be in \[0.5, 30\]"):
        HlsOutSettings(directory="x", segment_seconds=0.1)


# -- spectrogram and frames --------------------------------------------------------------------


def test_spectrogram_full_scale_sine_reads_0_dbfs_in_its_row() -> None:
    maker = ColumnMaker(RATE, columns_per_second=20, max_hz=8000, n_bins=256, db_min=-100,
                        db_max=0)  # fmt: skip
    t = np.arange(RATE) / RATE
    tone = np.sin(2 * np.pi * 2000 * t).astype(np.float32)
    first, columns = maker.feed(tone[:5000])
    more_first, more = maker.feed(tone[5000:])
    assert first == maker.n_fft // 2 and more_first == first + columns.shape[0] * maker.hop
    allc = np.concatenate([columns, more])
    assert allc.shape == ((RATE - maker.n_fft) // maker.hop + 1, maker.n_bins)
    row = int(2000 / (maker.max_hz / maker.n_bins))
    assert np.all(np.argmax(allc, axis=1) == row)
    assert np.all(allc[:, row] >= 253)  # 0 dBFS (a row takes the maximum of its FFT bins)
    silence_first, silent = maker.feed(np.zeros(RATE, np.float32))
    assert np.all(silent[-5:] == 0)  # -240 dB clips to db_min


def test_frames_header_and_seq() -> None:
    cols = np.arange(6, dtype=np.uint8).reshape(2, 3)
    msg = frames.pack_columns(1, cols, 1000.5, 1100.25)
    kind, stem, n_bins, count, seq, _, t0, t_end = frames.HEADER.unpack_from(msg)
    assert (kind, stem, n_bins, count, seq, t0, t_end) == (1, 1, 3, 2, 0, 1000.5, 1100.25)
    assert msg[32:] == bytes(range(6))
    numbered = frames.with_seq(msg, 7)
    assert isinstance(numbered, bytes) and frames.HEADER.unpack_from(numbered)[4] == 7
    text = frames.with_seq(frames.json_message("gap", kind="lost", n_samples=3), 9)
    assert json.loads(text) == {"seq": 9, "type": "gap", "kind": "lost", "n_samples": 3}


# -- live HLS output: gaps, restarts, continuity ------------------------------------------------


def _chunk(first: int, n: int, t0_ns: int, *, new: bool = False, end: bool = False) -> Chunk:
    t = np.arange(first, first + n) / RATE
    samples = (0.4 * np.sin(2 * np.pi * 700 * t)).astype(np.float32)[:, None]
    header = proto.AudioHeader(
        flags=proto.FLAG_END_OF_STREAM if end else 0, n_frames=n, sequence=first // n,
        first_sample=first, capture_time_ns=t0_ns + first * 10**9 // RATE, lost_samples=0,
        filled_samples=0, sample_rate=RATE, n_channels=1, sample_format=1,
    )  # fmt: skip
    return Chunk("audio.orca_vocals", "orca_vocals", header, samples, 0, 0, new)


def _playlist(folder: Path) -> list[dict[str, Any]]:
    """Segments of live.m3u8: sequence, discontinuity, pdt (ms), duration."""
    text = (folder / "live.m3u8").read_text()
    sequence = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))  # type: ignore[union-attr]
    out, pending = [], {"discontinuity": False}
    for line in text.splitlines():
        if line == "#EXT-X-DISCONTINUITY":
            pending["discontinuity"] = True
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            stamp = line.split(":", 1)[1].replace("Z", "+00:00")
            pending["pdt_ms"] = _iso_ms(stamp)
        elif line.startswith("#EXTINF:"):
            pending["duration"] = float(line[8:].rstrip(","))
        elif line and not line.startswith("#"):
            out.append({**pending, "name": line, "sequence": sequence})
            sequence += 1
            pending = {"discontinuity": False}
    return out


def _iso_ms(stamp: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(stamp).timestamp() * 1000


def _feed(writer: HlsWriter, first: int, seconds: float, t0_ns: int, *, end: bool = True) -> None:
    n, chunk = int(seconds * RATE), 1600
    for i in range(first, first + n, chunk):
        last = end and i + chunk >= first + n
        writer.write(_chunk(i, chunk, t0_ns, new=i == first, end=last))


def test_hls_sequence_and_program_date_time_continue_across_gaps_and_restarts(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "hls"
    settings = HlsOutSettings(directory=str(folder), segment_seconds=1.0, window_segments=20,
                              max_fill_seconds=1.0)  # fmt: skip
    t0 = 1_764_000_000_000_000_000
    writer = HlsWriter(settings)
    writer.start()
    _feed(writer, 0, 3.0, t0, end=False)
    writer.write(_chunk(int(3.5 * RATE), 1600, t0))  # 0.5 s missing: filled with silence
    writer.write(_chunk(int(3.6 * RATE), 1600, t0, end=True))
    writer.stop()
    assert writer.stats()["filled_samples"] == RATE // 2 and writer.stats()["errors"] == 0
    first_run = _playlist(folder)
    # a restart of the writer, 10 s later in capture time, with a 5 s gap inside (> max_fill)
    writer = HlsWriter(settings)
    writer.start()
    _feed(writer, 0, 2.0, t0 + 10 * 10**9, end=False)
    writer.write(_chunk(7 * RATE, 1600, t0 + 10 * 10**9, end=True))
    writer.stop()
    segments = _playlist(folder)
    assert segments[: len(first_run)] == first_run
    assert [s["sequence"] for s in segments] == list(range(len(segments)))
    assert [s["name"] for s in segments] == [f"seg{s['sequence']}.ts" for s in segments]
    starts = [i for i, s in enumerate(segments) if s["discontinuity"]]
    assert starts == [len(first_run), len(segments) - 1]
    priming_ms = 1024 / RATE * 1000
    assert segments[0]["pdt_ms"] == pytest.approx(t0 / 1e6 - priming_ms, abs=1)
    assert segments[starts[0]]["pdt_ms"] == pytest.approx(t0 / 1e6 + 10000 - priming_ms, abs=1)
    assert segments[-1]["pdt_ms"] == pytest.approx(t0 / 1e6 + 17000 - priming_ms, abs=1)
    for a, b in zip(segments, segments[1:], strict=False):  # continuous within a period
        if not b["discontinuity"]:
            assert b["pdt_ms"] == pytest.approx(a["pdt_ms"] + a["duration"] * 1000, abs=1)
    # the first period decodes to the input, the filled half second silent, at its place
    with av.open(io.BytesIO(b"".join((folder / s["name"]).read_bytes()
                                     for s in first_run))) as c:  # fmt: skip
        decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])[1024:]
    t = np.arange(decoded.shape[0]) / RATE
    reference = 0.4 * np.sin(2 * np.pi * 700 * t)
    reference[int(3.0 * RATE) : int(3.5 * RATE)] = 0
    n = int(3.7 * RATE)
    error = decoded[:n] - reference[:n]
    snr = 10 * np.log10(np.sum(reference[:n] ** 2) / np.sum(error**2))
    assert snr > 25, snr
    assert np.sqrt(np.mean(decoded[int(3.1 * RATE) : int(3.4 * RATE)] ** 2)) < 1e-3


# -- acceptance 3: 20 WebSocket clients and a stalled one ---------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _clients(url: str, n: int, stop: asyncio.Event) -> list[dict[str, Any]]:
    import aiohttp

    async def one(session: aiohttp.ClientSession) -> dict[str, Any]:
        seqs: list[int] = []
        ended: set[str] = set()
        latencies: list[float] = []
        async with session.ws_connect(url + "ws") as ws:
            await ws.send_str(json.dumps({"type": "audio", "stems": ["mix", "orca_vocals"]}))
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    seqs.append(frames.HEADER.unpack_from(msg.data)[4])
                    latencies.append(time.time() * 1000 - frames.HEADER.unpack_from(msg.data)[7])
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    body = json.loads(msg.data)
                    seqs.append(body["seq"])
                    if body["type"] == "stream" and body["event"] == "end":
                        ended.add(body["stem"])
                if len(ended) == 3:
                    break
        return {"seqs": seqs, "latencies": latencies}

    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(one(session) for _ in range(n)))


def test_twenty_clients_each_get_every_message_and_a_stalled_one_slows_none(
    tmp_path: Path,
) -> None:
    endpoint = free_tcp_endpoint()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamsep", "web", "--connect", endpoint, "--listen",
         "127.0.0.1:0", "--client-queue", "64"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = line.strip().split(" ", 2)[2]
        host, port = url[len("http://") :].rstrip("/").rsplit(":", 1)
        # the stalled client: a WebSocket handshake that asks for all audio, then never reads
        stalled = socket.create_connection((host, int(port)))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        mask = b"\x00\x00\x00\x00"
        payload = json.dumps({"type": "audio", "stems": ["mix", "orca_vocals", "noise"]}).encode()
        stalled.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + payload)
        cpu0 = _cpu_seconds(server.pid)
        pub = TonePublisher(endpoint, seconds=8.0)
        started = time.monotonic()

        async def run() -> list[dict[str, Any]]:
            stop = asyncio.Event()
            task = asyncio.create_task(_clients(url, 20, stop))
            await asyncio.sleep(1.0)  # the clients are connected
            pub.start()
            return await asyncio.wait_for(task, 60)

        results = asyncio.run(run())
        wall = time.monotonic() - started
        cpu = _cpu_seconds(server.pid) - cpu0
        rss = _rss_kib(server.pid)
        import urllib.request

        with urllib.request.urlopen(url + "stats", timeout=10) as r:
            stats = json.load(r)
        pub.stop()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(20)
    assert server.returncode == 0
    counts = [len(r["seqs"]) for r in results]
    for r in results:  # every message, in order, none dropped
        assert r["seqs"] == list(range(1, len(r["seqs"]) + 1))
    assert len(set(counts)) == 1 and counts[0] > 500, counts
    stalled_stats = [c for c in stats["per_client"] if c["dropped"] > 0]
    assert len(stalled_stats) == 1, stats["per_client"]
    assert stalled_stats[0]["queued"] <= 64
    latencies = np.concatenate([r["latencies"] for r in results])
    p99 = float(np.percentile(latencies, 99))
    assert p99 < 300, p99  # ms from capture to client, with the stalled client still there
    stalled.close()
    print(f"\n20 clients + 1 stalled: {counts[0]} messages each over {wall:.1f} s "
          f"(8 s of 16 kHz audio, 3 stems), server CPU {cpu:.2f} s ({100 * cpu / wall:.0f} %), "
          f"RSS {rss / 1024:.0f} MiB, latency p99 {p99:.0f} ms, stalled client dropped "
          f"{stalled_stats[0]['dropped']}")  # fmt: skip


# -- the daemon's [web] and [hls_out] -----------------------------------------------------------


def test_daemon_config_web_and_hls_out(tmp_path: Path) -> None:
    from streamsep.daemon.config import parse_config

    s = parse_config({}, name="c.toml", base_dir=tmp_path)
    assert s.web is None and s.hls_out is None
    s = parse_config(
        {"web": {"enabled": True, "listen": "127.0.0.1:0", "columns_per_second": 10},
         "hls_out": {"enabled": True, "directory": "out", "stem": "noise"}},
        name="c.toml", base_dir=tmp_path,
    )  # fmt: skip
    assert s.web is not None and s.web.columns_per_second == 10
    assert s.hls_out is not None and s.hls_out.directory == str(tmp_path / "out")
    with pytest.raises(ConfigError, match="c.toml: refusing to listen on 0.0.0.0:80 without"):
        parse_config({"web": {"enabled": True, "listen": "0.0.0.0:80"}}, name="c.toml",
                     base_dir=tmp_path)  # fmt: skip
    with pytest.raises(ConfigError, match="unknown key web.lisen; did you mean 'listen'"):
        parse_config({"web": {"lisen": "x"}}, name="c.toml", base_dir=tmp_path)


def test_daemon_runs_web_and_hls_out_in_process(tmp_path: Path) -> None:
    import soundfile as sf

    params = {
        "instrument_list": ["orca_vocals", "noise"], "sample_rate": RATE, "frame_length": 512,
        "frame_step": 128, "T": 16, "F": 128, "n_channels": 1, "mask_extension": "average",
    }  # fmt: skip
    (tmp_path / "params.json").write_text(json.dumps(params))
    t = np.arange(RATE * 4) / RATE
    sf.write(tmp_path / "in.wav", (0.3 * np.sin(2 * np.pi * 800 * t)).astype(np.float32), RATE)
    endpoint = free_tcp_endpoint()
    (tmp_path / "c.toml").write_text(
        f'[source]\nkind = "file"\npath = "in.wav"\nrealtime = true\n'
        f'[model]\nparams = "params.json"\nmodel = "passthrough"\n'
        f'[publish]\nendpoints = ["{endpoint}"]\nend_timeout_seconds = 2\n'
        f'[web]\nenabled = true\nlisten = "127.0.0.1:0"\n'
        f'[hls_out]\nenabled = true\ndirectory = "hls"\nsegment_seconds = 1.0\n'
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "streamsep", "run", "-c", str(tmp_path / "c.toml")],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "web monitor on http://127.0.0.1:" in proc.stderr
    state = json.loads((tmp_path / "hls" / "state.json").read_text())
    total = sum(s["duration"] for s in state["segments"])
    assert 4.0 <= total <= 4.0 + 2 * 1024 / RATE + 0.2, total  # the whole file, its tail too
    assert (tmp_path / "hls" / "live.m3u8").read_text().count("#EXTINF:") == 4


def test_token_guards_every_route(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    token = "s3cret-token-0123456789"
    from streamsep.web.server import WebMonitor

    with WebMonitor(free_tcp_endpoint(), WebSettings(listen="127.0.0.1:0", token=token)) as mon:
        for path in ("", "static/app.js", "stats", "ws", "player.html"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(mon.url + path, timeout=10)
            assert e.value.code == 401, path
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(mon.url + "?token=" + token[:-1] + "x", timeout=10)
        with urllib.request.urlopen(mon.url + "?token=" + token, timeout=10) as r:
            assert b"streamsep live monitor" in r.read()
            assert f"streamsep_token={token}" in r.headers["Set-Cookie"]
            assert "HttpOnly" in r.headers["Set-Cookie"]
        request = urllib.request.Request(
            mon.url + "stats", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            assert json.load(r)["clients"] == 0


def test_bad_endpoint_is_a_one_line_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "streamsep", "web", "--connect", "nonsense", "--listen",
         "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.startswith("streamsep: error: web: cannot connect to 'nonsense': ")
    assert len(proc.stderr.strip().splitlines()) == 1


# -- orca activity events ----------------------------------------------------------------------


def _event_body(**changes: Any) -> dict[str, Any]:
    body = {
        "kind": "event", "id": "n_20261130T120000.000000Z", "sequence": 0, "start_index": 32000,
        "end_index": 48000, "start_time_ns": 10**18, "end_time_ns": 10**18 + 10**9,
        "duration_seconds": 1.0, "peak_score_db": 20.5, "peak_level_dbfs": -30.0,
        "calibrated": False, "peak_level_db_re_1upa": None, "band_hz": [800.0, 4000.0],
        "settings": {"window_seconds": 0.1}, "model": "m",
    }  # fmt: skip
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"start_index": "0"}, "start_index"),
        ({"end_time_ns": None}, "end_time_ns"),
        ({"peak_score_db": float("nan")}, "peak_score_db"),
        ({"sequence": True}, "sequence"),
        ({"end_time_ns": 10**18 - 1}, "before start_time_ns"),
        ({"id": 7}, "id"),
        ({"id": "x" * 300}, "id"),
        ({"band_hz": [800.0, float("inf")]}, "band_hz"),
        ({"band_hz": [1.0]}, "band_hz"),
        ({"band_hz": "800-4000"}, "band_hz"),
    ],
)
def test_detection_body_refuses_a_bad_event_naming_the_field(
    changes: dict[str, Any], named: str
) -> None:
    with pytest.raises(StreamsepError, match=named):
        detection_body(_event_body(**changes))


def test_detection_body_drops_a_non_finite_calibrated_level() -> None:
    body = detection_body(_event_body(calibrated=True, peak_level_db_re_1upa=float("nan")))
    assert body["calibrated"] is False and body["peak_level_db_re_1upa"] is None
    body = detection_body(_event_body(calibrated=True, peak_level_db_re_1upa=101.5))
    assert body["calibrated"] is True and body["peak_level_db_re_1upa"] == 101.5


def test_feed_passes_good_events_and_skips_bad_ones() -> None:
    """Through a real publisher: malformed ``events`` messages are counted and skipped, the
    feed goes on, and a good one reaches the browsers with only the fields the page shows."""
    endpoint = free_tcp_endpoint()
    got: list[dict[str, Any]] = []
    audio, detected = threading.Event(), threading.Event()

    def emit(message: bytes | str, stem: str | None) -> None:
        if isinstance(message, bytes):
            audio.set()
        elif json.loads(message)["type"] == "detection":
            got.append(json.loads(message))
            detected.set()

    feed = Feed(endpoint, WebSettings(listen="127.0.0.1:0"), emit)
    feed.start()
    pub = TonePublisher(endpoint).start()
    try:
        assert audio.wait(20), "no audio reached the feed"
        bad = [_event_body(start_index=None), _event_body(band_hz=None), {"kind": "event"}]
        for body in bad:
            pub.publisher.send_json(proto.EVENTS_TOPIC, body)
        pub.publisher.send_json(proto.EVENTS_TOPIC, _event_body(sequence=3))
        assert detected.wait(20), "the good event did not arrive"
        assert feed.errors == len(bad)
        assert len(got) == 1
        body = got[0]["body"]
        assert body["sequence"] == 3 and body["start_index"] == 32000
        assert body["band_hz"] == [800.0, 4000.0] and body["calibrated"] is False
        assert "settings" not in body and "model" not in body  # only what the page shows
        assert any("detection" in m for m in feed.snapshot())  # replayed to late browsers
    finally:
        pub.stop()
        feed.stop()
