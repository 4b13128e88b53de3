"""Issue 18, engine side: non-finite and absurd input, bad params and models, ``separate``'s
bounded memory, output checks and partial files.

Offline (Python API and ``streamsep separate``) and live (the threaded pipeline and the daemon
to a ZeroMQ subscriber) follow one policy (:mod:`streamsep.engine.sanitize`).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from streamsep.cli.main import main
from streamsep.daemon.config import load_config
from streamsep.daemon.sdnotify import Notifier
from streamsep.daemon.supervisor import Daemon
from streamsep.engine import batch
from streamsep.engine.model import PassthroughModel, load_model
from streamsep.engine.offline import Separator
from streamsep.engine.params import ModelParams, load_params
from streamsep.engine.pipeline import CollectSink, Pipeline
from streamsep.engine.sanitize import MAX_ABS_SAMPLE, InputGuard, MaskGuard
from streamsep.engine.settings import StreamSettings
from streamsep.engine.streamer import BlockSeparator
from streamsep.errors import ConfigError, ModelError
from streamsep.net.subscribe import Chunk, Subscriber
from streamsep.resources import default_model_paths

from ._daemon import collect, toml_text, write_params
from ._net import free_tcp_endpoint
from .conftest import AUDIO, MODELS, ROOT

RATE = 48000
BAD_AT = 2 * RATE  # the bad sample: 2 s into a 20 s file


@pytest.fixture(scope="module")
def clip20() -> np.ndarray:
    """20 s of real audio at 48 kHz mono, float32, peak 0.5."""
    audio, rate = sf.read(
        AUDIO / "acoustic-separation_20181202_25sec.flac", dtype="float32", always_2d=True
    )
    assert rate == RATE
    x = audio[: 20 * RATE, :1] - audio[: 20 * RATE, :1].mean()
    return np.ascontiguousarray(x / np.abs(x).max() * 0.5, dtype=np.float32)


@pytest.fixture(scope="module")
def bundled() -> Separator:
    return Separator()


def _away(n: int, index: int, rate: int, seconds: float = 1.0) -> np.ndarray:
    """Mask of the samples further than ``seconds`` from ``index``."""
    keep = np.ones(n, dtype=bool)
    keep[max(0, index - int(seconds * rate)) : index + int(seconds * rate)] = False
    return keep


# -- the guards -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_input_guard_fills_non_finite_frames(bad: float) -> None:
    guard = InputGuard(1000)
    x = np.full((300, 2), 0.25, np.float32)
    x[10, 1] = bad
    x[100:103, 0] = bad
    clean, runs = guard.process(x[:150])
    clean2, runs2 = guard.process(x[150:])
    assert runs == [(10, 1), (100, 3)] and runs2 == []
    assert np.isfinite(clean).all() and (clean[[10, 100, 101, 102]] == 0).all()
    assert (clean[11:100] == 0.25).all()
    assert guard.samples_filled == 4 and guard.samples_clipped == 0
    assert clean2 is not None and (clean2 == 0.25).all()


@pytest.mark.parametrize("value", [3e38, -3e38, 1e15, 11.0])
def test_input_guard_clips_extreme_values(value: float) -> None:
    guard = InputGuard(1000)
    x = np.zeros((50, 1), np.float32)
    x[7] = value
    clean, runs = guard.process(x)
    assert runs == [] and guard.samples_clipped == 1
    assert clean[7, 0] == np.sign(value) * MAX_ABS_SAMPLE


def test_input_guard_warns_once_per_burst(caplog: pytest.LogCaptureFixture) -> None:
    guard = InputGuard(1000, "hydrophone")
    x = np.zeros((1000, 1), np.float32)
    x[::50] = np.nan  # one burst: bad samples 50 ms apart, in several chunks
    with caplog.at_level(logging.WARNING, logger="streamsep.engine.sanitize"):
        for chunk in np.split(x, 10):
            guard.process(chunk)
        guard.process(np.zeros((20_000, 1), np.float32))  # 20 s clean
        guard.process(x)  # a second burst
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]
    assert "hydrophone: bad samples at 0.000 s" in warnings[0].getMessage()
    assert guard.samples_filled == 40


def test_mask_guard_replaces_non_finite_blocks(caplog: pytest.LogCaptureFixture) -> None:
    guard = MaskGuard()
    good = np.full((2, 4, 3, 1), 0.5, np.float32)
    assert guard.check(good) is good
    bad = good.copy()
    bad[1, 2, 1, 0] = np.nan
    with caplog.at_level(logging.WARNING):
        fixed = guard.check(bad)
    assert (fixed == 0.5).all() and guard.blocks_replaced == 1
    assert "replaced by uniform masks 1/2" in caplog.text


class _NanModel:
    """Passthrough masks, but NaN for the blocks numbered in ``bad``."""

    def __init__(self, params: ModelParams, bad: set[int]) -> None:
        self.params = params
        self._inner = PassthroughModel(params)
        self._bad = bad
        self.calls = 0

    def predict(self, spectrogram: np.ndarray) -> np.ndarray:
        self.calls += 1
        masks = self._inner.predict(spectrogram)
        return np.full_like(masks, np.nan) if self.calls in self._bad else masks

    def close(self) -> None:
        pass


def test_non_finite_model_block_is_replaced(small_params: ModelParams) -> None:
    engine = BlockSeparator(_NanModel(small_params, {3}), StreamSettings())  # type: ignore[arg-type]
    x = np.random.default_rng(0).standard_normal((8000, 2)).astype(np.float32) * 0.1
    out = np.concatenate([engine.feed(x), engine.flush()], axis=1)
    assert np.isfinite(out).all()
    assert engine.mask_guard.blocks_replaced == 1
    # Stems still sum to the (delayed) input: uniform masks share the mix.
    mix = out.sum(axis=0)[engine.latency_samples :]
    np.testing.assert_allclose(mix, x, atol=1e-4)


# -- offline: Python API and `streamsep separate` --------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_one_bad_sample_offline(bundled: Separator, clip20: np.ndarray, bad: float) -> None:
    broken, zeroed = clip20.copy(), clip20.copy()
    broken[BAD_AT] = bad
    zeroed[BAD_AT] = 0.0
    got = bundled.separate(broken, RATE)
    report = bundled.last_report
    want = bundled.separate(zeroed, RATE)
    assert report is not None and report.samples_filled == 1
    keep = _away(clip20.shape[0], BAD_AT, RATE)
    for name in want:
        assert np.isfinite(got[name]).all()
        np.testing.assert_allclose(got[name][keep], want[name][keep], atol=1e-3)


@pytest.mark.parametrize("value", [3e38, 1e15])
def test_extreme_sample_gives_bounded_output(
    bundled: Separator, clip20: np.ndarray, value: float
) -> None:
    x = clip20[: 5 * RATE].copy()
    x[RATE] = value
    stems = bundled.separate(x, RATE)
    assert bundled.last_report is not None and bundled.last_report.samples_clipped == 1
    for stem in stems.values():
        assert np.isfinite(stem).all() and np.abs(stem).max() < 4 * MAX_ABS_SAMPLE


def test_one_nan_through_separate_cli(
    bundled: Separator, clip20: np.ndarray, tmp_path: Path
) -> None:
    broken = clip20.copy()
    broken[BAD_AT] = np.nan
    sf.write(tmp_path / "bad.wav", broken, RATE, subtype="FLOAT")
    zeroed = clip20.copy()
    zeroed[BAD_AT] = 0.0
    want = bundled.separate(zeroed, RATE)
    result = _cli(["separate", str(tmp_path / "bad.wav"), "-o", str(tmp_path / "out")])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "1 non-finite sample(s) replaced by silence" in result.stdout
    assert result.stderr.count("bad samples at 2.000 s") == 1, result.stderr
    keep = _away(clip20.shape[0], BAD_AT, RATE)
    for name, stem in want.items():
        got, rate = sf.read(tmp_path / "out" / "bad" / f"{name}.wav", dtype="float32")
        assert rate == RATE and got.shape[0] == clip20.shape[0]
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got[keep], stem[keep, 0], atol=1e-3)


def test_separate_cli_equals_api(
    bundled: Separator, clip20: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file streams through in pieces (several blocks here) and still equals the API."""
    monkeypatch.setattr(batch, "BLOCK_SAMPLES", 10_007)
    x = clip20[: 7 * RATE + 123]
    sf.write(tmp_path / "in.wav", np.repeat(x, 2, axis=1), RATE, subtype="FLOAT")
    assert main(["separate", str(tmp_path / "in.wav"), "-o", str(tmp_path), "-f", "wav"]) == 0
    want = bundled.separate(np.repeat(x, 2, axis=1), RATE)
    for name, stem in want.items():
        got, _ = sf.read(tmp_path / "in" / f"{name}.wav", dtype="float32", always_2d=True)
        np.testing.assert_allclose(got, stem, atol=1e-6)


