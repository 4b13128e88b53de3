"""Evaluate the orca activity detector (``streamsep.events``) and write ``docs/detection.md``.

What it measures, each for the detector on the separated stems and the same detector on the
raw mix (the mix fed as the orca stem, no noise stem: the background term alone):

1. ROC AUC of the clip score (the highest window score in the clip) on the labelled clips
   (``labeled/call`` vs ``labeled/nocall``), and precision / recall at the default settings
   (a clip is positive when the detector reports at least one event in it);
2. false events per hour on every noise recording (``noise/``), looped to at least one hour;
3. recall on the ``val`` calls (``calls/``, kinds ``orca-call`` and ``orca-call-click``) mixed
   into noise recordings at -10, -5 and 0 dB (a call counts as found when an event overlaps
   it);
4. the labelled clips ranked by their clip score, with how many call clips each no-call clip
   outranks (where the AUC is lost).

All audio is made mono, DC and sub-20 Hz drift removed, and resampled to the model rate before
mixing and separating. Looping: each noise recording is separated once; the detector then runs
over each recording's separated stems repeated (as many times for each, at least an hour in
all), one detector per recording whose state carries over the loop seams exactly as in a
stream; only the model's view of the seams is not rerun, a few hundred milliseconds per seam.
Separated stems are cached in ``--cache``, one folder per model file (by its SHA-1).

Usage::

    nice python tools/evaluate_detection.py --data ../shared/data --out docs/detection.md
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import soundfile as sf
import soxr
from numpy.typing import NDArray
from scipy import signal, stats

from streamsep.engine.offline import Separator
from streamsep.events.detector import (
    Detector,
    DetectorSettings,
    Event,
    ExtraTerm,
    WindowScore,
    events_of,
)
from streamsep.resources import default_model_paths

if not __package__:  # run as `python tools/evaluate_detection.py`: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.dataset.splits import is_test  # noqa: E402

_LOGGER = logging.getLogger("evaluate_detection")

DC_CUTOFF_HZ: Final = 20.0
SNRS_DB: Final = (-10.0, -5.0, 0.0)
LOOP_SECONDS: Final = 3600.0
ACTIVE_THRESHOLD_DB: Final = 20.0
ACTIVE_FRAME_SECONDS: Final = 0.05
CALL_PAD_SECONDS: Final = 3.0
CALL_KINDS: Final = ("orca-call", "orca-call-click")
ORCASOUND_LAB: Final = "orcaal_orcasoundlab"  # the labelled clips of the Orcasound Lab
ORCACNN_NOISE: Final = "noise/orcacnn_neg"  # OrcaCNN-data negatives: knocks, tonal pulses


def prepare(path: Path, rate: int) -> NDArray[np.float32]:
    """Mono, mean removed, resampled to ``rate``, zero-phase 20 Hz high-pass (as
    ``tools/dataset.py``), shape (n_samples,)."""
    x, file_rate = sf.read(str(path), dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    x = x - x.mean()
    if file_rate != rate:
        x = np.asarray(soxr.resample(x, file_rate, rate, quality="HQ"), dtype=np.float64)
    sos = signal.butter(2, DC_CUTOFF_HZ, btype="highpass", fs=rate, output="sos")
    return np.asarray(signal.sosfiltfilt(sos, x), dtype=np.float32)


class Stems:
    """Separates mono signals once and caches the stems on disk."""

    def __init__(self, separator: Separator, cache: Path, model: Path) -> None:
        self.separator = separator
        self.rate = separator.params.sample_rate
        # One folder per model file's contents: stems of another model are never reused.
        self.cache = cache / hashlib.sha1(model.read_bytes()).hexdigest()[:16]
        self.cache.mkdir(parents=True, exist_ok=True)
        self.seconds_separated = 0.0

    def __call__(self, x: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        key = hashlib.sha1(x.tobytes()).hexdigest()[:20]
        path = self.cache / f"{key}.npz"
        if path.is_file():
            with np.load(path) as f:
                return f["orca"], f["noise"]
        t0 = time.perf_counter()
        out = self.separator.separate(x[:, None], self.rate)
        self.seconds_separated += time.perf_counter() - t0
        orca, noise = out["orca_vocals"][:, 0], out["noise"][:, 0]
        np.savez(path, orca=orca, noise=noise)
        return orca, noise


def manifest(data: Path) -> list[dict[str, str]]:
    with (data / "manifest.csv").open(newline="") as f:
        rows: dict[str, dict[str, str]] = {}
        for row in csv.DictReader(f):
            rows.setdefault(row["path"], row)
    return list(rows.values())


def active_mask(x: NDArray[np.float32], rate: int) -> NDArray[np.bool_]:
    """Samples in 50 ms frames within 20 dB of the loudest frame."""
    frame = max(1, round(ACTIVE_FRAME_SECONDS * rate))
    n_frames = -(-x.shape[0] // frame)
    padded = np.zeros(n_frames * frame)
    padded[: x.shape[0]] = x
    energy = 10 * np.log10((padded.reshape(n_frames, frame) ** 2).sum(axis=1) + 1e-30)
    frames = energy >= energy.max() - ACTIVE_THRESHOLD_DB
    return np.repeat(frames, frame)[: x.shape[0]]


@dataclass
class Item:
    """One evaluation signal: the mix and its stems at the model rate."""

    name: str
    mix: NDArray[np.float32]
    orca: NDArray[np.float32]
    noise: NDArray[np.float32]
    label: int = 0
    """Labelled clips: 1 call, 0 no call."""
    call: tuple[int, int] | None = None
    """Mixtures: the call's sample range."""
    snr_db: float | None = None


