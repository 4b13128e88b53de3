"""The training loop: settings, validation set, checkpoints, prefetching batches, export."""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from streamsep.engine.params import ModelParams
from streamsep.errors import ConfigError
from tools.dataset.blocks import Batch, BlockGenerator
from tools.dataset.mixtures import load_pool
from tools.train.losses import LOSSES, l1_level_per_stem, l1_per_stem, sdr_per_stem

_LOGGER = logging.getLogger(__name__)

ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_DATA: Final = ROOT.parent / "shared" / "data"
VALIDATION_SEED_OFFSET: Final = 1_000_003
"""The validation set is drawn from ``seed + VALIDATION_SEED_OFFSET`` (never a train seed)."""
WEIGHTS_FILE: Final = "last.weights.h5"
OPTIMIZER_FILE: Final = "optimizer.npz"
STATE_FILE: Final = "state.json"


@dataclass(frozen=True)
class TrainSettings:
    """How long and how to train."""

    out_dir: Path
    """Run folder (created)."""
    steps: int | None = None
    """Stop at this step count (total, across resumes); None: only ``minutes`` limits."""
    minutes: float | None = None
    """Stop after this many minutes of this invocation's training loop."""
    seed: int = 3
    """Seed of the weights, dropout and data."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    loss: str = "l1"
    """One of :data:`tools.train.losses.LOSSES`."""
    log_every: int = 10
    """Steps per train-loss line in ``log.jsonl``."""
    eval_every: int = 50
    """Steps between validation losses (also logged at step 0 and at the end)."""
    checkpoint_every: int = 100
    """Steps between checkpoints (also at the end)."""
    resume: bool = False
    """Continue from ``out_dir/ckpt``."""
    keep_every: int | None = None
    """Also keep a copy of the checkpoint every this many steps, as ``out_dir/ckpt-<step>``."""
    init_weights: Path | None = None
    """Start from these weights (a ``.weights.h5`` of the same params) at step 0, fresh Adam."""
    freeze_batch_norm: bool = False
    """Batch norms in inference mode and not trained (weights from
    :mod:`tools.train.from_tflite`, whose batch norms hold no batch statistics)."""
    export_name: str = "orca_unet"
    """File stem of the exported ``.tflite`` and params JSON."""
    precision: str = "float32"
    """Export precision (see ``tools.export_tflite.PRECISIONS``)."""
    progress: bool = True
    """Show a tqdm progress bar."""
    export: bool = True
    """Export to TFLite at the end."""

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None:
            raise ConfigError("train: give steps or minutes")
        if self.loss not in LOSSES:
            raise ConfigError(f"train: loss must be one of {list(LOSSES)}, got {self.loss!r}")
        if self.learning_rate <= 0:
            raise ConfigError(f"train: learning_rate must be > 0, got {self.learning_rate}")


def validation_batches(
    data_dir: str | Path,
    params: ModelParams,
    seed: int,
    n_batches: int,
    batch_size: int,
    *,
    psa: bool = False,
) -> list[Batch]:
    """The fixed validation set: ``n_batches`` unaugmented batches of the val split (with
    phase-sensitive targets too if ``psa``; the magnitude targets are the same either way)."""
    pool = load_pool(data_dir, "val", params.sample_rate, params.frame_length)
    generator = BlockGenerator(
        pool,
        params,
        seed=seed + VALIDATION_SEED_OFFSET,
        batch_size=batch_size,
        augment=False,
        psa=psa,
    )
    return [generator.batch(i) for i in range(n_batches)]


def _save_checkpoint(model: Any, optimizer: Any, ckpt: Path, state: dict[str, Any]) -> None:
    """Weights, optimizer variables and state, each written to a temporary file then renamed."""
    ckpt.mkdir(parents=True, exist_ok=True)
    tmp_weights = ckpt / f"tmp-{WEIGHTS_FILE}"
    model.save_weights(tmp_weights)
    store: dict[str, np.ndarray] = {}
    optimizer.save_own_variables(store)
    with (ckpt / "tmp-optimizer.npz").open("wb") as f:
        np.savez(f, **store)  # type: ignore[arg-type]  # numpy stub: allow_pickle clash
    (ckpt / f"tmp-{STATE_FILE}").write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp_weights, ckpt / WEIGHTS_FILE)
    os.replace(ckpt / "tmp-optimizer.npz", ckpt / OPTIMIZER_FILE)
    os.replace(ckpt / f"tmp-{STATE_FILE}", ckpt / STATE_FILE)


def _load_checkpoint(model: Any, optimizer: Any, ckpt: Path) -> dict[str, Any]:
    model.load_weights(ckpt / WEIGHTS_FILE)
    with np.load(ckpt / OPTIMIZER_FILE) as data:
        optimizer.load_own_variables({key: data[key] for key in data.files})
    state: dict[str, Any] = json.loads((ckpt / STATE_FILE).read_text())
    return state


class _Prefetcher:
    """Makes batches ``start, start + 1, ...`` on a background thread ("train-data")."""

    def __init__(self, generator: BlockGenerator, start: int, depth: int = 4) -> None:
        self._generator = generator
        self._queue: queue.Queue[Batch] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(start,), name="train-data", daemon=True
        )
        self._thread.start()

    def _run(self, index: int) -> None:
        while not self._stop.is_set():
            batch = self._generator.batch(index)
            while not self._stop.is_set():
                try:
                    self._queue.put(batch, timeout=0.1)
                    break
                except queue.Full:
                    continue
            index += 1

    def get(self) -> Batch:
        return self._queue.get(timeout=60)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def train(
    params: ModelParams,
    generator: BlockGenerator,
    val_set: list[Batch],
    settings: TrainSettings,
) -> dict[str, Any]:
    """Train (or resume), checkpoint, log and export; return a summary.

    Parameters
    ----------
    params : ModelParams
        Model and DSP; ``instrument_list`` must be ``["orca_vocals", "noise"]``.
    generator : BlockGenerator
        Training batches (``batch(i)`` for step ``i``).
    val_set : list of batches
        Fixed validation batches.
    settings : TrainSettings

    Returns
    -------
    dict
        ``step``, ``first``/``last`` train and val losses, ``seconds``, ``steps_per_second``,
        ``tflite`` and ``params`` paths of the export.

    Raises
    ------
    ConfigError
        If resuming with other params than the checkpoint's, or nothing to resume from.
    """
    import keras
    from tqdm import tqdm

    from tools.train.steps import make_steps
    from tools.unet import build_unet, load_compatible

    out = settings.out_dir
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "ckpt"
    stems = params.instrument_list
    keras.utils.set_random_seed(settings.seed)
    model = build_unet(params, training=True)
    n_mix = params.n_channels
    if settings.freeze_batch_norm:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False  # Keras 3: inference mode even in training calls
    optimizer = keras.optimizers.Adam(learning_rate=settings.learning_rate)
    optimizer.build(model.trainable_variables)
    step, elapsed_before = 0, 0.0
    if settings.init_weights is not None and settings.resume:
        raise ConfigError("--init-weights starts a new run: not with --resume")
    if settings.init_weights is not None:
        if not settings.init_weights.is_file():
            raise ConfigError(f"--init-weights: {settings.init_weights} not found")
        variant = load_compatible(model, str(settings.init_weights), params)
        _LOGGER.info("initial weights from %s (%s network)", settings.init_weights, variant)
    if settings.resume:
        if not (ckpt / STATE_FILE).is_file():
            raise ConfigError(f"nothing to resume: {ckpt / STATE_FILE} not found")
        frozen = json.loads((ckpt / STATE_FILE).read_text()).get("freeze_batch_norm", False)
        if frozen != settings.freeze_batch_norm:
            raise ConfigError(
                f"resume: the checkpoint was trained {'with' if frozen else 'without'} "
                "--freeze-batch-norm; resume it the same way"
            )
        state = _load_checkpoint(model, optimizer, ckpt)
        runtime_only = ("stream",)  # streaming defaults do not change what is trained
        saved = {k: v for k, v in state["params"].items() if k not in runtime_only}
        if saved != {k: v for k, v in params.to_dict().items() if k not in runtime_only}:
            raise ConfigError("resume: params differ from the checkpoint's")
        step, elapsed_before = int(state["step"]), float(state["elapsed_s"])
        # The saved optimizer variables include its learning rate: the one asked for now wins.
        optimizer.learning_rate.assign(settings.learning_rate)
        _LOGGER.info(
            "resumed from %s at step %d, learning rate %g", ckpt, step, settings.learning_rate
        )
    params.save(out / "params.json")

    def stem_losses(outputs: Any, ys: list[Any], x: Any) -> list[Any]:
        x = x[..., :n_mix]  # the mix (the floor channels follow it with a floor context)
        if settings.loss == "sdr":  # ys: the phase-sensitive targets
            return sdr_per_stem(outputs, ys, x, params.separation_exponent)
        if settings.loss == "l1-level":
            return l1_level_per_stem(outputs, ys, x)
        return l1_per_stem(outputs, ys)

    steps = make_steps(model, optimizer, stem_losses, params.separation_exponent, n_mix)
    train_step, eval_step, eval_sdr_step = steps.train, steps.eval_l1, steps.eval_sdr

    with_sdr = all(f"{s}:psa" in val_set[0][1] for s in stems) if val_set else False

    log_file = (out / "log.jsonl").open("a")
    started = time.perf_counter()
    summary: dict[str, Any] = {"first_train": None, "first_val": None}

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - started

    def log(split: str, losses: np.ndarray, sdr_losses: np.ndarray | None = None) -> dict[str, Any]:
        record = {"split": split, "step": step, "loss": float(losses.sum())}
        record.update({f"loss_{s}": float(v) for s, v in zip(stems, losses, strict=True)})
        if sdr_losses is not None:
            record.update({f"sdr_{s}": -float(v) for s, v in zip(stems, sdr_losses, strict=True)})
        record["elapsed_s"] = round(elapsed(), 2)
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()
        key = f"first_{split}"
        if summary[key] is None:
            summary[key] = record
        summary[f"last_{split}"] = record
        return record

    def validate() -> dict[str, Any]:
        """The seed's L1 per stem; with phase-sensitive targets also the spectral SDR (dB)."""
        values = [
            np.array([float(v) for v in eval_step(x, [y[s] for s in stems])]) for x, y in val_set
        ]
        sdr = None
        if with_sdr:
            sdr = np.mean(
                [
                    [float(v) for v in eval_sdr_step(x, [y[f"{s}:psa"] for s in stems])]
                    for x, y in val_set
                ],
                axis=0,
            )
        return log("val", np.mean(values, axis=0), sdr)

    def checkpoint() -> None:
        steps.sync()
        state = {
            "step": step,
            "elapsed_s": elapsed(),
            "seed": settings.seed,
            "params": params.to_dict(),
            "freeze_batch_norm": settings.freeze_batch_norm,
        }
        _save_checkpoint(model, optimizer, ckpt, state)
        if settings.keep_every and step % settings.keep_every == 0:
            kept = out / f"ckpt-{step}"
            kept.mkdir(exist_ok=True)
            for name in (WEIGHTS_FILE, OPTIMIZER_FILE, STATE_FILE):
                shutil.copyfile(ckpt / name, kept / name)

    if step == 0:
        validate()
    deadline = None if settings.minutes is None else time.perf_counter() + 60 * settings.minutes
    prefetcher = _Prefetcher(generator, step)
    bar = tqdm(total=settings.steps, initial=step, disable=not settings.progress, unit="step")
    window: list[np.ndarray] = []
    start_step, last_val_step = step, -1
    try:
        while (settings.steps is None or step < settings.steps) and (
            deadline is None or time.perf_counter() < deadline
        ):
            x, y = prefetcher.get()
            keys = [f"{s}:psa" if settings.loss == "sdr" else s for s in stems]
            losses = np.array([float(v) for v in train_step(x, [y[k] for k in keys])])
            step += 1
            window.append(losses)
            bar.update(1)
            bar.set_postfix(loss=f"{losses.sum():.4f}")
            if step % settings.log_every == 0:
                log("train", np.mean(window, axis=0))
                window = []
            if step % settings.eval_every == 0:
                record = validate()
                last_val_step = step
                bar.write(f"step {step}: val loss {record['loss']:.4f}")
            if step % settings.checkpoint_every == 0 or (
                settings.keep_every and step % settings.keep_every == 0
            ):
                checkpoint()
    finally:
        bar.close()
        prefetcher.close()
    if window:
        log("train", np.mean(window, axis=0))
    if last_val_step != step:
        validate()
    checkpoint()
    log_file.close()
    seconds = time.perf_counter() - started
    if settings.export and keras.backend.backend() != "tensorflow":
        _LOGGER.warning(
            "exporting to TFLite needs the TensorFlow backend: run python -m tools.train --params "
            "%s --out %s --export-only (KERAS_BACKEND unset) to export the checkpoint",
            out / "params.json",
            out,
        )
    elif settings.export:
        tflite, params_path = export_checkpoint(
            params,
            out,
            name=settings.export_name,
            precision=settings.precision,
            model=model,
            representative=generator,
        )
        summary.update(tflite=str(tflite), params=str(params_path))
    summary.update(
        step=step,
        batch_size=generator.batch_size,
        learning_rate=settings.learning_rate,
        seed=settings.seed,
        seconds=round(seconds, 1),
        steps_per_second=round((step - start_step) / max(seconds, 1e-9), 3),
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def export_checkpoint(
    params: ModelParams,
    out_dir: Path,
    *,
    name: str = "orca_unet",
    precision: str = "float32",
    model: Any = None,
    representative: BlockGenerator | None = None,
) -> tuple[Path, Path]:
    """Export ``model`` (or the weights of ``out_dir/ckpt``) to ``out_dir/export/name.*``.

    For ``int8`` the activations are calibrated on 64 mixture blocks of ``representative``
    (random blocks if None).
    """
    from tools.export_tflite import export
    from tools.unet import build_unet

    inference = build_unet(params)
    if model is not None:
        inference.set_weights(model.get_weights())
    else:
        weights = out_dir / "ckpt" / WEIGHTS_FILE
        if not weights.is_file():
            raise ConfigError(f"no checkpoint to export: {weights} not found")
        inference.load_weights(weights)
    blocks = None
    if precision == "int8" and representative is not None:
        n_batches = -(-64 // representative.batch_size)
        blocks = [b for i in range(n_batches) for b in representative.batch(i)[0]]
    return export(
        inference,
        params,
        out_dir / "export",
        precision=precision,
        name=name,
        representative_data=blocks,
    )