# -- live: pipeline and daemon ----------------------------------------------------------------


def test_one_nan_through_the_pipeline_is_a_flagged_fill() -> None:
    params = load_params(MODELS / "tiny_unet.json")
    model = load_model(MODELS / "tiny_unet.tflite", params)
    x = np.random.default_rng(3).standard_normal((3 * 22050, 1)).astype(np.float32) * 0.1
    x[22050] = np.nan
    sink = CollectSink()
    pipeline = Pipeline(model, source_rate=22050, source_channels=1, sinks=[sink])
    pipeline.start()
    pipeline.ring.write(x)
    pipeline.ring.close()
    assert pipeline.wait(60)
    stems = sink.stems()
    assert np.isfinite(stems).all()
    gaps = [g for chunk in sink.chunks for g in chunk.gaps]
    index = 22050 * params.sample_rate // 22050
    assert gaps == [(index, 1)], gaps
    assert pipeline.stats.samples_nonfinite == 1 and pipeline.stats.samples_lost == 0


def _daemon_run(tmp_path: Path, name: str, audio: np.ndarray, rate: int) -> list[Chunk]:
    """``audio`` through a file-source daemon (passthrough model) to a subscriber."""
    folder = tmp_path / name
    folder.mkdir()
    sf.write(folder / "in.wav", audio, rate, subtype="FLOAT")
    params = write_params(folder, 16000)
    endpoint = free_tcp_endpoint()
    config = folder / "file.toml"
    sections: dict[str, dict[str, Any]] = {
        "source": {"kind": "file", "path": "in.wav", "realtime": True},
        "model": {"params": params.name, "model": "passthrough"},
        "publish": {
            "endpoints": [endpoint],
            "levels_seconds": 0,
            "status_seconds": 0,
            "hwm": 100000,
        },
    }
    config.write_text(toml_text(sections))
    subscriber = Subscriber(endpoint, ["orca_vocals"], hwm=100000)
    try:
        daemon = Daemon(load_config(config), notifier=Notifier({}))
        assert daemon.run() == 0
        chunks: dict[str, list[Chunk]] = {}
        collect(subscriber, chunks, lambda: subscriber.ended, 30, "the end of stream")
    finally:
        subscriber.close()
    return chunks["orca_vocals"]


