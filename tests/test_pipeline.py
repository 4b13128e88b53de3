"""Threaded pipeline: equals the offline Separator; ring overruns become counted gaps."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamsep.engine.model import PassthroughModel
from streamsep.engine.offline import Separator
from streamsep.engine.params import ModelParams
from streamsep.engine.pipeline import CollectSink, Pipeline
from streamsep.engine.settings import StreamSettings
from streamsep.sources.file import FileSource

from .conftest import MODELS


def _models() -> list[tuple[str, str]]:
    out = [("passthrough", "passthrough")]
    if (MODELS / "tiny_unet.tflite").is_file():
        out.append((str(MODELS / "tiny_unet.json"), str(MODELS / "tiny_unet.tflite")))
    return out


@pytest.mark.parametrize("model", _models(), ids=lambda m: Path(m[1]).stem)
@pytest.mark.parametrize("chunk", [37, 1000])
def test_pipeline_equals_offline_separate(
    model: tuple[str, str],
    chunk: int,
    small_params: ModelParams,
    tmp_path: Path,
    rng: np.random.Generator,
) -> None:
    params: object = small_params if model[0] == "passthrough" else model[0]
    separator = Separator(params, model[1], stream=StreamSettings(hop_frames=3, lookahead_frames=6))
    rate = separator.params.sample_rate
    x = (rng.standard_normal((3 * rate + 123, 2)) * 0.2).astype(np.float32)
    path = tmp_path / "in.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    expected = separator.separate(x, rate)

    sink = CollectSink()
    pipeline = Pipeline(
        separator.model, separator.stream, source_rate=rate, source_channels=2, sinks=[sink]
    )
    source = FileSource(path, pipeline.ring, chunk_samples=chunk)
    pipeline.start()
    source.start()
    assert pipeline.wait(timeout=60)
    assert sink.done.is_set()
    stems = sink.stems()
    assert stems.shape == (2, x.shape[0], 2)
    for i, name in enumerate(separator.params.instrument_list):
        np.testing.assert_allclose(stems[i], expected[name], atol=1e-5)
    np.testing.assert_array_equal(sink.mix(), x)
    assert sink.chunks[-1].end_of_stream
    assert [c.start_index for c in sink.chunks] == list(
        np.cumsum([0] + [c.n_samples for c in sink.chunks[:-1]])
    )
    assert pipeline.stats.samples_lost == 0 and pipeline.stats.samples_out == x.shape[0]


class _GatedModel(PassthroughModel):
    """Passthrough that blocks until ``gate`` is set: a stalled worker."""

    def __init__(self, params: ModelParams) -> None:
        super().__init__(params)
        self.gate = threading.Event()

    def predict(self, spectrogram: np.ndarray) -> np.ndarray:
        assert self.gate.wait(timeout=30)
        return super().predict(spectrogram)


def test_overruns_are_counted_and_marked_never_silent(small_params: ModelParams) -> None:
    model = _GatedModel(small_params)
    sink = CollectSink()
    pipeline = Pipeline(
        model,
        StreamSettings(hop_frames=2, lookahead_frames=2),
        source_rate=8000,
        source_channels=1,
        sinks=[sink],
        ring_seconds=0.5,
        queue_blocks=1,
    )
    pipeline.start()
    total, chunk = 40000, 500
    ramp = (np.arange(total, dtype=np.float32) % 1000 / 1000.0)[:, None]
    for start in range(0, total, chunk):  # a "capture callback" that never waits
        pipeline.ring.write(ramp[start : start + chunk])
    assert pipeline.ring.overrun_samples > 0
    model.gate.set()
    pipeline.ring.close()
    assert pipeline.wait(timeout=60)
    lost = pipeline.ring.overrun_samples
    assert pipeline.stats.samples_lost == lost
    gaps = [g for c in sink.chunks for g in c.gaps]
    assert sum(n for _, n in gaps) == lost
    mix = sink.mix()[:, 0]
    stems = sink.stems()[0, :, 0]
    assert mix.shape[0] == total  # the timeline is kept: lost samples became silence
    received = np.ones(total, dtype=bool)
    for index, n in gaps:
        assert np.all(mix[index : index + n] == 0)
        received[index : index + n] = False
    np.testing.assert_array_equal(mix[received], ramp[received, 0])
    np.testing.assert_allclose(stems, mix, atol=1e-5)


def test_stop_aborts_promptly(small_params: ModelParams) -> None:
    model = _GatedModel(small_params)
    pipeline = Pipeline(model, source_rate=8000, source_channels=2, sinks=[CollectSink()])
    pipeline.start()
    pipeline.ring.write(np.zeros((8000, 2), np.float32))
    pipeline.stop()
    model.gate.set()
    pipeline.join(timeout=10)
    assert not any(t.is_alive() for t in pipeline._threads)


def test_long_gap_is_filled_in_bounded_pieces(small_params: ModelParams) -> None:
    sink = CollectSink()
    pipeline = Pipeline(
        PassthroughModel(small_params), source_rate=8000, source_channels=2, sinks=[sink]
    )
    pipeline.start()
    x = np.full((1000, 2), 0.25, np.float32)
    pipeline.ring.write(x)
    lost = 8000 * 60 * 10  # a 10-minute outage
    pipeline.ring.mark_gap(lost)
    pipeline.ring.write(x)
    pipeline.ring.close()
    assert pipeline.wait(timeout=120)
    gaps = [g for c in sink.chunks for g in c.gaps]
    assert sum(n for _, n in gaps) == lost == pipeline.stats.samples_lost
    assert max(n for _, n in gaps) <= 8192  # never one huge allocation
    assert gaps[0][0] == 1000 and all(
        b[0] == a[0] + a[1] for a, b in zip(gaps, gaps[1:], strict=False)
    )
    mix = sink.mix()
    assert mix.shape[0] == 2000 + lost
    assert np.all(mix[1000 : 1000 + lost] == 0) and np.all(mix[-1000:] == 0.25)