@dataclass
class Corpus:
    labelled: list[Item]
    noise: list[Item]
    mixtures: list[Item]
    rate: int


def build_corpus(data: Path, stems: Stems, seed: int) -> Corpus:
    """Prepare, mix and separate everything (separations cached)."""
    rate = stems.rate
    rows = manifest(data)
    labelled = []
    for label, folder in ((1, "call"), (0, "nocall")):
        for path in sorted((data / "labeled" / folder).glob("*.flac")):
            x = prepare(path, rate)
            labelled.append(Item(f"{folder}/{path.name}", x, *stems(x), label=label))
    noise = []
    for row in sorted(rows, key=lambda r: r["path"]):
        if row["path"].startswith("noise/"):
            x = prepare(data / row["path"], rate)
            noise.append(Item(row["path"], x, *stems(x)))
    calls = [
        r for r in rows
        if r["path"].startswith("calls/") and r["kind"] in CALL_KINDS and r["split"] == "val"
    ]  # fmt: skip
    rng = np.random.default_rng(seed)
    mixtures = []
    for row in sorted(calls, key=lambda r: r["path"]):
        call = prepare(data / row["path"], rate)
        pad = round(CALL_PAD_SECONDS * rate)
        n = call.shape[0] + 2 * pad
        source = noise[int(rng.integers(len(noise)))]
        reps = -(-n // source.mix.shape[0]) + 1
        looped = np.tile(source.mix, reps)
        offset = int(rng.integers(looped.shape[0] - n + 1))
        segment = looped[offset : offset + n].astype(np.float64)
        active = active_mask(call, rate)
        p_call = float(np.mean(call[active].astype(np.float64) ** 2))
        p_noise = float(np.mean(segment[pad : pad + call.shape[0]][active] ** 2))
        for snr in SNRS_DB:
            gain = math.sqrt(p_call / (p_noise * 10 ** (snr / 10)))
            summed = segment * gain
            summed[pad : pad + call.shape[0]] += call
            peak = float(np.max(np.abs(summed)))
            mix = (summed * (0.5 / peak if peak > 0.5 else 1.0)).astype(np.float32)
            name = f"{row['path']} in {source.name} at {snr:+.0f} dB"
            mixtures.append(
                Item(name, mix, *stems(mix), call=(pad, pad + call.shape[0]), snr_db=snr)
            )
    return Corpus(labelled, noise, mixtures, rate)


def run(
    settings: DetectorSettings,
    rate: int,
    item: Item,
    raw: bool,
    scores: bool = False,
    extra_term: ExtraTerm | None = None,
) -> tuple[list[Event], list[WindowScore]]:
    """Events (and optionally window scores) of the detector on one item's stems, or on its
    raw mix (``raw``)."""
    detector = Detector(settings, rate, extra_term)
    if scores:
        detector.scores = []
    if raw:
        events = events_of(detector, 0, item.mix, None)
    else:
        events = events_of(detector, 0, item.orca, item.noise)
    return events, detector.scores or []


def roc_auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos n_neg); ties count half)."""
    u = stats.mannwhitneyu(positive, negative, alternative="greater").statistic
    return float(u) / (len(positive) * len(negative))


def evaluate(
    settings: DetectorSettings,
    corpus: Corpus,
    raw: bool,
    terms: Callable[[Item], ExtraTerm] | None = None,
) -> dict[str, Any]:
    """Every figure of the report for one detector input (stems or raw mix); ``terms``
    (experiments) gives each item's detector an extra term of the score."""
    rate = corpus.rate

    def term(item: Item) -> ExtraTerm | None:
        return None if terms is None else terms(item)

    clip_scores, clip_events = [], []
    for item in corpus.labelled:
        events, scores = run(settings, rate, item, raw, scores=True, extra_term=term(item))
        clip_scores.append(max(s.score_db for s in scores))
        clip_events.append(len(events) > 0)
    labels = [item.label for item in corpus.labelled]
    pos = [s for s, y in zip(clip_scores, labels, strict=True) if y]
    neg = [s for s, y in zip(clip_scores, labels, strict=True) if not y]
    tp = sum(e and y for e, y in zip(clip_events, labels, strict=True))
    fp = sum(e and not y for e, y in zip(clip_events, labels, strict=True))
    fn = sum(not e and y for e, y in zip(clip_events, labels, strict=True))
    # Noise: each recording looped (the same number of times, >= 1 h in all) through its own
    # detector, whose state carries across the loop seams as in a stream.
    loop_samples = sum(item.mix.shape[0] for item in corpus.noise)
    loops = math.ceil(LOOP_SECONDS * rate / loop_samples)
    n_false, index, per_file = 0, 0, {}
    for item in corpus.noise:
        detector = Detector(settings, rate, term(item))
        orca = item.mix if raw else item.orca
        noise = None if raw else item.noise
        found = []
        for loop in range(loops):
            start = loop * orca.shape[0]
            for i in range(0, orca.shape[0], 1 << 16):
                piece = slice(i, i + (1 << 16))
                found += detector.feed(
                    start + i, orca[piece], None if noise is None else noise[piece]
                )
        found += detector.flush()
        if found:
            per_file[item.name] = len(found)
        n_false += len(found)
        index += loops * orca.shape[0]
    hours = index / rate / 3600
    recall = {}
    for snr in SNRS_DB:
        found_calls = 0
        items = [m for m in corpus.mixtures if m.snr_db == snr]
        for item in items:
            events, _ = run(settings, rate, item, raw, extra_term=term(item))
            assert item.call is not None
            a, b = item.call
            found_calls += any(e.start_index < b and e.end_index > a for e in events)
        recall[f"{snr:+.0f}"] = found_calls / len(items)
    lab_pos = [s for s, i in zip(clip_scores, corpus.labelled, strict=True) if i.label]
    lab_neg = [
        s for s, i in zip(clip_scores, corpus.labelled, strict=True)
        if not i.label and ORCASOUND_LAB in i.name
    ]  # fmt: skip
    held_out = [i for i in corpus.noise if is_test(i.name)]
    held_out_false = sum(n for name, n in per_file.items() if is_test(name))
    held_out_hours = loops * sum(i.mix.shape[0] for i in held_out) / rate / 3600
    kept_in_hours = hours - held_out_hours
    other = [i for i in corpus.noise if not i.name.startswith(ORCACNN_NOISE)]
    other_false = sum(n for name, n in per_file.items() if not name.startswith(ORCACNN_NOISE))
    other_hours = loops * sum(i.mix.shape[0] for i in other) / rate / 3600
    return {
        "false_per_hour_test": held_out_false / held_out_hours if held_out_hours else math.nan,
        "false_per_hour_not_test": (
            (n_false - held_out_false) / kept_in_hours if kept_in_hours > 0 else math.nan
        ),
        "auc_orcasound_lab": roc_auc(lab_pos, lab_neg),
        "false_per_hour_other": other_false / other_hours,
        "n_other": len(other),
        "auc": roc_auc(pos, neg),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "clips_flagged": f"{tp}/{len(pos)} call, {fp}/{len(neg)} no-call",
        "false_per_hour": n_false / hours,
        "false_events": n_false,
        "noise_hours": hours,
        "noise_loops": loops,
        "per_file": {k: v for k, v in per_file.items() if v},
        "recall_mixed": recall,
        "n_mixtures": len([m for m in corpus.mixtures if m.snr_db == SNRS_DB[0]]),
        "clip_scores": dict(zip([i.name for i in corpus.labelled], clip_scores, strict=True)),
    }