def test_one_nan_through_the_daemon(tmp_path: Path) -> None:
    """A NaN at 2 s of a file source reaches a subscriber as a flagged filled sample; the
    stems are finite and equal those of the file with that sample zeroed."""
    rate = 44100
    x = np.random.default_rng(5).standard_normal((3 * rate, 1)).astype(np.float32) * 0.1
    at = 2 * rate
    broken, zeroed = x.copy(), x.copy()
    broken[at] = np.nan
    zeroed[at] = 0.0
    got_chunks = _daemon_run(tmp_path, "broken", broken, rate)
    want_chunks = _daemon_run(tmp_path, "zeroed", zeroed, rate)
    flagged = [c for c in got_chunks if c.header.filled_samples]
    assert len(flagged) == 1 and sum(c.header.filled_samples for c in got_chunks) >= 1
    assert flagged[0].gap and flagged[0].first_sample <= at < flagged[0].end_sample + 3
    assert not any(c.header.filled_samples for c in want_chunks)
    got, got_first = _timeline(got_chunks, 3 * rate)
    want, want_first = _timeline(want_chunks, 3 * rate)
    # A subscriber that connects while the daemon starts may miss its first chunk or two (ZeroMQ
    # slow joiner): compare from the first sample both received, which is well before the NaN.
    first = max(got_first, want_first)
    assert first < at - rate, first
    assert np.isfinite(got[first:]).all()
    keep = _away(got.shape[0], at, rate)
    keep[:first] = False
    np.testing.assert_allclose(got[keep], want[keep], atol=1e-3)


