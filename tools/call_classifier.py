"""Experiment: a call classifier as an extra term of the detector's score (not shipped).

A logistic regression over the window features of ``tools/call_features.py``, fitted on
windows of the separated stems (the bundled separating model, or ``--params/--model``):

* **positives**: windows where a ``train`` call (``calls/``, kinds ``orca-call``,
  ``orca-call-click``, ``orca-whistle``), mixed into a ``train`` noise recording at -10 .. +10
  dB, is within 20 dB of its loudest window and at least -5 dB against the noise in the band;
* **negatives**: every window of the ``train`` noise recordings, and the windows of those
  mixtures where the call is 30 dB or more below its loudest (or absent: 1 s of noise is kept
  before and after each call).

The held-out test files (``tools/dataset/splits.py``) and the labelled clips are never used.
The L2 penalty is chosen by the window ROC AUC on the same construction from the ``val``
calls and ``val`` noise recordings. The classifier file it writes (``--out``) is evaluated by
``tools/evaluate_detection.py --classifier FILE``, which adds the term
``log-odds (dB) + --call-offset-db`` to the detector's score (the minimum of its terms).

Usage::

    nice python -m tools.call_classifier --data ../shared/data --out runs/call_classifier.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.offline import Separator
from streamsep.events.detector import Detector, DetectorSettings, events_of
from streamsep.events.terms import WindowView
from streamsep.resources import default_model_paths
from tools.call_features import FEATURE_NAMES, WindowFeatures
from tools.dataset.splits import is_test
from tools.evaluate_detection import (
    Item,
    Stems,
    build_corpus,
    manifest,
    offset_table,
    prepare,
    roc_auc,
)

_LOGGER = logging.getLogger("call_classifier")

CALL_KINDS: Final = ("orca-call", "orca-call-click", "orca-whistle")
SNRS_DB: Final = (-10.0, -5.0, 0.0, 5.0, 10.0)
MIXES_PER_CALL: Final = 3
PAD_SECONDS: Final = 1.0
POSITIVE_WITHIN_DB: Final = 20.0
POSITIVE_MIN_SNR_DB: Final = -5.0
NEGATIVE_BELOW_DB: Final = 30.0
PENALTIES: Final = (0.0, 1e-3, 1e-2, 1e-1, 1.0)
OFFSETS_DB: Final = (10.0, 0.0, -10.0, -15.0, -20.0)
_DB_PER_NAT: Final = 10.0 / math.log(10.0)


@dataclass(frozen=True)
class CallClassifier:
    """Weights of a logistic regression over :data:`FEATURE_NAMES`."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    about: str = ""
    """Where the weights come from (the training command and data)."""

    def __post_init__(self) -> None:
        n = len(FEATURE_NAMES)
        for name in ("mean", "scale", "weights"):
            values = getattr(self, name)
            if len(values) != n or not all(math.isfinite(v) for v in values):
                raise ValueError(f"call classifier: {name} must be {n} finite numbers")
        if any(s <= 0 for s in self.scale):
            raise ValueError("call classifier: scale must be > 0")
        if not math.isfinite(self.bias):
            raise ValueError("call classifier: bias must be finite")

    def log_odds_db(self, features: NDArray[np.float64]) -> float:
        """Log-odds that the window holds a call, dB (0: even odds)."""
        z = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        return float(z @ np.asarray(self.weights) + self.bias) * _DB_PER_NAT

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (with the feature names, checked on load)."""
        return {
            "format": "streamsep-call-classifier/1",
            "features": list(FEATURE_NAMES),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "bias": self.bias,
            "about": self.about,
        }

    @classmethod
    def load(cls, path: Path) -> CallClassifier:
        """Read a classifier file; a clear error names the file and what is wrong."""
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"call classifier {path}: cannot read it ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("format") != "streamsep-call-classifier/1":
            raise ValueError(f"call classifier {path}: not a streamsep-call-classifier/1 file")
        if doc.get("features") != list(FEATURE_NAMES):
            raise ValueError(
                f"call classifier {path}: its features {doc.get('features')} are not this "
                f"version's {list(FEATURE_NAMES)}"
            )
        try:
            return cls(
                tuple(float(v) for v in doc["mean"]),
                tuple(float(v) for v in doc["scale"]),
                tuple(float(v) for v in doc["weights"]),
                float(doc["bias"]),
                str(doc.get("about", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"call classifier {path}: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write the JSON form."""
        path.write_text(json.dumps(self.as_dict(), indent=1) + "\n")


