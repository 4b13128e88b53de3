"""Daemon configs: the shipped ones load; every bad config gives one line naming the key and a
non-zero exit from ``check`` and ``run`` (subprocesses, through real PortAudio on JACK for the
device cases), never a traceback."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamsep.cli.daemon import main
from streamsep.daemon.config import DaemonSettings, SourceSettings, load_config
from streamsep.errors import ConfigError
from streamsep.sources.hls.orcasound import DEFAULT_BASE_URL, OrcasoundSettings
from streamsep.sources.hls.settings import HlsSettings

from .conftest import ROOT
from .jack import JackServer, jack_server

__all__ = ["jack_server"]  # a fixture

PARAMS_16K = (
    '{"instrument_list": ["orca_vocals", "noise"], "sample_rate": 16000, "frame_length": 512,'
    ' "frame_step": 128, "T": 16, "F": 257, "n_channels": 2}'
)
MODEL = '[model]\nparams = "p16.json"\nmodel = "passthrough"\n'
HLS = '[source]\nkind = "hls"\nurl = "http://127.0.0.1:1/live.m3u8"\n'
ORCA = '[source]\nkind = "orcasound"\n'

# (case id, config text, expected part of the one-line error)
BAD_CONFIGS: list[tuple[str, str, str]] = [
    ("rate-type", '[source]\nsample_rate = "fast"\n',
     'source.sample_rate must be a positive integer, got "fast"'),
    ("rate-zero", "[source]\nsample_rate = 0\n",
     "source.sample_rate must be a positive integer, got 0"),
    ("unknown-key", "[source]\nsmaple_rate = 48000\n",
     "unknown key source.smaple_rate; did you mean 'sample_rate'?"),
    ("unknown-section", "[sorce]\nkind = 'device'\n", "unknown section [sorce]"),
    ("kind", '[source]\nkind = "mic"\n',
     'source.kind must be one of "device", "file", "hls", "orcasound", got "mic"'),
    ("channels-zero", "[source]\nchannels = [0]\n", "source.channels must be"),
    ("channels-type", '[source]\nchannels = "two"\n', "source.channels must be"),
    ("block-size", "[source]\nblock_size = -1\n", "source.block_size must be an integer >= 0"),
    ("latency", '[source]\nlatency = "medium"\n', "source.latency must be"),
    ("stall", "[source]\nstall_seconds = 0\n", "source.stall_seconds must be a number > 0"),
    ("file-no-path", '[source]\nkind = "file"\n', 'source.path is required with kind = "file"'),
    ("file-missing", '[source]\nkind = "file"\npath = "nope.flac"\n',
     "source.path: no such file or folder"),
    ("wrong-kind-key", '[source]\npath = "x.flac"\n',
     'source.path does not apply to kind = "device"'),
    ("model-missing", '[model]\nmodel = "missing.tflite"\n', "model.model: no such file or folder"),
    ("params-missing", '[model]\nparams = "nope.json"\n', "model.params: no such file or folder"),
    ("params-bad-json", '[model]\nparams = "broken.json"\n', "is not valid JSON"),
    ("threads", "[model]\nnum_threads = 0\n", "model.num_threads must be >= 1"),
    ("window", '[stream]\nwindow = "triangle"\n', "stream.window must be one of"),
    ("hop-type", '[stream]\nhop_frames = "4"\n', 'stream.hop_frames must be an integer, got "4"'),
    ("lookahead-range", MODEL + "[stream]\nlookahead_frames = 100\n",
     "stream.lookahead_frames must be <= T - 1 = 15"),
    ("open-bind", '[publish]\nendpoints = ["tcp://0.0.0.0:5556"]\n', "refusing to bind"),
    ("hwm-type", '[publish]\nhwm = "lots"\n', 'publish.hwm must be an integer, got "lots"'),
    ("publish-rate", '[publish]\nrate = "fast"\n',
     'publish.rate must be one of "capture", "model"'),
    ("publish-typo", '[publish]\nendpont = "tcp://127.0.0.1:1"\n', "did you mean 'endpoints'?"),
    ("archive-unwritable", '[archive]\nenabled = true\ndirectory = "afile/archive"\n',
     "archive.directory: cannot write in"),
    ("archive-bits", "[archive]\nbits_per_sample = 32\n",
     "archive.bits_per_sample must be 16 or 24"),
    ("metrics-port", "[metrics]\nport = 70000\n", "metrics.port must be an integer in [0, 65535]"),
    ("log-level", '[logging]\nlevel = "loud"\n', "logging.level must be one of"),
    ("control-enabled", '[control]\nenabled = "yes"\n', 'control.enabled must be true or false'),
    ("toml-syntax", "[source\nkind = 1\n", "invalid TOML"),
    ("no-such-device", MODEL + '[source]\ndevice = "no-such-card"\n',
     'source.device: no input device matching "no-such-card"'),
    ("rate-refused", MODEL + "[source]\nsample_rate = 44100\n",
     "source.sample_rate: device 'system' refuses 44100 Hz"),
    ("too-many-channels", MODEL + "[source]\nchannels = 3\n",
     "source.channels: device 'system' has 2 input channels, channel 3 requested"),
    ("hls-no-url", '[source]\nkind = "hls"\n', 'source.url is required with kind = "hls"'),
    ("hls-url-scheme", '[source]\nkind = "hls"\nurl = "ftp://x/live.m3u8"\n',
     'source.url must be an http or https URL, got "ftp://x/live.m3u8"'),
    ("hls-url-file", '[source]\nkind = "hls"\nurl = "file:///srv/live.m3u8"\n',
     'source.url must be an http or https URL, got "file:///srv/live.m3u8"'),
    ("hls-device-key", HLS + "block_size = 256\n",
     'source.block_size does not apply to kind = "hls"'),
    ("hls-channels-list", HLS + "channels = [1, 2]\n",
     "source.channels must be a positive integer, got [1, 2]"),
    ("hls-back-off", HLS + "reconnect_seconds = 5\nreconnect_max_seconds = 1\n",
     "source.reconnect_max_seconds must be >= reconnect_seconds = 5, got 1"),
    ("orcasound-url", ORCA + 'url = "http://x/live.m3u8"\n',
     'source.url does not apply to kind = "orcasound"'),
    ("orcasound-node", ORCA + 'node = "../etc"\n',
     'source.node must be a node name like rpi_orcasound_lab, got "../etc"'),
    ("orcasound-base-url", ORCA + 'base_url = "s3://bucket"\n',
     'source.base_url must be an http or https URL, got "s3://bucket"'),
    ("orcasound-poll", ORCA + "poll_seconds = -1\n",
     "source.poll_seconds must be a number >= 0, got -1"),
    ("orcasound-retries", ORCA + "segment_retries = 0\n",
     "source.segment_retries must be a positive integer, got 0"),
    ("orcasound-typo", ORCA + 'nod = "x"\n', "unknown key source.nod; did you mean 'node'?"),
    ("node-on-device", '[source]\nnode = "x"\n', 'source.node does not apply to kind = "device"'),
    # What `run` would only fail on later (issue 18, defect 10): bounds and non-finite numbers.
    ("threads-huge", "[model]\nnum_threads = 100000\n",
     "model.num_threads must be at most 64, got 100000"),
    ("nan-seconds", "[source]\nstall_seconds = nan\n",
     "source.stall_seconds must be a finite number, got nan"),
    ("inf-levels", "[publish]\nlevels_seconds = inf\n",
     "publish.levels_seconds must be a finite number, got inf"),
    ("nan-gain", "[publish]\ngain_db = -nan\n", "publish.gain_db must be a finite number"),
    ("gain-absurd", "[publish]\ngain_db = 1e30\n",
     "publish.gain_db must be in [-200, 200], got 1e+30"),
    ("rate-absurd", "[source]\nsample_rate = 1000000000000\n",
     "source.sample_rate must be at most 768000, got 1000000000000"),
    ("channels-absurd", "[source]\nchannels = 1000000000000\n",
     "source.channels must be at most 256, got 1000000000000"),
    ("channel-list-absurd", "[source]\nchannels = [1, 100000]\n",
     "source.channels must be at most 256, got 100000"),
    ("buffer-absurd", "[source]\nbuffer_seconds = 1e9\n",
     "source.buffer_seconds must be at most 600, got 1000000000.0"),
    ("reconnect-absurd", "[source]\nreconnect_max_seconds = 1e30\n",
     "source.reconnect_max_seconds must be at most 86400"),
    ("hwm-absurd", "[publish]\nhwm = 10000000000\n",
     "publish.hwm must be at most 1000000, got 10000000000"),
    ("queue-absurd", "[publish]\nqueue_chunks = 10000000000\n",
     "publish.queue_chunks must be at most 100000"),
    ("hls-timeout-absurd", HLS + "timeout_seconds = 1e12\n",
     "source.timeout_seconds must be at most 3600"),
    ("archive-file-storm", "[archive]\nfile_seconds = 1e-9\n",
     "archive.file_seconds must be in [0.1, 86400], got 1e-09"),
    ("archive-queue-absurd", "[archive]\nqueue_seconds = 1e12\n",
     "archive.queue_seconds must be at most 600"),
    ("archive-margin", '[archive]\nenabled = true\ndirectory = "arch"\nmin_free_mb = 1e9\n',
     "archive.min_free_mb = 1e+09 is more than the whole disk of"),
    ("metrics-open", '[metrics]\nenabled = true\nhost = "0.0.0.0"\n',
     "refusing to serve metrics on 0.0.0.0: anyone who can reach it could read them"),
    ("metrics-insecure-type", '[metrics]\ninsecure = "yes"\n',
     'metrics.insecure must be true or false, got "yes"'),
    ("endpoint-port", '[publish]\nendpoints = ["tcp://127.0.0.1:notaport"]\n',
     'publish.endpoints must be an endpoint like tcp://127.0.0.1:5556 (port 0..65535 or *), '
     'got "tcp://127.0.0.1:notaport"'),
    ("endpoint-port-range", '[control]\nenabled = true\nendpoint = "tcp://127.0.0.1:99999"\n',
     "control.endpoint must be an endpoint like"),
    # (`run` plays what the file holds, then sends the rest as a gap and exits 1: test_daemon)
    ("file-truncated", '[source]\nkind = "file"\npath = "cut.wav"\n',
     "is truncated: its header says 20000 samples, it holds 9989"),
]  # fmt: skip

# Run as real `check` and `run` subprocesses (two interpreter starts each, so a subset covering
# every section and every device fault); the others run `check` in-process.
SUBPROCESS_CASES = (
    "rate-type", "unknown-key", "unknown-section", "kind", "channels-type", "file-missing",
    "model-missing", "params-bad-json", "lookahead-range", "open-bind", "publish-rate",
    "archive-unwritable", "metrics-port", "toml-syntax", "no-such-device", "rate-refused",
    "too-many-channels", "missing-file", "threads-huge", "metrics-open",
)  # fmt: skip
IN_PROCESS_CASES = [c for c in BAD_CONFIGS if c[0] not in SUBPROCESS_CASES]


def _write_fixture_files(folder: Path) -> None:
    (folder / "p16.json").write_text(PARAMS_16K)
    (folder / "broken.json").write_text("{")
    (folder / "afile").write_text("not a folder")
    sf.write(folder / "full.wav", np.zeros((20000, 1), np.float32), 16000, subtype="PCM_16")
    data = (folder / "full.wav").read_bytes()
    (folder / "cut.wav").write_bytes(data[: len(data) // 2])  # the header says 20000 samples


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamsep.cli.daemon", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture(scope="module")
def bad_config_results(
    jack_server: JackServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], subprocess.CompletedProcess[str]]:
    """``check`` and ``run`` of every bad config, run concurrently (they are independent)."""
    folder = tmp_path_factory.mktemp("configs")
    _write_fixture_files(folder)
    jobs = []
    for case, text, _ in BAD_CONFIGS:
        if case not in SUBPROCESS_CASES:
            continue
        path = folder / f"{case}.toml"
        path.write_text(text)
        for command in ("check", "run"):
            jobs.append(((case, command), (command, "-c", path.name)))
    jobs.append((("missing-file", "check"), ("check", "-c", "absent.toml")))
    jobs.append((("missing-file", "run"), ("run", "-c", "absent.toml")))
    with ThreadPoolExecutor(4) as pool:
        futures = {
            key: pool.submit(_cli, *args, env=jack_server.env, cwd=folder) for key, args in jobs
        }
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize(
    ("case", "expected"),
    [(case, expected) for case, _, expected in BAD_CONFIGS if case in SUBPROCESS_CASES]
    + [("missing-file", "absent.toml: config file not found")],
)
def test_bad_config_one_line_error(
    bad_config_results: dict[tuple[str, str], subprocess.CompletedProcess[str]],
    case: str,
    expected: str,
    command: str,
) -> None:
    result = bad_config_results[(case, command)]
    report = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 1, report
    assert "Traceback" not in result.stderr, report
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, report
    assert errors[0].startswith("streamsep: error: "), report
    assert expected in errors[0], report
    name = "absent" if case == "missing-file" else case
    assert errors[0].startswith(f"streamsep: error: {name}.toml: "), report


@pytest.mark.parametrize(("case", "text", "expected"), IN_PROCESS_CASES)
def test_bad_config_in_process(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    text: str,
    expected: str,
) -> None:
    _write_fixture_files(tmp_path)
    (tmp_path / f"{case}.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert main(["check", "-c", f"{case}.toml"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"streamsep: error: {case}.toml: ") and expected in err, err


def test_shipped_configs_load() -> None:
    demo = load_config(ROOT / "configs" / "demo.toml")
    assert demo.source.kind == "file" and demo.source.file is not None
    audio = ROOT / "tests" / "fixtures" / "audio" / "acoustic-separation_20181202_25sec.flac"
    assert Path(demo.source.file.path) == audio  # relative to the config file's folder
    assert demo.control is not None and demo.metrics.enabled
    default = load_config(ROOT / "configs" / "default.toml")
    assert default.source.kind == "device" and default.publish_rate == "capture"
    assert default.source.device.channels == (1,)
    assert default.control is None and not default.archive.enabled


def test_orcasound_config_loads_and_checks_offline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``configs/orcasound.toml``: node keys into OrcasoundSettings, the rest into HlsSettings;
    ``check`` validates it without the network (it names the stream but does not contact it)."""
    config = ROOT / "configs" / "orcasound.toml"
    settings = load_config(config)
    source = settings.source
    assert source.kind == "orcasound" and source.orcasound is not None and source.hls is not None
    assert source.orcasound == OrcasoundSettings("rpi_orcasound_lab", DEFAULT_BASE_URL)
    assert (source.hls.sample_rate, source.hls.channels, source.hls.url) == (48000, 2, "")
    assert source.hls.live_edge_segments == 2 and source.hls.max_gap_seconds == 60.0

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("check contacted the network")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    monkeypatch.setattr("socket.create_connection", no_network)
    assert main(["check", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "source: orcasound node rpi_orcasound_lab (" in out and "not contacted" in out
    assert "publish: tcp://127.0.0.1:5556 at 48000 Hz" in out and out.endswith("ok\n")


def test_hls_source_settings(tmp_path: Path) -> None:
    config = tmp_path / "h.toml"
    config.write_text(HLS + "poll_seconds = 2\nchannels = 1\n")
    source = load_config(config).source
    assert source.kind == "hls" and source.orcasound is None
    assert source.hls == HlsSettings("http://127.0.0.1:1/live.m3u8", poll_seconds=2, channels=1)
    # Built directly, an orcasound source gets the default node and follower settings.
    direct = SourceSettings("orcasound")
    assert direct.orcasound == OrcasoundSettings() and direct.hls == HlsSettings()
    with pytest.raises(ConfigError, match='source.url is required with kind = "hls"'):
        SourceSettings("hls", hls=HlsSettings())


def test_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p.json").write_text(PARAMS_16K)
    config = tmp_path / "sub" / "c.toml"
    config.write_text(
        '[model]\nparams = "p.json"\nmodel = "passthrough"\n'
        '[archive]\ndirectory = "../arch"\n[source]\nchannels = [2, 1]\n'
        '[publish]\nendpoints = "ipc:///tmp/x"\n'
    )
    monkeypatch.chdir("/")
    settings = load_config(config)
    assert settings.model.params == str(tmp_path / "sub" / "p.json")
    assert settings.model.model == "passthrough"
    assert settings.archive.directory == str(tmp_path / "arch")
    assert settings.source.device.channels == (2, 1)
    assert settings.source.device.n_device_channels == 2
    assert settings.publish.endpoints == ("ipc:///tmp/x",)


def test_defaults_without_a_file() -> None:
    assert load_config(None) == DaemonSettings()


def test_error_names_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text("[metrics]\nenabled = 1\n")
    with pytest.raises(
        ConfigError, match=r"x\.toml: metrics\.enabled must be true or false, got 1"
    ):
        load_config(config)
