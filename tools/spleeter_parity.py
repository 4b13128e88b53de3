"""Parity with the real ``spleeter`` package: same checkpoint, same clip, same output.

Usage::

    .venv/bin/python -m tools.spleeter_parity [--work out/spleeter_parity]
        [--spleeter-venv .venv-spleeter] [--json PATH] [--markdown PATH]

Steps (about 1.5 minutes on 2 CPU cores once the spleeter virtualenv exists):

1. Make sure ``.venv-spleeter`` has ``spleeter==2.4.2`` (created with ``python3 -m venv`` and
   pip when ``import spleeter`` fails there; reused otherwise).
2. Generate a tiny dataset (synthetic whistles + noise, float WAV) and let spleeter train a
   small U-Net for a few steps with its own command line, ``python -m spleeter train``, with
   the seed's stems and activations (``orca_vocals``/``noise``, ELU) and small sizes (filters
   8..256, ``T`` = 128, ``F`` = 256, the seed's 44.1 kHz and 4096/1024 STFT). Audio is read by
   :class:`tools.spleeter_side.WavAudioAdapter` (SciPy), so FFmpeg is not needed.
3. Write a perturbed copy of the checkpoint (non-trivial batch-norm statistics, which spleeter's
   training leaves at 0 and 1) in the pretrained layout (``model.index``...).
4. For each checkpoint, separate a 12.3 s stereo clip of real Orcasound recordings with
   ``spleeter.separator.Separator.separate`` (MWF off) and dump spleeter's intermediate tensors.
5. Separate the same clip with streamsep: ``Separator(params, checkpoint_dir)`` with its
   default segmentation (Spleeter's; the seed's call; the checkpoint is converted on first use),
   the ``streamsep separate`` command line with ``--model DIR`` (defaults), and
   ``BlockSeparator`` streaming with default settings fed 1024-sample chunks.
6. Compare: offline relative error (must be <= -90 dB, and max abs diff <= 1e-4), streaming SDR
   against spleeter's output (reported), and each stage (STFT, model input, model outputs,
   masks), plus the model outputs with batch norm on batch statistics, to show which mode
   spleeter's predict uses.

Writes a JSON and a Markdown report; exits 1 if parity fails, 2 if a step fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import scipy.io.wavfile
from numpy.typing import NDArray

from .spleeter_compare import MAX_ABS_LIMIT, REL_ERROR_LIMIT_DB, compare_variant, render_markdown

__all__ = [
    "SPLEETER_VERSION",
    "Variant",
    "VARIANTS",
    "parity_params",
    "make_dataset",
    "make_clip",
    "ensure_spleeter_venv",
    "run",
    "main",
]

_LOGGER = logging.getLogger("tools.spleeter_parity")

ROOT: Final = Path(__file__).resolve().parents[1]
SPLEETER_VERSION: Final = "2.4.2"
STEMS: Final = ("orca_vocals", "noise")
SAMPLE_RATE: Final = 44100
CLIP_SECONDS: Final = 12.3
_FIXTURE_AUDIO: Final = ROOT / "tests" / "fixtures" / "audio"
_CLIP_SOURCES: Final = (
    "orca-autoencoder_someCalls.flac",
    "acoustic-separation_20181202_25sec.flac",
)
"""Left and right channel of the clip: two different recordings, so channels differ."""


@dataclass(frozen=True)
class Variant:
    """One checkpoint compared with spleeter."""

    name: str
    """Short name in the report."""
    model_dir: str
    """Checkpoint directory, relative to the work dir."""
    mask_extension: str
    """Params ``mask_extension`` used with it."""
    description: str
    """One line for the report."""


VARIANTS: Final = (
    Variant(
        "trained",
        "model",
        "zeros",
        "checkpoint written by `spleeter train` (estimator layout model.ckpt-N), "
        "mask_extension zeros (the seed's)",
    ),
    Variant(
        "perturbed",
        "model_perturbed",
        "average",
        "same checkpoint with every variable perturbed (non-trivial batch-norm statistics), "
        "pretrained layout (model.index), mask_extension average",
    ),
)


def parity_params(work: Path, variant: Variant) -> dict[str, Any]:
    """Spleeter params JSON (as a dict) for training and separating ``variant`` in ``work``.

    The seed's ``2stems-finetune.json`` with small sizes: filters 8..256, ``T`` = 128,
    ``F`` = 256 (Spleeter needs multiples of 64), a few training steps on 4 s chunks.
    """
    return {
        "train_csv": str(work / "train.csv"),
        "validation_csv": str(work / "validation.csv"),
        "model_dir": str(work / variant.model_dir),
        "mix_name": "mix",
        "instrument_list": list(STEMS),
        "sample_rate": SAMPLE_RATE,
        "frame_length": 4096,
        "frame_step": 1024,
        "T": 128,
        "F": 256,
        "n_channels": 2,
        "separation_exponent": 2,
        "mask_extension": variant.mask_extension,
        "learning_rate": 1e-3,
        "batch_size": 2,
        "train_max_steps": 4,
        "throttle_secs": 1,
        "random_seed": 3,
        "save_checkpoints_steps": 4,
        "save_summary_steps": 4,
        "chunk_duration": 4.0,
        "n_chunks_per_song": 1,
        "model": {
            "type": "unet.unet",
            "params": {
                "conv_n_filters": [8, 16, 32, 64, 128, 256],
                "conv_activation": "ELU",
                "deconv_activation": "ELU",
            },
        },
    }


def make_dataset(
    data_dir: Path, csv_path: Path, *, n_songs: int = 3, seconds: float = 6.0, seed: int = 0
) -> None:
    """Write ``n_songs`` stereo float WAV triples (mix = orca_vocals + noise) and their CSV.

    ``orca_vocals`` are frequency-modulated harmonic whistles with an amplitude envelope,
    ``noise`` is low-passed Gaussian noise; the CSV has Spleeter's columns ``mix_path``,
    ``<stem>_path`` (relative to ``data_dir``) and ``duration`` (seconds).
    """
    rng = np.random.default_rng(seed)
    data_dir.mkdir(parents=True, exist_ok=True)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    rows = []
    for i in range(n_songs):
        f0 = 600.0 + 300.0 * i + 250.0 * np.sin(2 * np.pi * (0.3 + 0.1 * i) * t)
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t + i)
        whistle = np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase)
        orca = 0.15 * np.stack([whistle, 0.8 * np.roll(whistle, 7)], axis=1) * envelope[:, None]
        white = rng.standard_normal((n, 2))
        noise = 0.05 * (white + 0.9 * np.roll(white, 1, axis=0))
        stems = {"mix": orca + noise, "orca_vocals": orca, "noise": noise}
        for name, audio in stems.items():
            scipy.io.wavfile.write(data_dir / f"{name}_{i}.wav", SAMPLE_RATE, audio.astype("f4"))
        rows.append(f"mix_{i}.wav,orca_vocals_{i}.wav,noise_{i}.wav,{n / SAMPLE_RATE}")
    header = "mix_path,orca_vocals_path,noise_path,duration"
    csv_path.write_text("\n".join([header, *rows]) + "\n")


def make_clip(seconds: float = CLIP_SECONDS) -> NDArray[np.float32]:
    """A stereo clip of real Orcasound audio at 44.1 kHz, shape (n_samples, 2) float32.

    Left and right come from two different recordings; peak 0.9.
    """
    from streamsep.engine.audio import read_audio, resample

    n = int(round(seconds * SAMPLE_RATE))
    channels = []
    for name in _CLIP_SOURCES:
        audio, rate = read_audio(_FIXTURE_AUDIO / name)
        mono = resample(audio[:, :1], rate, SAMPLE_RATE)[:n, 0]
        if mono.shape[0] < n:
            raise ValueError(f"{name} is shorter than {seconds} s")
        channels.append(mono - mono.mean())
    clip = np.stack(channels, axis=1)
    return (clip / np.abs(clip).max() * 0.9).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The spleeter side (subprocesses in the spleeter virtualenv)


class StepError(RuntimeError):
    """A step of the parity run failed (not a parity failure)."""


def _spleeter_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_spleeter_venv(venv: Path, base_python: str) -> Path:
    """The spleeter virtualenv's python, creating the venv and installing spleeter if needed."""
    python = _spleeter_python(venv)
    if python.is_file():
        check = subprocess.run(
            [str(python), "-c", "import spleeter"], capture_output=True, check=False
        )
        if check.returncode == 0:
            _LOGGER.info("spleeter virtualenv %s: ok (reused)", venv)
            return python
    _LOGGER.info("creating %s with spleeter==%s (a few minutes)", venv, SPLEETER_VERSION)
    for command in (
        [base_python, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"],
        [str(python), "-m", "pip", "install", "-q", f"spleeter=={SPLEETER_VERSION}"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise StepError(f"{' '.join(command)} failed:\n{tail}")
    return python


def _run_logged(command: list[str], log_path: Path, cwd: Path, what: str) -> float:
    """Run ``command`` with its output in ``log_path``; return seconds; raise on failure."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    _LOGGER.info("%s ...", what)
    started = time.perf_counter()
    with log_path.open("w") as log:
        result = subprocess.run(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        raise StepError(f"{what} failed (exit {result.returncode}, log {log_path}):\n{tail}")
    _LOGGER.info("%s: done in %.1f s", what, seconds)
    return seconds


def _versions(spleeter_python: Path) -> dict[str, str]:
    import tensorflow as tf

    import streamsep

    probe = subprocess.run(
        [
            str(spleeter_python),
            "-c",
            "import importlib.metadata as m; print(m.version('spleeter'), m.version('tensorflow'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    spleeter_version, spleeter_tf = (probe.stdout.split() + ["?", "?"])[:2]
    return {
        "spleeter_version": spleeter_version,
        "spleeter_tensorflow": spleeter_tf,
        "tensorflow": tf.__version__,
        "streamsep_version": streamsep.__version__,
    }


def run(work: Path, venv: Path, base_python: str) -> dict[str, Any]:
    """Run every step in ``work`` (wiped first); return the results dict."""
    started_all = time.perf_counter()
    timings: dict[str, float] = {}
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)

    started = time.perf_counter()
    python = ensure_spleeter_venv(venv, base_python)
    timings["spleeter_venv"] = time.perf_counter() - started

    make_dataset(work / "data", work / "train.csv")
    shutil.copy(work / "train.csv", work / "validation.csv")
    for variant in VARIANTS:
        params = parity_params(work, variant)
        (work / f"params_{variant.name}.json").write_text(json.dumps(params, indent=2) + "\n")
    trained, perturbed = VARIANTS
    timings["spleeter_train"] = _run_logged(
        [
            str(python),
            "-m",
            "spleeter",
            "train",
            "-p",
            str(work / f"params_{trained.name}.json"),
            "-d",
            str(work / "data"),
            "-a",
            "tools.spleeter_side.WavAudioAdapter",
        ],
        work / "spleeter_train.log",
        work,
        "spleeter train",
    )
    from streamsep.engine.checkpoint import find_checkpoint
    from streamsep.errors import ModelError

    try:  # spleeter's CLI exits 0 even when training failed
        find_checkpoint(work / trained.model_dir)
    except ModelError as e:
        raise StepError(
            f"spleeter train wrote no checkpoint: {e} (log {work}/spleeter_train.log)"
        ) from e
    timings["spleeter_perturb"] = _run_logged(
        [
            str(python),
            "-m",
            "tools.spleeter_side",
            "perturb",
            "--checkpoint",
            str(work / trained.model_dir),
            "--out",
            str(work / perturbed.model_dir),
        ],
        work / "spleeter_perturb.log",
        work,
        "perturbed checkpoint",
    )

    clip = make_clip()
    np.save(work / "clip.npy", clip)
    variants: dict[str, Any] = {}
    for variant in VARIANTS:
        npz = work / f"spleeter_{variant.name}.npz"
        timings[f"spleeter_separate_{variant.name}"] = _run_logged(
            [
                str(python),
                "-m",
                "tools.spleeter_side",
                "separate",
                "--params",
                str(work / f"params_{variant.name}.json"),
                "--audio",
                str(work / "clip.npy"),
                "--out",
                str(npz),
            ],
            work / f"spleeter_separate_{variant.name}.log",
            work,
            f"spleeter separate ({variant.name})",
        )
        started = time.perf_counter()
        variants[variant.name] = compare_variant(
            work / f"params_{variant.name}.json",
            work / variant.model_dir,
            clip,
            SAMPLE_RATE,
            npz,
            work / f"streamsep_{variant.name}",
        )
        variants[variant.name]["description"] = variant.description
        timings[f"streamsep_{variant.name}"] = time.perf_counter() - started
    timings["total"] = time.perf_counter() - started_all

    p = parity_params(work, trained)
    filters = p["model"]["params"]["conv_n_filters"]
    return {
        "date": time.strftime("%Y-%m-%d"),
        "command": ".venv/bin/python -m tools.spleeter_parity",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}",
        **_versions(python),
        "clip": f"{clip.shape[0]} samples ({clip.shape[0] / SAMPLE_RATE:.2f} s) stereo at "
        f"{SAMPLE_RATE} Hz, left {_CLIP_SOURCES[0]}, right {_CLIP_SOURCES[1]}",
        "params_summary": f"{p['sample_rate']} Hz, frame_length {p['frame_length']}, frame_step "
        f"{p['frame_step']}, T {p['T']}, F {p['F']}, stereo, stems {p['instrument_list']}, "
        f"filters {filters}, ELU/ELU, separation_exponent {p['separation_exponent']}, "
        f"{p['train_max_steps']} training steps",
        "criterion": {"rel_error_db": REL_ERROR_LIMIT_DB, "max_abs": MAX_ABS_LIMIT},
        "passed": all(v["passed"] for v in variants.values()),
        "variants": variants,
        "timings_s": timings,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0 on parity, 1 on a parity failure, 2 on an error."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.spleeter_parity",
        description="Train a tiny model with spleeter, separate with spleeter and streamsep, "
        "compare.",
    )
    parser.add_argument(
        "--work", type=Path, default=ROOT / "out" / "spleeter_parity", help="work dir (wiped)"
    )
    parser.add_argument(
        "--spleeter-venv", type=Path, default=ROOT / ".venv-spleeter", help="spleeter venv"
    )
    parser.add_argument(
        "--base-python", default="python3", help="interpreter that creates the spleeter venv"
    )
    parser.add_argument("--json", type=Path, help="JSON report (default: WORK/results.json)")
    parser.add_argument("--markdown", type=Path, help="Markdown report (default: WORK/results.md)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    try:
        results = run(args.work.resolve(), args.spleeter_venv.resolve(), args.base_python)
    except StepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    json_path = args.json or args.work / "results.json"
    md_path = args.markdown or args.work / "results.md"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    markdown = render_markdown(results)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(markdown)
    print(markdown)
    print(f"wrote {json_path} and {md_path}")
    if not results["passed"]:
        print("error: streamsep does not match spleeter (see the tables above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