class FeatureTerm:
    """An extra detector term (:class:`streamsep.events.detector.ExtraTerm`) from the window
    features: the classifier's log-odds plus ``offset_db``, or +inf without a classifier;
    ``rows`` (a list when ``record``) collects every window's features. One per stream."""

    def __init__(
        self,
        classifier: CallClassifier | None = None,
        offset_db: float = 10.0,
        record: bool = False,
    ) -> None:
        self.classifier, self.offset_db = classifier, offset_db
        self.rows: list[NDArray[np.float64]] | None = [] if record else None
        self._features: WindowFeatures | None = None

    def __call__(self, view: WindowView) -> float:
        if self._features is None:
            self._features = WindowFeatures(view.freqs)
        f = self._features(view)
        if self.rows is not None:
            self.rows.append(f)
        if self.classifier is None:
            return math.inf
        return self.classifier.log_odds_db(f) + self.offset_db


@dataclass
class Windows:
    """Feature rows and labels (1 call, 0 no call) of one split."""

    x: NDArray[np.float64]
    y: NDArray[np.float64]


def window_features(
    settings: DetectorSettings, rate: int, orca: NDArray[np.float32], noise: NDArray[np.float32]
) -> NDArray[np.float64]:
    """Feature rows of every window of one separated signal, shape (n_windows, n_features)."""
    term = FeatureTerm(record=True)
    events_of(Detector(settings, rate, term), 0, orca, noise)
    assert term.rows is not None
    return np.array(term.rows).reshape(-1, len(FEATURE_NAMES))


def band_db(settings: DetectorSettings, rate: int, x: NDArray[np.float64]) -> NDArray[np.float64]:
    """In-band power of each detector window of ``x``, dBFS."""
    detector = Detector(settings, rate)
    detector.scores = []
    events_of(detector, 0, x, None)
    return np.array([s.orca_db for s in detector.scores])


@dataclass
class Signal:
    """One separated training signal and its window labels (1 call, 0 no call, -1 unused)."""

    mix: NDArray[np.float32]
    orca: NDArray[np.float32]
    noise: NDArray[np.float32]
    labels: NDArray[np.int8]