def acceptance(sep: dict[str, Any], raw: dict[str, Any]) -> list[tuple[str, bool]]:
    """The acceptance checks of issue 21, each with its verdict."""
    return [
        (f"AUC {sep['auc']:.3f} >= 0.90", sep["auc"] >= 0.90),
        (f"AUC {sep['auc']:.3f} > raw mix {raw['auc']:.3f}", sep["auc"] > raw["auc"]),
        (f"{sep['false_per_hour']:.2f} false events/h <= 2", sep["false_per_hour"] <= 2),
        (
            f"recall at 0 dB {sep['recall_mixed']['+0']:.2f} >= 0.8",
            sep["recall_mixed"]["+0"] >= 0.8,
        ),
    ]


def report(
    settings: DetectorSettings,
    sep: dict[str, Any],
    raw: dict[str, Any],
    corpus: Corpus,
    command: str,
    model: Path,
) -> str:
    """The Markdown report on ``model`` (the separating model file)."""
    rows = [
        ("ROC AUC, labelled clips (clip score = highest window score)", "auc", "{:.3f}"),
        ("precision at the defaults, labelled clips", "precision", "{:.2f}"),
        ("recall at the defaults, labelled clips", "recall", "{:.2f}"),
        ("clips with an event", "clips_flagged", "{}"),
        (
            "ROC AUC, only the Orcasound Lab clips (10 call, 10 no-call)",
            "auc_orcasound_lab",
            "{:.3f}",
        ),
        ("false events per hour, noise recordings looped", "false_per_hour", "{:.2f}"),
        (
            "false events per hour, the noise recordings other than the OrcaCNN negatives",
            "false_per_hour_other",
            "{:.2f}",
        ),
        (
            "false events per hour, the five test-split noise recordings",
            "false_per_hour_test",
            "{:.2f}",
        ),
        (
            "false events per hour, the noise recordings outside the test split",
            "false_per_hour_not_test",
            "{:.2f}",
        ),
        ("false events (count)", "false_events", "{}"),
    ]
    lines = [
        "| measure | separated stems | raw mix |",
        "| --- | ---: | ---: |",
    ]
    for text, key, fmt in rows:
        lines.append(f"| {text} | {fmt.format(sep[key])} | {fmt.format(raw[key])} |")
    for snr in sep["recall_mixed"]:
        lines.append(
            f"| recall, calls mixed into noise at {snr} dB | {sep['recall_mixed'][snr]:.2f} | "
            f"{raw['recall_mixed'][snr]:.2f} |"
        )
    verdicts = "\n".join(
        f"- {'PASS' if ok else 'FAIL'}: {text}" for text, ok in acceptance(sep, raw)
    )
    n_call = sum(i.label for i in corpus.labelled)
    bundled = model.resolve() == Path(default_model_paths()[1]).resolve()
    which = "bundled model" if bundled else "model"
    return f"""# Orca activity detection: evaluation

Measured with

    {command}

on the {which} `{model.name}` at {corpus.rate} Hz: {n_call} `labeled/call`
and {len(corpus.labelled) - n_call} `labeled/nocall` clips; {len(corpus.noise)} noise
recordings ({sum(i.mix.shape[0] for i in corpus.noise) / corpus.rate / 60:.1f} min), each
looped {sep["noise_loops"]} times ({sep["noise_hours"]:.2f} h in all); {sep["n_mixtures"]}
`val` calls mixed into noise recordings at each SNR, {CALL_PAD_SECONDS:g} s of noise before and
after each call.
"Raw mix" is the same detector fed the unseparated mix as its orca signal, with no noise stem
(so its score is the background term alone).

{chr(10).join(lines)}

Acceptance (issue 21):

{verdicts}

Default settings (`streamsep/events/detector.py`, `[events]` in the daemon config):

```json
{json.dumps(settings.as_dict(), indent=1)}
```

Method: every file is made mono, its mean and sub-20 Hz drift removed (2nd-order Butterworth
high-pass, zero phase) and resampled to the model rate before mixing and separating. Mixtures
set the noise gain so that the call's power over its active 50 ms frames (within 20 dB of its
loudest) is the given SNR above the noise's power over the same samples. Each noise recording
is separated once; the detector runs over its stems
recording repeated {sep["noise_loops"]} times (so that all of them make at least an hour),
each through its own detector whose state carries across the loop seams as in a stream (the
model's view of a seam is not rerun: about 0.5 s around each seam).
Noise recordings with false events: {json.dumps(sep["per_file"])} (stems);
{json.dumps(raw["per_file"])} (raw mix).

{clip_ranking(corpus, sep, raw)}"""


