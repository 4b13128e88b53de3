"""Experiment: a small CNN call classifier as the detector's call term (not shipped).

Trains a three-layer CNN (Keras) on 1 s log-mel patches that end at each detector window
(48 mel bands 0.5-15 kHz, 20 ms hop; channels: the orca stem and the mix, each relative to its
per-band median over the patch, and orca minus mix), on the windows and labels of
``tools/call_classifier.py`` (``train`` calls mixed into ``train`` noise, and the ``train``
noise; never the test files or the labelled clips). Then it reports, for the detector with the
CNN's log-odds plus ``call_offset_db`` as an extra term of the score (``min``), at several
offsets: the labelled clips' ROC AUC, false events per hour on the looped noise recordings
and recall on the mixed-in ``val`` calls, as ``tools/evaluate_detection.py`` measures them.

Usage::

    nice python -m tools.call_cnn --data ../shared/data
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.offline import Separator
from streamsep.events.detector import DetectorSettings
from streamsep.events.terms import WindowView
from streamsep.resources import default_model_paths
from tools.call_classifier import Signal, signals
from tools.evaluate_detection import Item, Stems, build_corpus, offset_table, roc_auc

_LOGGER = logging.getLogger("call_cnn")

HOP: Final = 640  # samples (20 ms at 32 kHz)
N_FFT: Final = 1024
N_MELS: Final = 48
CONTEXT_FRAMES: Final = 50  # 1 s
EPOCHS: Final = 6
OFFSETS_DB: Final = (10.0, 0.0, -10.0, -15.0, -20.0)


def mel_bank(rate: int) -> NDArray[np.float64]:
    """Triangular mel filters over 0.5-15 kHz, shape (N_MELS, N_FFT // 2 + 1)."""
    f = np.fft.rfftfreq(N_FFT, 1 / rate)
    edges_mel = np.linspace(_mel(500.0), _mel(15000.0), N_MELS + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1)
    bank = np.zeros((N_MELS, f.size))
    for i in range(N_MELS):
        a, b, c = edges[i : i + 3]
        bank[i] = np.clip(np.minimum((f - a) / (b - a), (c - f) / (c - b)), 0, None)
    return bank


def _mel(hz: float) -> float:
    return 2595.0 * math.log10(1 + hz / 700.0)


def log_mel(x: NDArray[np.floating], bank: NDArray[np.float64]) -> NDArray[np.float64]:
    """Log-mel power, dB, shape (n_frames, N_MELS); frame j covers [j HOP, j HOP + N_FFT)."""
    n = 1 + max(0, (x.shape[0] - N_FFT) // HOP)
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    frames = np.pad(x.astype(np.float64), (0, N_FFT))[idx] * np.hanning(N_FFT)
    return 10 * np.log10(np.abs(np.fft.rfft(frames, axis=1)) ** 2 @ bank.T + 1e-12)


def patches(
    mix: NDArray[np.floating], orca: NDArray[np.floating], n_windows: int, window: int, rate: int
) -> NDArray[np.float32]:
    """One (CONTEXT_FRAMES, N_MELS, 3) patch per detector window, ending at the window's end."""
    bank = mel_bank(rate)
    lm, lo = log_mel(mix, bank), log_mel(orca, bank)
    out = np.zeros((n_windows, CONTEXT_FRAMES, N_MELS, 3), np.float32)
    for k in range(n_windows):
        end = min(((k + 1) * window - N_FFT) // HOP + 1, lm.shape[0])
        start = max(0, end - CONTEXT_FRAMES)
        pm, po = lm[start:end], lo[start:end]
        if pm.shape[0] == 0:
            continue
        rows = slice(CONTEXT_FRAMES - pm.shape[0], CONTEXT_FRAMES)
        out[k, rows, :, 0] = po - np.median(po, axis=0)
        out[k, rows, :, 1] = pm - np.median(pm, axis=0)
        out[k, rows, :, 2] = np.clip(po - pm, -40, 10)
    return out


def dataset(
    items: list[Signal], window: int, rate: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Patches and labels of the labelled (>= 0) windows of ``items``."""
    xs, ys = [], []
    for s in items:
        p = patches(s.mix, s.orca, s.labels.shape[0], window, rate)
        keep = np.where(s.labels >= 0)[0]
        xs.append(p[keep])
        ys.append(s.labels[keep])
    return np.concatenate(xs), np.concatenate(ys).astype(np.float32)


class Precomputed:
    """An extra detector term (:class:`streamsep.events.detector.ExtraTerm`) read from the
    per-window log-odds (dB) of one signal, plus ``offset_db`` (looped signals: window
    ``index`` maps to the same place in the loop)."""

    def __init__(
        self, values: NDArray[np.float64], length: int, window: int, offset_db: float
    ) -> None:
        self.values, self.length, self.window, self.offset_db = values, length, window, offset_db

    def __call__(self, view: WindowView) -> float:
        k = (view.index * self.window % self.length) // self.window
        return float(self.values[min(k, self.values.shape[0] - 1)]) + self.offset_db


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the shared data folder")
    parser.add_argument("--cache", default="/tmp/streamsep-detection-cache", help="stem cache")
    parser.add_argument("--seed", type=int, default=0, help="mixture and training seed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import keras  # tools only
    from keras import layers

    data = Path(args.data)
    params, model_path = default_model_paths()
    stems = Stems(Separator(params, model_path, num_threads=2), Path(args.cache), Path(model_path))
    settings = DetectorSettings()
    rate = stems.rate
    window = round(settings.window_seconds * rate)
    x_train, y_train = dataset(signals(data, stems, "train", settings, args.seed), window, rate)
    x_val, y_val = dataset(signals(data, stems, "val", settings, args.seed + 1), window, rate)
    _LOGGER.info("patches: train %d (%.2f call), val %d", len(y_train), y_train.mean(), len(y_val))
    keras.utils.set_random_seed(args.seed)
    inputs = keras.Input((CONTEXT_FRAMES, N_MELS, 3))
    h = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    h = layers.MaxPooling2D(2)(h)
    h = layers.Conv2D(32, 3, padding="same", activation="relu")(h)
    h = layers.MaxPooling2D(2)(h)
    h = layers.Conv2D(32, 3, padding="same", activation="relu")(h)
    h = layers.Dropout(0.3)(layers.GlobalMaxPooling2D()(h))
    net = keras.Model(inputs, layers.Dense(1)(h))
    net.compile(keras.optimizers.Adam(1e-3), keras.losses.BinaryCrossentropy(from_logits=True))
    share = float(y_train.mean())
    net.fit(
        x_train, y_train, batch_size=128, epochs=EPOCHS, verbose=0,
        class_weight={0: 0.5 / (1 - share), 1: 0.5 / share},
    )  # fmt: skip
    p_val = net.predict(x_val, verbose=0)[:, 0]
    window_auc = roc_auc(p_val[y_val == 1], p_val[y_val == 0])
    _LOGGER.info("val window AUC %.3f", window_auc)

    corpus = build_corpus(data, stems, 0)  # the report's mixtures (evaluate_detection, seed 0)
    db_per_nat = 10 / math.log(10)
    log_odds: dict[str, NDArray[np.float64]] = {}
    for item in corpus.labelled + corpus.noise + corpus.mixtures:
        n = -(-item.mix.shape[0] // window)
        q = net.predict(patches(item.mix, item.orca, n, window, rate), verbose=0)[:, 0]
        log_odds[item.name] = q.astype(np.float64) * db_per_nat

    def make_term(item: Item, offset_db: float) -> Precomputed:
        return Precomputed(log_odds[item.name], item.mix.shape[0], window, offset_db)

    title = f"CNN call term (val window AUC {window_auc:.3f})"
    print(offset_table(settings, corpus, make_term, OFFSETS_DB, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