def signals(
    data: Path, stems: Stems, split: str, settings: DetectorSettings, seed: int
) -> list[Signal]:
    """One split's noise recordings, and its calls mixed into them, separated and labelled."""
    rate = stems.rate
    w = round(settings.window_seconds * rate)
    rows = [r for r in manifest(data) if r["split"] == split and not is_test(r["path"])]
    noise_rows = sorted(
        (r for r in rows if r["path"].startswith("noise/")), key=lambda r: r["path"]
    )
    call_rows = sorted(
        (r for r in rows if r["path"].startswith("calls/") and r["kind"] in CALL_KINDS),
        key=lambda r: r["path"],
    )
    noises = [prepare(data / r["path"], rate) for r in noise_rows]
    out = []
    for x in noises:
        out.append(Signal(x, *stems(x), np.zeros(-(-x.shape[0] // w), dtype=np.int8)))
    rng = np.random.default_rng(seed)
    pad = round(PAD_SECONDS * rate)
    for i, row in enumerate(call_rows):
        call = prepare(data / row["path"], rate).astype(np.float64)
        n = call.shape[0] + 2 * pad
        padded_call = np.zeros(n)
        padded_call[pad : pad + call.shape[0]] = call
        call_db = band_db(settings, rate, padded_call)
        active = call_db >= call_db.max() - POSITIVE_WITHIN_DB
        p_call = float(np.mean(10 ** (call_db[active] / 10)))
        for _ in range(MIXES_PER_CALL):
            source = noises[int(rng.integers(len(noises)))]
            looped = np.tile(source, -(-n // source.shape[0]) + 1)
            offset = int(rng.integers(looped.shape[0] - n + 1))
            segment = looped[offset : offset + n].astype(np.float64)
            snr = float(rng.choice(SNRS_DB))
            noise_db = band_db(settings, rate, segment)
            p_noise = float(np.mean(10 ** (noise_db[active] / 10)))
            gain = math.sqrt(p_call / (max(p_noise, 1e-20) * 10 ** (snr / 10)))
            summed = segment * gain + padded_call
            peak = float(np.max(np.abs(summed)))
            mix = (summed * (0.5 / peak if peak > 0.5 else 1.0)).astype(np.float32)
            local_snr = call_db - (noise_db + 20 * math.log10(gain))
            labels = np.full(call_db.shape, -1, dtype=np.int8)
            labels[call_db < call_db.max() - NEGATIVE_BELOW_DB] = 0
            labels[active & (local_snr >= POSITIVE_MIN_SNR_DB)] = 1
            out.append(Signal(mix, *stems(mix), labels))
        if (i + 1) % 10 == 0 or i + 1 == len(call_rows):
            _LOGGER.info("%s: %d/%d calls mixed", split, i + 1, len(call_rows))
    return out


def build(data: Path, stems: Stems, split: str, settings: DetectorSettings, seed: int) -> Windows:
    """Feature rows and labels of one split's windows (unused windows left out)."""
    xs, ys = [], []
    for s in signals(data, stems, split, settings, seed):
        f = window_features(settings, stems.rate, s.orca, s.noise)
        m = min(len(f), len(s.labels))
        keep = s.labels[:m] >= 0
        xs.append(f[:m][keep])
        ys.append(s.labels[:m][keep].astype(np.float64))
    return Windows(np.concatenate(xs), np.concatenate(ys))


def fit(windows: Windows, penalty: float, iterations: int = 50) -> CallClassifier:
    """Class-balanced L2 logistic regression by Newton's method on standardised features."""
    mean = windows.x.mean(axis=0)
    scale = windows.x.std(axis=0)
    scale[scale <= 1e-9] = 1.0
    z = np.hstack([(windows.x - mean) / scale, np.ones((len(windows.x), 1))])
    y = windows.y
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    weight = np.where(y > 0, 0.5 / n_pos, 0.5 / n_neg)
    beta = np.zeros(z.shape[1])
    ridge = np.full(z.shape[1], penalty)
    ridge[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -40, 40)))
        gradient = z.T @ (weight * (p - y)) + ridge * beta
        hessian = (z * (weight * p * (1 - p))[:, None]).T @ z + np.diag(ridge + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return CallClassifier(
        tuple(float(v) for v in mean),
        tuple(float(v) for v in scale),
        tuple(float(v) for v in beta[:-1]),
        float(beta[-1]),
    )


def window_auc(classifier: CallClassifier, windows: Windows) -> float:
    scores = [classifier.log_odds_db(row) for row in windows.x]
    pos = [s for s, y in zip(scores, windows.y, strict=True) if y > 0]
    neg = [s for s, y in zip(scores, windows.y, strict=True) if y == 0]
    return roc_auc(pos, neg)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the shared data folder")
    parser.add_argument("--out", help="write the classifier JSON here")
    parser.add_argument("--cache", default="/tmp/streamsep-detection-cache", help="stem cache")
    parser.add_argument("--seed", type=int, default=0, help="mixture seed (default 0)")
    parser.add_argument("--params", help="model params JSON (default: the bundled model's)")
    parser.add_argument("--model", help="model .tflite (default: the bundled float32 model)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    data = Path(args.data)
    if not (data / "manifest.csv").is_file():
        print(f"call_classifier: error: no manifest.csv in {data}", file=sys.stderr)
        return 2
    default_params, default_model = default_model_paths()
    if args.model is not None and args.params is None:
        print("call_classifier: error: --model needs --params", file=sys.stderr)
        return 2
    model = Path(args.model or default_model)
    separator = Separator(args.params or default_params, model, num_threads=2)
    stems = Stems(separator, Path(args.cache), model)
    settings = DetectorSettings()
    t0 = time.perf_counter()
    train = build(data, stems, "train", settings, args.seed)
    val = build(data, stems, "val", settings, args.seed + 1)
    _LOGGER.info(
        "windows: train %d (%d calls), val %d (%d calls); %.0f s",
        len(train.y), int(train.y.sum()), len(val.y), int(val.y.sum()),
        time.perf_counter() - t0,
    )  # fmt: skip
    best: tuple[float, float, CallClassifier] | None = None
    for penalty in PENALTIES:
        classifier = fit(train, penalty)
        auc_train, auc_val = window_auc(classifier, train), window_auc(classifier, val)
        _LOGGER.info("penalty %g: window AUC train %.3f val %.3f", penalty, auc_train, auc_val)
        if best is None or auc_val > best[0]:
            best = (auc_val, penalty, classifier)
    assert best is not None
    auc_val, penalty, classifier = best
    command = "nice python -m tools.call_classifier " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    about = (
        f"{command.strip()} on {model.name}: {len(train.y)} train windows "
        f"({int(train.y.sum())} call), L2 penalty {penalty:g} chosen on {len(val.y)} val windows "
        f"(window AUC {auc_val:.3f})"
    )
    classifier = CallClassifier(
        classifier.mean, classifier.scale, classifier.weights, classifier.bias, about
    )
    for name, w in sorted(
        zip(FEATURE_NAMES, classifier.weights, strict=True), key=lambda t: -abs(t[1])
    ):
        _LOGGER.info("  %-28s %+.3f", name, w)
    if args.out:
        classifier.save(Path(args.out))
        _LOGGER.info("wrote %s", args.out)
    corpus = build_corpus(data, stems, 0)  # the report's mixtures (evaluate_detection, seed 0)

    def make_term(item: Item, offset_db: float) -> FeatureTerm:
        return FeatureTerm(classifier, offset_db)

    title = f"Logistic call term (val window AUC {auc_val:.3f})"
    print(offset_table(settings, corpus, make_term, OFFSETS_DB, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
