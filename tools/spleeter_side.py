"""The spleeter half of ``tools/spleeter_parity.py``; runs in the spleeter virtualenv only.

This module imports the real ``spleeter`` package (2.4.2, TensorFlow 2.12) at import time and
never imports ``streamsep``; ``tools.spleeter_parity`` runs it in a subprocess::

    .venv-spleeter/bin/python -m tools.spleeter_side separate --params P --audio X.npy --out Y.npz
    .venv-spleeter/bin/python -m tools.spleeter_side perturb --checkpoint DIR --out DIR2

Training goes through spleeter's own command line (``python -m spleeter train``) with
:class:`WavAudioAdapter` (``--adapter tools.spleeter_side.WavAudioAdapter``), which reads the
generated float WAV files with SciPy, so that neither training nor separation needs FFmpeg.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io.wavfile
import tensorflow as tf
from spleeter.audio.adapter import AudioAdapter

__all__ = ["WavAudioAdapter", "separate", "perturb", "main"]

_OPTIMIZER_MARKERS = ("/Adam", "beta1_power", "beta2_power")


class WavAudioAdapter(AudioAdapter):
    """Spleeter audio adapter for WAV files at the model rate, read with SciPy (no FFmpeg)."""

    def load(
        self,
        audio_descriptor: Any,
        offset: float | None = None,
        duration: float | None = None,
        sample_rate: float | None = None,
        dtype: bytes = b"float32",
    ) -> tuple[np.ndarray, float]:
        """``(waveform (n_samples, n_channels), sample_rate)`` of ``[offset, offset + duration)``.

        Raises ``ValueError`` if the file's rate is not ``sample_rate`` (no resampling here).
        """
        path = (
            audio_descriptor.decode() if isinstance(audio_descriptor, bytes) else audio_descriptor
        )
        rate, data = scipy.io.wavfile.read(str(path))
        if sample_rate is not None and int(sample_rate) != rate:
            raise ValueError(f"{path}: expected {int(sample_rate)} Hz, got {rate} Hz")
        data = np.asarray(data, dtype=np.float32)
        if data.ndim == 1:
            data = data[:, None]
        start = int(round(float(offset or 0.0) * rate))
        stop = data.shape[0] if duration is None else start + int(round(float(duration) * rate))
        dtype_name = dtype.decode() if isinstance(dtype, bytes) else dtype
        return data[start:stop].astype(dtype_name), float(rate)

    def save(
        self,
        path: Any,
        data: np.ndarray,
        sample_rate: float,
        codec: Any = None,
        bitrate: Any = None,
    ) -> None:
        """Write a float32 WAV file."""
        scipy.io.wavfile.write(str(path), int(sample_rate), np.asarray(data, dtype=np.float32))


def _stage_tensors(params: dict[str, Any], waveform: np.ndarray) -> dict[str, np.ndarray]:
    """Spleeter's intermediate tensors for ``waveform``, from its own predict graph.

    Builds ``EstimatorSpecBuilder`` (what ``model_fn`` builds in PREDICT mode), restores the
    latest checkpoint of ``params["model_dir"]`` and evaluates the mixture STFT, the model input
    blocks, the model outputs, the extended ratio masks and the output waveforms.
    """
    from spleeter.model import EstimatorSpecBuilder, InputProviderFactory

    instruments = params["instrument_list"]
    graph = tf.Graph()
    with graph.as_default():
        features = InputProviderFactory.get(params).get_input_dict_placeholders()
        builder = EstimatorSpecBuilder(features, params)
        fetches: dict[str, Any] = {
            "stft": builder.stft_feature,
            "spectrogram": builder.spectrogram_feature,
        }
        for name in instruments:
            fetches[f"output/{name}"] = builder.model_outputs[f"{name}_spectrogram"]
            fetches[f"mask/{name}"] = builder.masks[name]
            fetches[f"waveform/{name}"] = builder.outputs[name]
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, tf.train.latest_checkpoint(params["model_dir"]))
            values = session.run(fetches, feed_dict={features["waveform"]: waveform})
    return {f"stage/{key}": np.asarray(value) for key, value in values.items()}


def separate(params_path: Path, audio_path: Path, out_path: Path) -> None:
    """Separate ``audio_path`` (.npy, (n_samples, 2) float32) with spleeter; write ``out_path``.

    The ``.npz`` holds ``separator/<instrument>`` from ``spleeter.separator.Separator.separate``
    (the public API, MWF off) and ``stage/...`` from :func:`_stage_tensors`.
    """
    from spleeter.separator import Separator

    waveform = np.load(audio_path).astype(np.float32)
    separator = Separator(str(params_path), MWF=False, multiprocess=False)
    prediction = separator.separate(waveform)
    arrays = {f"separator/{name}": np.asarray(v) for name, v in prediction.items()}
    params = json.loads(params_path.read_text())
    arrays.update(_stage_tensors(params, waveform))
    np.savez(out_path, **arrays)
    print(f"spleeter: separated {waveform.shape} -> {out_path}")


def perturb(checkpoint_dir: Path, out_dir: Path, seed: int) -> None:
    """Copy a checkpoint with every network variable perturbed, in the pretrained layout.

    Kernels and biases get relative noise, batch-norm ``gamma``/``beta`` and, above all, the
    moving statistics get non-trivial values (``moving_mean`` ~ N(0, 0.3), ``moving_variance``
    in [0.3, 2]); spleeter's training leaves the moving statistics at exactly 0 and 1 (its
    Keras layers run batch norm in inference mode and no update op is run). Optimizer slots are
    dropped; ``global_step`` is kept (the estimator restores it). Written with
    ``tf.compat.v1.train.Saver`` as ``model.index``, ``model.data-00000-of-00001``,
    ``model.meta`` and ``checkpoint``, the layout of Deezer's pretrained models and the seed's
    fine-tune.
    """
    rng = np.random.default_rng(seed)
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(checkpoint_dir)))
    shapes = reader.get_variable_to_shape_map()
    out_dir.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        variables = {}
        for name in sorted(shapes):
            if any(marker in name for marker in _OPTIMIZER_MARKERS):
                continue
            value = np.asarray(reader.get_tensor(name))
            if name == "global_step":  # spleeter's estimator needs it to restore
                variables[name] = tf.compat.v1.Variable(value, name=name)
                continue
            value = value.astype(np.float32)
            leaf = name.rsplit("/", 1)[-1]
            if leaf == "moving_mean":
                value = rng.normal(0.0, 0.3, value.shape)
            elif leaf == "moving_variance":
                value = rng.uniform(0.3, 2.0, value.shape)
            elif leaf == "gamma":
                value = value * rng.uniform(0.7, 1.3, value.shape)
            elif leaf in ("beta", "bias"):
                value = value + rng.normal(0.0, 0.1, value.shape)
            else:
                value = value * rng.uniform(0.8, 1.2, value.shape)
            variables[name] = tf.compat.v1.Variable(value.astype(np.float32), name=name)
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(out_dir / "model"), write_meta_graph=True)
    (out_dir / ".probe").write_text("OK")
    print(f"spleeter: wrote perturbed checkpoint ({len(variables)} variables) to {out_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tools.spleeter_side")
    commands = parser.add_subparsers(dest="command", required=True)
    sep = commands.add_parser("separate", help="separate a .npy clip with spleeter")
    sep.add_argument("--params", type=Path, required=True)
    sep.add_argument("--audio", type=Path, required=True)
    sep.add_argument("--out", type=Path, required=True)
    per = commands.add_parser("perturb", help="perturbed copy of a checkpoint")
    per.add_argument("--checkpoint", type=Path, required=True)
    per.add_argument("--out", type=Path, required=True)
    per.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "separate":
        separate(args.params, args.audio, args.out)
    else:
        perturb(args.checkpoint, args.out, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