def clip_ranking(corpus: Corpus, sep: dict[str, Any], raw: dict[str, Any]) -> str:
    """The labelled clips ranked by their clip score on the stems, highest first, as a Markdown
    section: which no-call clips outrank which calls, i.e. where the AUC is lost."""
    order = sorted(corpus.labelled, key=lambda i: -sep["clip_scores"][i.name])
    calls = [sep["clip_scores"][i.name] for i in corpus.labelled if i.label]
    lines = [
        'Clip scores (dB; highest window score), ranked on the stems; "calls below" is how',
        "many call clips a no-call clip outranks (each such pair costs the AUC 1/(calls x",
        "no-calls; a tie counts in the AUC as half a pair and is not counted here)):",
        "",
        "| rank | clip | label | stems | raw mix | calls below |",
        "| ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for rank, item in enumerate(order, 1):
        score = sep["clip_scores"][item.name]
        below = "" if item.label else str(sum(c < score for c in calls))
        lines.append(
            f"| {rank} | {item.name} | {'call' if item.label else 'no call'} | {score:.1f} | "
            f"{raw['clip_scores'][item.name]:.1f} | {below} |"
        )
    return "\n".join(lines) + "\n"


def offset_table(
    settings: DetectorSettings,
    corpus: Corpus,
    make_term: Callable[[Item, float], ExtraTerm],
    offsets: Sequence[float],
    title: str,
) -> str:
    """Experiments: the detector with an extra call term (``make_term(item, offset_db)``) at
    several offsets, as a Markdown table (separated stems) under ``title``."""
    lines = [
        f"{title}; separated stems, the other settings the defaults:",
        "",
        "| call offset dB | AUC | AUC, Orcasound Lab | false/h | false/h, test-split noise | "
        "false events by recording | recall -10 / -5 / 0 dB |",
        "| ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for offset in offsets:

        def terms(item: Item, offset: float = offset) -> ExtraTerm:
            return make_term(item, offset)

        r = evaluate(settings, corpus, raw=False, terms=terms)
        recall = " / ".join(f"{v:.2f}" for v in r["recall_mixed"].values())
        per_file = ", ".join(f"{k.split('/')[-1]}: {v}" for k, v in r["per_file"].items())
        lines.append(
            f"| {offset:g} | {r['auc']:.3f} | {r['auc_orcasound_lab']:.3f} | "
            f"{r['false_per_hour']:.2f} | {r['false_per_hour_test']:.2f} | "
            f"{per_file or 'none'} | {recall} |"
        )
    return "\n".join(lines) + "\n"


GRID: Final = (  # (start_threshold_db, min_duration_seconds, noise_offset_db); end = start - 4
    (8.0, 0.3, 6.0),
    (10.0, 0.3, 10.0),  # the defaults
    (10.0, 0.3, 6.0),
    (12.0, 0.5, 3.0),
    (15.0, 0.5, 0.0),
)


TONE_GRID: Final = (  # (tone_flatness_db, background_start_db); -300: no tonality term
    (-300.0, 0.0),
    (-75.0, 0.0),
    (-70.0, 0.0),
    (-65.0, 0.0),
    (-60.0, 0.0),
    (-300.0, 20.0),
    (-65.0, 20.0),
)


def grid(settings: DetectorSettings, corpus: Corpus) -> str:
    """The trade-off behind the defaults: a few settings on the stems, as a Markdown table."""
    lines = [
        "",
        "Trade-off (separated stems; `--grid`; the end threshold is 4 dB under the start):",
        "",
        "| start dB | min duration s | noise offset dB | AUC | P | R | false/h | "
        "recall -10 / -5 / 0 dB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for start, min_duration, offset in GRID:
        s = replace(
            settings, start_threshold_db=start, end_threshold_db=start - 4,
            min_duration_seconds=min_duration, noise_offset_db=offset,
        )  # fmt: skip
        r = evaluate(s, corpus, raw=False)
        recall = " / ".join(f"{v:.2f}" for v in r["recall_mixed"].values())
        lines.append(
            f"| {start:g} | {min_duration:g} | {offset:g} | {r['auc']:.3f} | "
            f"{r['precision']:.2f} | {r['recall']:.2f} | {r['false_per_hour']:.2f} | {recall} |"
        )
    lines += [
        "",
        "The tonality term and the background's start (separated stems, the other settings as"
        " above):",
        "",
        "| tone flatness dB | background start dB | AUC | AUC, Orcasound Lab clips | P | R | "
        "false/h | recall -10 / -5 / 0 dB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for tone, start_db in TONE_GRID:
        s = replace(settings, tone_flatness_db=tone, background_start_db=start_db)
        r = evaluate(s, corpus, raw=False)
        recall = " / ".join(f"{v:.2f}" for v in r["recall_mixed"].values())
        lines.append(
            f"| {'off' if tone <= -300 else f'{tone:g}'} | {start_db:g} | {r['auc']:.3f} | "
            f"{r['auc_orcasound_lab']:.3f} | {r['precision']:.2f} | {r['recall']:.2f} | "
            f"{r['false_per_hour']:.2f} | {recall} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the shared data folder")
    parser.add_argument("--out", help="write the Markdown report here (e.g. docs/detection.md)")
    parser.add_argument("--cache", default="/tmp/streamsep-detection-cache", help="stem cache")
    parser.add_argument("--seed", type=int, default=0, help="mixture seed (default 0)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a detector setting (exploration; the report uses the defaults unless set)",
    )  # fmt: skip
    parser.add_argument("--grid", action="store_true", help="also print a threshold grid")
    parser.add_argument("--params", help="model params JSON (default: the bundled model's)")
    parser.add_argument("--model", help="model .tflite (default: the bundled float32 model)")
    parser.add_argument(
        "--classifier",
        help="experiment: add a call classifier's term (tools/call_classifier.py) to the score",
    )
    parser.add_argument(
        "--call-offset-db", type=float, default=10.0,
        help="with --classifier: its term is the log-odds (dB) plus this (default 10)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    data = Path(args.data)
    terms = None
    if args.classifier:
        from tools.call_classifier import CallClassifier, FeatureTerm  # it imports this module

        classifier = CallClassifier.load(Path(args.classifier))

        def terms(item: Item) -> ExtraTerm:
            return FeatureTerm(classifier, args.call_offset_db)

    if not (data / "manifest.csv").is_file():
        print(f"evaluate_detection: error: no manifest.csv in {data}", file=sys.stderr)
        return 2
    settings = DetectorSettings()
    for item in args.set:
        key, _, value = item.partition("=")
        settings = replace(settings, **{key: float(value)})
    default_params, default_model = default_model_paths()
    params_path = args.params or (default_params if args.model is None else None)
    if params_path is None:
        print("evaluate_detection: error: --model needs --params", file=sys.stderr)
        return 2
    model = Path(args.model or default_model)
    separator = Separator(params_path, model, num_threads=2)
    stems = Stems(separator, Path(args.cache), model)
    t0 = time.perf_counter()
    corpus = build_corpus(data, stems, args.seed)
    _LOGGER.info(
        "corpus ready in %.0f s (%.0f s separating)",
        time.perf_counter() - t0,
        stems.seconds_separated,
    )
    sep = evaluate(settings, corpus, raw=False, terms=terms)
    raw = evaluate(settings, corpus, raw=True, terms=terms)
    command = "nice python tools/evaluate_detection.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    text = report(settings, sep, raw, corpus, command.strip(), model)
    if args.grid:
        text += grid(settings, corpus)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if all(ok for _, ok in acceptance(sep, raw)) else 1


if __name__ == "__main__":
    sys.exit(main())