def _timeline(chunks: list[Chunk], n_samples: int) -> tuple[np.ndarray, int]:
    """The chunks' samples at their stream indices (NaN where none came), and the first index;
    the chunks must be contiguous from there to the end."""
    out = np.full((n_samples, chunks[0].samples.shape[1]), np.nan, np.float32)
    for chunk in chunks:
        out[chunk.first_sample : chunk.end_sample] = chunk.samples
    first = chunks[0].first_sample
    assert chunks[-1].end_sample == n_samples
    assert all(a.end_sample == b.first_sample for a, b in zip(chunks, chunks[1:], strict=False))
    return out, first


# -- params and models refused at load --------------------------------------------------------

_BUNDLED = json.loads(default_model_paths()[0].read_text())


def _params_text(case: str) -> str | bytes:
    base = dict(_BUNDLED)
    texts: dict[str, str | bytes] = {
        "separation_exponent Infinity": json.dumps({**base, "separation_exponent": 1}).replace(
            '"separation_exponent": 1', '"separation_exponent": Infinity'
        ),
        "separation_exponent huge": json.dumps({**base, "separation_exponent": 1e300}),
        "highpass_hz NaN": json.dumps(base).replace('"highpass_hz": 20.0', '"highpass_hz": NaN'),
        "sample_rate 1e30": json.dumps({**base, "sample_rate": 1e30}),
        "sample_rate 10**30": json.dumps({**base, "sample_rate": 10**30}),
        "T huge": json.dumps({**base, "T": 10**9}),
        "n_channels huge": json.dumps({**base, "n_channels": 100_000}),
        "block too large": json.dumps({**base, "T": 8192, "F": 8193, "frame_length": 16384}),
        "block span too long": json.dumps(
            {**base, "T": 8192, "F": 1, "frame_length": 1 << 16, "frame_step": 1 << 16}
        ),
        "many stems": json.dumps({**base, "instrument_list": [f"s{i}" for i in range(1000)]}),
        "deeply nested": '{"instrument_list": ["a"], "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "5000 digits": '{"instrument_list": ["a"], "T": ' + "9" * 5000 + "}",
        "not UTF-8": b'{"instrument_list": ["\xff\xfe"]}',
        "too large": json.dumps({**base, "pad": "x" * (2 << 20)}),
    }
    return texts[case]


_PARAMS_ERRORS = {
    "separation_exponent Infinity": "separation_exponent must be a finite number",
    "separation_exponent huge": "separation_exponent must be a finite number in (0, 16]",
    "highpass_hz NaN": "highpass_hz must be a finite number",
    "sample_rate 1e30": "sample_rate must be a positive integer, got 1e+30",
    "sample_rate 10**30": "sample_rate must be <= 1536000",
    "T huge": "T must be <= 8192",
    "n_channels huge": "n_channels must be <= 16",
    "block too large": "n_stems * T * F * n_channels must be <=",
    "block span too long": "n_stems * n_channels * T * frame_step must be <=",
    "many stems": "instrument_list must name at most 16 stems",
    "deeply nested": "is nested too deeply",
    "5000 digits": "Exceeds the limit (4300 digits)",
    "not UTF-8": "is not UTF-8 text",
    "too large": "is larger than 1048576 bytes",
}


@pytest.mark.parametrize("case", sorted(_PARAMS_ERRORS))
@pytest.mark.parametrize("command", ["info", "separate"])
def test_bad_params_one_line_error(
    case: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.json"
    text = _params_text(case)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    args = ["--params", str(path), "--model", "passthrough"]
    if command == "separate":
        sf.write(tmp_path / "in.wav", np.zeros(1000, np.float32), RATE)
        args = [str(tmp_path / "in.wav"), "-o", str(tmp_path / "out"), *args]
    assert main([command, *args]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("streamsep: error:")]
    assert len(lines) == 1 and _PARAMS_ERRORS[case] in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_params_in_a_subprocess(tmp_path: Path) -> None:
    """The same through the console entry point: one line, exit 1, no traceback."""
    path = tmp_path / "p.json"
    path.write_text(str(_params_text("highpass_hz NaN")))
    result = _cli(["info", "--params", str(path), "--model", "passthrough"])
    assert result.returncode == 1
    assert _stderr_lines(result) == [
        f"streamsep: error: {path}: highpass_hz must be a finite number, got nan"
    ]


def test_params_fifo_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "p.json"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_params(fifo)


def test_missing_keys_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    data = {k: v for k, v in _BUNDLED.items() if k not in ("sample_rate", "frame_step")}
    with caplog.at_level(logging.WARNING, logger="streamsep.engine.params"):
        load_params(_BUNDLED)
        assert caplog.records == []
        params = load_params(data)
    assert params.sample_rate == 44100 and params.frame_step == 1024
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "no sample_rate, frame_step; using Spleeter's defaults" in message
    assert "sample_rate=44100, frame_step=1024" in message


def test_missing_keys_one_warning_line_in_the_cli(tmp_path: Path) -> None:
    data = {k: v for k, v in _BUNDLED.items() if k not in ("sample_rate", "frame_length")}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    result = _cli(["info", "--params", str(path), "--model", "passthrough"])
    assert result.returncode == 0, result.stderr
    lines = _stderr_lines(result)
    assert len(lines) == 1 and "WARNING" in lines[0], lines
    assert "no sample_rate, frame_length; using Spleeter's defaults" in lines[0]


def _tiny_params_with(**changes: Any) -> ModelParams:
    data = json.loads((MODELS / "tiny_unet.json").read_text())
    return ModelParams.from_dict({**data, **changes})


def test_model_outputs_must_match_stems_one_to_one() -> None:
    params = _tiny_params_with(instrument_list=["orca_vocals"])
    with pytest.raises(ModelError, match=r"has 2 output\(s\) .* names 1 stem\(s\)"):
        load_model(MODELS / "tiny_unet.tflite", params)


def _patched_model(tmp_path: Path, value: float, whole: bool) -> Path:
    """tiny_unet.tflite with one float32 weight tensor overwritten by ``value``."""
    from ai_edge_litert.interpreter import Interpreter

    source = MODELS / "tiny_unet.tflite"
    raw = bytearray(source.read_bytes())
    interpreter = Interpreter(model_path=str(source))
    for detail in interpreter.get_tensor_details():
        if detail["dtype"] != np.float32:
            continue
        try:
            weights = interpreter.get_tensor(detail["index"])
        except ValueError:
            continue
        at = raw.find(weights.tobytes())
        if weights.size >= 16 and at >= 0:
            break
    else:
        raise AssertionError("no float32 weights found")
    n = weights.size if whole else 1
    raw[at : at + 4 * n] = np.full(n, value, np.float32).tobytes()
    path = tmp_path / "patched.tflite"
    path.write_bytes(bytes(raw))
    return path


def test_nan_weights_refused(tmp_path: Path) -> None:
    params = load_params(MODELS / "tiny_unet.json")
    with pytest.raises(ModelError, match=r"weights .* are not finite"):
        load_model(_patched_model(tmp_path, np.nan, whole=False), params)


def test_overflowing_model_refused_by_the_probe(tmp_path: Path) -> None:
    params = load_params(MODELS / "tiny_unet.json")
    with pytest.raises(ModelError, match="is not finite for a block of noise"):
        load_model(_patched_model(tmp_path, 3e38, whole=True), params)


def test_a_model_that_cannot_run_fails_at_load_as_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The load probe runs the interpreter once (arena, threads): a failure there is one
    ``ModelError`` line naming the file, and the daemon's ``warm_up`` does not run a loaded
    TFLite model a second time."""
    from streamsep.daemon.wiring import warm_up
    from streamsep.engine import model as model_module

    params = load_params(MODELS / "tiny_unet.json")
    real = model_module._interpreter_class()
    calls = {"n": 0}

    class Counting(real):  # type: ignore[misc, valid-type]
        def invoke(self) -> None:
            calls["n"] += 1
            if calls.get("fail"):
                raise RuntimeError("XNNPack delegate failed to reshape\nnode 7 failed.")
            super().invoke()

    monkeypatch.setattr(model_module, "_interpreter_class", lambda: Counting)
    model = load_model(MODELS / "tiny_unet.tflite", params)
    assert calls["n"] == 1  # the probe
    warm_up(model)
    assert calls["n"] == 1  # not run again
    calls["fail"] = 1
    with pytest.raises(ModelError) as error:
        load_model(MODELS / "tiny_unet.tflite", params)
    assert str(error.value) == f"model {MODELS / 'tiny_unet.tflite'}: cannot run: node 7 failed."


# -- output paths and partial files -----------------------------------------------------------


@pytest.fixture
def short_wav(tmp_path: Path) -> Path:
    path = tmp_path / "in.wav"
    sf.write(path, np.random.default_rng(0).standard_normal(3 * RATE) * 0.1, RATE)
    return path


def _no_separation(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("separation ran")

    monkeypatch.setattr("streamsep.cli.main.separate_file", fail)


@pytest.mark.parametrize(
    "where, message",
    [
        ("existing file", "exists and is not a folder"),
        ("under a file", "cannot write to output folder"),
        ("output is a folder", "exists and is a folder"),
    ],
)
def test_separate_output_checked_before_work(
    where: str,
    message: str,
    short_wav: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _no_separation(monkeypatch)
    (tmp_path / "file").write_text("x")
    out = {
        "existing file": tmp_path / "file",
        "under a file": tmp_path / "file" / "sub",
        "output is a folder": tmp_path / "out",
    }[where]
    if where == "output is a folder":
        (out / "in" / "noise.wav").mkdir(parents=True)
    assert main(["separate", str(short_wav), "-o", str(out), "--model", "passthrough"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err


def test_separate_refuses_two_inputs_with_one_output(
    short_wav: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_separation(monkeypatch)
    (tmp_path / "b").mkdir()
    sf.write(tmp_path / "b" / "in.flac", np.zeros(100), RATE)
    args = ["separate", str(short_wav), str(tmp_path / "b" / "in.flac"), "-o", str(tmp_path)]
    assert main([*args, "--model", "passthrough"]) == 1


def test_separate_read_only_filesystem(short_wav: Path, tmp_path: Path) -> None:
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {done.stderr.decode().strip()}")
    try:
        result = _cli(["separate", str(short_wav), "-o", str(mount / "out")])
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    assert result.returncode == 1
    assert _stderr_lines(result) == [
        f"streamsep: error: cannot write to output folder {mount / 'out' / 'in'}: "
        "read-only file system"
    ]


def _limit_file_size() -> None:
    """In the child: writes past 200 kB fail with EFBIG, as on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


@pytest.mark.parametrize("how", ["file size limit", "full tmpfs"])
def test_separate_write_failure_removes_partial_files(
    how: str, short_wav: Path, tmp_path: Path
) -> None:
    """A write that fails mid-file (EFBIG under RLIMIT_FSIZE, or a real full 200 KiB tmpfs):
    one line, exit 1, nothing left behind."""
    out = tmp_path / "out"
    preexec = None
    if how == "file size limit":
        preexec = _limit_file_size
    else:
        out.mkdir()
        mount = ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(out)]
        done = subprocess.run(mount, capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        result = _cli(["separate", str(short_wav), "-o", str(out)], preexec=preexec)
        left = list((out / "in").iterdir())
    finally:
        if how == "full tmpfs":
            subprocess.run(["umount", str(out)], check=False)
    assert result.returncode == 1, result.stderr
    lines = _stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("streamsep: error: cannot write audio file")
    if how == "full tmpfs":
        assert lines[0].endswith("(no space left on device)"), lines
    assert "Traceback" not in result.stderr
    assert left == []  # no partial or truncated output left


def test_separate_failure_through_a_seam_removes_outputs(
    short_wav: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after some pieces were written (here: the second stem's third write)."""
    monkeypatch.setattr(batch, "BLOCK_SAMPLES", 20_000)
    calls = {"n": 0}
    original = batch.StemWriter.write

    def write(self: batch.StemWriter, audio: np.ndarray) -> None:
        calls["n"] += 1
        if calls["n"] == 6:
            raise batch.AudioFileError(f"cannot write audio file {self.path}: disk full")
        original(self, audio)

    monkeypatch.setattr(batch.StemWriter, "write", write)
    assert main(["separate", str(short_wav), "-o", str(tmp_path / "o"), "-m", "passthrough"]) == 1
    assert list((tmp_path / "o" / "in").iterdir()) == []


def _stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr's lines, less the line LiteRT itself prints when it loads a model."""
    native = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
    return [line for line in result.stderr.strip().splitlines() if line != native]


def _cli(args: list[str], preexec: Any = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "streamsep", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        preexec_fn=preexec,
        check=False,
    )


@pytest.mark.parametrize("threads", ["0", "100000"])
def test_absurd_model_threads(threads: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model-threads", threads]) == 1
    err = capsys.readouterr().err
    message = f"model.num_threads (--model-threads) must be in [1, 64], got {threads}"
    assert err == f"streamsep: error: {message}\n"


def test_separate_file_memory_does_not_grow_with_length(tmp_path: Path) -> None:
    """Peak traced allocation of :func:`batch.separate_file` for a 10x longer file stays
    within 1.5x (the numbers for the real model: ``tools/bench_memory.py``)."""
    import tracemalloc

    params = load_params(write_params(tmp_path, 16000))
    engine = BlockSeparator(PassthroughModel(params), StreamSettings())
    rng = np.random.default_rng(0)
    peaks = []
    for seconds in (10, 100):
        path = tmp_path / f"in{seconds}.wav"
        sf.write(path, rng.standard_normal(seconds * 22050).astype(np.float32) * 0.1, 22050)
        outputs = {name: tmp_path / f"{seconds}-{name}.wav" for name in params.instrument_list}
        tracemalloc.start()
        report = batch.separate_file(engine, path, outputs)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert report.n_samples == seconds * 22050
        assert sf.info(outputs["noise"]).frames == seconds * 22050
    assert peaks[1] < 1.5 * peaks[0], peaks
