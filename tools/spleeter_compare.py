"""Numbers and report of ``tools.spleeter_parity``: metrics, stage-by-stage comparison of
spleeter's intermediate tensors with streamsep's, streaming run, Markdown rendering.

Runs in the main virtualenv (TensorFlow 2.21 for the Keras batch-norm check, LiteRT).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "REL_ERROR_LIMIT_DB",
    "MAX_ABS_LIMIT",
    "STREAM_CHUNK_SAMPLES",
    "rel_error_db",
    "sdr_db",
    "max_abs_diff",
    "passes",
    "stage_report",
    "bn_mode_report",
    "stream",
    "compare_variant",
    "render_markdown",
]

REL_ERROR_LIMIT_DB: Final = -90.0
"""Offline parity: ``20 log10(||streamsep - spleeter|| / ||spleeter||)`` must be at most this
(float32 rounding differences only; issue 22's bound for the default ``separate``)."""
MAX_ABS_LIMIT: Final = 1e-4
"""... and the largest absolute sample difference at most this (unit-scale audio)."""
STREAM_CHUNK_SAMPLES: Final = 1024
"""Chunk size fed to the streaming engine, samples (a sound-card period)."""


def rel_error_db(estimate: NDArray[Any], reference: NDArray[Any]) -> float:
    """``20 log10(||estimate - reference|| / ||reference||)`` in dB (-inf when equal)."""
    dtype = np.complex128 if np.iscomplexobj(reference) else np.float64
    error = np.linalg.norm(np.asarray(estimate, dtype) - np.asarray(reference, dtype))
    norm = np.linalg.norm(np.asarray(reference, dtype))
    if error == 0.0:
        return float("-inf")
    return float(20.0 * np.log10(error / norm)) if norm > 0 else float("inf")


def sdr_db(estimate: NDArray[Any], reference: NDArray[Any]) -> float:
    """Signal-to-distortion ratio of ``estimate`` against ``reference``, dB (= -rel. error)."""
    return -rel_error_db(estimate, reference)


def max_abs_diff(estimate: NDArray[Any], reference: NDArray[Any]) -> float:
    """Largest absolute difference."""
    return float(np.max(np.abs(np.asarray(estimate, np.float64) - reference)))


def passes(rel_db: float, max_abs: float) -> bool:
    """The parity criterion: rel. error <= -90 dB and max abs diff <= 1e-4."""
    return rel_db <= REL_ERROR_LIMIT_DB and max_abs <= MAX_ABS_LIMIT


def stage_report(
    stage: dict[str, NDArray[Any]], clip: NDArray[np.float32], params: Any, tflite: Path
) -> dict[str, Any]:
    """Compare spleeter's intermediate tensors with streamsep's, stage by stage."""
    from ai_edge_litert.interpreter import Interpreter

    from streamsep.engine.spectral import ratio_masks, stft

    report: dict[str, Any] = {}
    ours_stft = stft(clip, params.frame_length, params.frame_step)
    report["stft_rel_db"] = rel_error_db(ours_stft, stage["stage/stft"])
    report["stft_frames"] = [int(ours_stft.shape[0]), int(stage["stage/stft"].shape[0])]

    blocks = stage["stage/spectrogram"]  # (n_blocks, T, F, n_channels)
    n_blocks, T = blocks.shape[0], blocks.shape[1]
    magnitudes = np.zeros((n_blocks * T, params.F, params.n_channels), np.float32)
    magnitudes[: ours_stft.shape[0]] = np.abs(ours_stft[:, : params.F])
    report["model_input_rel_db"] = rel_error_db(magnitudes.reshape(blocks.shape), blocks)

    runner = Interpreter(model_path=str(tflite)).get_signature_runner("serving_default")
    outputs = {name: [] for name in params.instrument_list}
    for block in blocks:  # spleeter's own input blocks, so this stage is isolated
        result = runner(mix_spectrogram=block[None].astype(np.float32))
        for name in params.instrument_list:
            outputs[name].append(result[f"{name}_spectrogram"][0])
    ours_out = np.stack([np.stack(outputs[n]) for n in params.instrument_list])
    theirs_out = np.stack([stage[f"stage/output/{n}"] for n in params.instrument_list])
    report["model_output_rel_db"] = rel_error_db(ours_out, theirs_out)

    masks = np.stack(
        [ratio_masks(ours_out[:, b], params.separation_exponent) for b in range(n_blocks)]
    )
    masks = masks.transpose(1, 0, 2, 3, 4).reshape(params.n_stems, n_blocks * T, params.F, -1)
    n_frames = stage["stage/stft"].shape[0]
    theirs_masks = np.stack([stage[f"stage/mask/{n}"] for n in params.instrument_list])
    report["mask_rel_db"] = rel_error_db(masks[:, :n_frames], theirs_masks[:, :, : params.F])
    return report


def bn_mode_report(
    stage: dict[str, NDArray[Any]], params: Any, checkpoint_dir: Path
) -> dict[str, float]:
    """Spleeter's model outputs vs Keras with batch norm in inference mode and in batch mode.

    Dropout is disabled in both, so "batch statistics" isolates the batch-norm mode.
    """
    import keras

    from .convert_spleeter import build_from_checkpoint

    model = build_from_checkpoint(params, checkpoint_dir)
    training_model = keras.models.clone_model(
        model, input_tensors=keras.Input((params.T, params.F, params.n_channels))
    )
    training_model.set_weights(model.get_weights())
    for layer in training_model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    blocks = stage["stage/spectrogram"].astype(np.float32)
    theirs = np.stack([stage[f"stage/output/{n}"] for n in params.instrument_list])
    inference = np.stack(
        [np.asarray(model(b[None], training=False)).squeeze(1) for b in blocks], axis=1
    )
    batch_stats = np.stack([np.asarray(o) for o in training_model(blocks, training=True)])
    return {
        "keras_inference_bn_rel_db": rel_error_db(inference, theirs),
        "keras_batch_statistics_bn_rel_db": rel_error_db(batch_stats, theirs),
    }


def stream(model: Any, clip: NDArray[np.float32]) -> tuple[NDArray[np.float32], dict[str, Any]]:
    """Stems from ``BlockSeparator`` (default settings) fed ``STREAM_CHUNK_SAMPLES`` chunks.

    Returns the stems with the latency removed, shape (n_stems, n_samples, n_channels), and
    the streaming configuration.
    """
    from streamsep.engine.settings import StreamSettings
    from streamsep.engine.streamer import BlockSeparator

    engine = BlockSeparator(model, StreamSettings())
    pieces = [
        engine.feed(clip[i : i + STREAM_CHUNK_SAMPLES])
        for i in range(0, clip.shape[0], STREAM_CHUNK_SAMPLES)
    ]
    latency = engine.latency_samples
    info = {
        "settings": "default StreamSettings()",
        "hop_frames": engine.hop_frames,
        "lookahead_frames": engine.lookahead_frames,
        "latency_samples": latency,
        "chunk_samples": STREAM_CHUNK_SAMPLES,
    }
    pieces.append(engine.flush())
    out = np.concatenate(pieces, axis=1)
    return out[:, latency : latency + clip.shape[0]], info


def _stem_numbers(
    offline: NDArray[np.float32],
    cli: NDArray[np.float32],
    streamed: NDArray[np.float32],
    reference: NDArray[np.float32],
) -> dict[str, Any]:
    numbers: dict[str, Any] = {
        "offline_rel_db": rel_error_db(offline, reference),
        "offline_max_abs": max_abs_diff(offline, reference),
        "cli_rel_db": rel_error_db(cli, reference),
        "cli_max_abs": max_abs_diff(cli, reference),
        "streaming_sdr_db": sdr_db(streamed, reference),
        "spleeter_peak": float(np.abs(reference).max()),
    }
    numbers["passed"] = passes(numbers["offline_rel_db"], numbers["offline_max_abs"]) and passes(
        numbers["cli_rel_db"], numbers["cli_max_abs"]
    )
    return numbers


def _run_cli(wav: Path, out_dir: Path, params_path: Path, checkpoint_dir: Path) -> None:
    """``python -m streamsep separate WAV --params P --model DIR`` (its default segmentation)."""
    command = [
        sys.executable,
        "-m",
        "streamsep",
        "separate",
        str(wav),
        "-o",
        str(out_dir),
        "--params",
        str(params_path),
        "--model",
        str(checkpoint_dir),
        "--no-progress",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()[-2000:]}")


def compare_variant(
    params_path: Path,
    checkpoint_dir: Path,
    clip: NDArray[np.float32],
    sample_rate: int,
    spleeter_npz: Path,
    out_dir: Path,
) -> dict[str, Any]:
    """Every streamsep-vs-spleeter number of one checkpoint.

    streamsep runs the seed's way, ``Separator(params, checkpoint_dir)`` with its default
    segmentation (Spleeter's, for a checkpoint directory; converting on first use), then as
    ``streamsep separate --params P --model DIR`` (defaults), then streaming with default
    settings; each stem is compared with ``separator/<stem>`` of ``spleeter_npz``, and the
    stages with :func:`stage_report` and :func:`bn_mode_report`.

    Parameters
    ----------
    clip : ndarray, shape (n_samples, 2), float32
        The clip spleeter separated, at ``sample_rate`` (the model rate).
    out_dir : Path
        Created; receives the clip as WAV, the CLI output and a plain conversion.
    """
    import soundfile as sf

    from streamsep import Separator, StreamSettings
    from streamsep.engine.params import load_params

    from .convert_spleeter import convert

    params = load_params(params_path)
    theirs = dict(np.load(spleeter_npz))
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    offline = Separator(params_path, checkpoint_dir)
    if offline.stream != StreamSettings.spleeter():
        raise RuntimeError(f"default segmentation of a checkpoint dir is {offline.stream}")
    timings["first_load_with_conversion"] = time.perf_counter() - started
    started = time.perf_counter()
    ours = offline.return_source_directory(clip, sample_rate)
    timings["streamsep_offline_separate"] = time.perf_counter() - started
    started = time.perf_counter()
    streamed, streaming = stream(offline.model, clip)
    timings["streamsep_streaming_separate"] = time.perf_counter() - started

    wav = out_dir / "clip.wav"
    sf.write(wav, clip, sample_rate, subtype="FLOAT")
    started = time.perf_counter()
    _run_cli(wav, out_dir / "cli", params_path, checkpoint_dir)
    timings["streamsep_cli_separate"] = time.perf_counter() - started

    stems: dict[str, Any] = {}
    for i, name in enumerate(params.instrument_list):
        cli, _ = sf.read(out_dir / "cli" / "clip" / f"{name}.wav", dtype="float32", always_2d=True)
        stems[name] = _stem_numbers(ours[name], cli, streamed[i], theirs[f"separator/{name}"])

    converted = convert(params, checkpoint_dir, out_dir / "converted", name="model")[0]
    stages = stage_report(theirs, clip, params, converted)
    stages.update(bn_mode_report(theirs, params, checkpoint_dir))
    return {
        "passed": all(s["passed"] for s in stems.values()),
        "stems": stems,
        "stages": stages,
        "streaming": streaming,
        "timings_s": timings,
    }


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if np.isfinite(value) else str(value)


def render_markdown(results: dict[str, Any]) -> str:
    """The Markdown report of a parity run."""
    lines = [
        "# streamsep vs spleeter parity",
        "",
        f"Measured {results['date']} with `{results['command']}` on {results['machine']}; "
        f"spleeter {results['spleeter_version']} (TensorFlow {results['spleeter_tensorflow']}) "
        f"vs streamsep {results['streamsep_version']} (LiteRT, converter on TensorFlow "
        f"{results['tensorflow']}). Clip: {results['clip']}. "
        f"Params: {results['params_summary']}.",
        "",
        f"Criterion: offline relative error <= {REL_ERROR_LIMIT_DB:.0f} dB and max abs diff <= "
        f"{MAX_ABS_LIMIT:g}. Result: **{'PASS' if results['passed'] else 'FAIL'}**.",
        "",
        "| checkpoint | stem | offline rel. error (dB) | offline max abs | CLI rel. error (dB) "
        "| streaming SDR vs spleeter (dB) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, variant in results["variants"].items():
        for stem, s in variant["stems"].items():
            lines.append(
                f"| {name} | {stem} | {_fmt(s['offline_rel_db'])} | {s['offline_max_abs']:.2e} "
                f"| {_fmt(s['cli_rel_db'])} | {_fmt(s['streaming_sdr_db'])} |"
            )
    lines += [
        "",
        "Stages (relative error in dB of streamsep's tensor against spleeter's; model outputs "
        "and masks are computed from spleeter's own input blocks):",
        "",
        "| checkpoint | STFT | model input | model outputs | masks | Keras, BN inference "
        "| Keras, BN batch statistics |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, variant in results["variants"].items():
        st = variant["stages"]
        lines.append(
            f"| {name} | {_fmt(st['stft_rel_db'])} | {_fmt(st['model_input_rel_db'])} "
            f"| {_fmt(st['model_output_rel_db'])} | {_fmt(st['mask_rel_db'])} "
            f"| {_fmt(st['keras_inference_bn_rel_db'])} "
            f"| {_fmt(st['keras_batch_statistics_bn_rel_db'])} |"
        )
    lines += ["", "Checkpoints:", ""]
    for name, variant in results["variants"].items():
        lines.append(f"* {name}: {variant['description']}")
    streaming = next(iter(results["variants"].values()))["streaming"]
    lines += [
        "",
        f"Streaming: {streaming['settings']} (hop_frames {streaming['hop_frames']}, "
        f"lookahead_frames {streaming['lookahead_frames']}, latency "
        f"{streaming['latency_samples']} samples), fed {streaming['chunk_samples']}-sample "
        "chunks; its overlapping Hann-weighted blocks differ from spleeter's segmentation "
        "by design, so its SDR is reported, not required.",
        "",
        "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in results["timings_s"].items()),
        "",
    ]
    return "\n".join(lines)
