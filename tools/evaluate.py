"""Evaluate separation models and baselines on seeded validation mixtures and labelled clips.

Usage::

    python -m tools.evaluate --params P.json --model M.tflite [M2.tflite ...] \\
        --data /work/shared/data --split val --snrs -5 0 5 --n-per-snr 8 --seed 0 \\
        --out runs/eval/NAME [--seconds 8] [--level-db -30] [--chunk 1024] [--no-labeled]

Mixtures: for SNR bucket ``j`` and example ``k``, :func:`tools.dataset.make_mixture` with
``numpy.random.default_rng([seed, j, k])``: ``--seconds`` of one val noise file (rotating), 1-3
val call crops of 1-4 s, no augmentation, mix RMS ``--level-db`` dBFS. Every method is scored
against the references through the model's DC-blocking high-pass (``highpass_hz``), the input
the engine itself separates.

Methods: ``mix`` (the mix as estimate of both stems: the SI-SDRi reference), ``passthrough``
(orca = mix, noise = silence), ``irm-F`` and ``irm-full`` (ideal ratio masks
``|S_i|^p / sum_j |S_j|^p`` from the true references with the model's STFT, ``p =
separation_exponent``; ``irm-F`` keeps only the model's ``F`` bins and its ``mask_extension``:
the ceiling of any model with these params), ``noisereduce-stationary`` and
``noisereduce-nonstationary`` (spectral gating, default settings; noise = mix - output), and per
model ``<name> offline`` (``Separator.separate``, default ``StreamSettings``), ``<name>
offline spleeter-segments`` (``StreamSettings.spleeter()``: Spleeter's whole, non-overlapping
blocks) and ``<name> streaming`` (``BlockSeparator`` fed ``--chunk``-sample chunks, cropped by
``latency_samples``).

Metrics per stem (:mod:`tools.metrics`): SI-SDR, SI-SDRi (over the mix), SDR, MAD (Spleeter's
absolute difference on ``F``-bin magnitude spectrograms), and ``% IRM``: the method's mean
SI-SDRi as a percentage of ``irm-F``'s. Labelled clips: ROC AUC of the 0.5-15 kHz band energy of
the mix, of each method's orca stem, and of the orca/mix energy ratio, calls vs no-calls.
Writes ``report.md`` (also printed) and ``results.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.audio import read_audio
from streamsep.engine.highpass import HighPass
from streamsep.engine.model import load_model
from streamsep.engine.offline import Separator
from streamsep.engine.params import ModelParams, load_params
from streamsep.engine.settings import StreamSettings
from streamsep.engine.spectral import apply_masks, istft, ratio_masks, stft
from streamsep.engine.streamer import BlockSeparator

from .dataset import (
    NOISE_STEM,
    ORCA_STEM,
    Mixture,
    load_pool,
    make_mixture,
    prepare_audio,
    probability,
)
from .machine import describe_machine
from .metrics import band_energy_db, roc_auc, sdr, si_sdr, spectrogram_mad

__all__ = ["evaluate", "ideal_ratio_mask", "labeled_auc", "main"]

_LOGGER = logging.getLogger(__name__)

STEMS: Final = (ORCA_STEM, NOISE_STEM)
BAND_HZ: Final = (500.0, 15000.0)
"""Band of the orca-energy detection score."""
METRICS: Final = ("si_sdr", "si_sdri", "sdr", "mad")

Estimates = dict[str, NDArray[np.float32]]
Method = Callable[[NDArray[np.float32]], Estimates]


def _highpass(x: NDArray[np.floating], params: ModelParams) -> NDArray[np.float32]:
    """``x`` (n,) through the engine's DC-blocking high-pass (identity without one)."""
    if not params.highpass_hz:
        return np.asarray(x, np.float32)
    return HighPass(params.highpass_hz, params.sample_rate, 1).process(x[:, None])[:, 0]


def ideal_ratio_mask(
    mix: NDArray[np.floating],
    references: dict[str, NDArray[np.floating]],
    params: ModelParams,
    *,
    band_limited: bool = True,
) -> Estimates:
    """Oracle separation: Spleeter ratio masks of the true references applied to the mix.

    Parameters
    ----------
    mix : ndarray, shape (n_samples,), float
    references : dict of ndarray, shape (n_samples,)
        True sources, in ``params.instrument_list`` order.
    params : ModelParams
        STFT, ``separation_exponent``; with ``band_limited`` also ``F`` and ``mask_extension``.

    Returns
    -------
    dict
        ``{stem: ndarray (n_samples,) float32}``.
    """
    fl, fs = params.frame_length, params.frame_step
    spectra = stft(np.asarray(mix, np.float32)[:, None], fl, fs)
    n_bins = params.F if band_limited else params.n_bins
    mags = np.stack(
        [
            np.abs(stft(np.asarray(r, np.float32)[:, None], fl, fs))[:, :n_bins]
            for r in references.values()
        ]
    )
    masks = ratio_masks(mags, params.separation_exponent)
    masked = apply_masks(masks, spectra, params.mask_extension)
    n = mix.shape[0]
    return {stem: istft(masked[i], fl, fs, n)[:, 0] for i, stem in enumerate(references)}


def _noisereduce(stationary: bool, sample_rate: int) -> Method:
    try:
        import noisereduce
    except ImportError as e:
        raise ImportError("noisereduce must be installed for the noisereduce baseline") from e

    def run(mix: NDArray[np.float32]) -> Estimates:
        orca = noisereduce.reduce_noise(y=mix, sr=sample_rate, stationary=stationary, n_jobs=1)
        orca = np.asarray(orca, np.float32)[: mix.shape[0]]
        return {ORCA_STEM: orca, NOISE_STEM: mix - orca}

    return run


class _ModelRunner:
    """Offline and streaming runs of one ``.tflite`` model, with timing and agreement."""

    def __init__(
        self, path: Path, params: ModelParams, chunk: int, lookaheads: Sequence[int] = ()
    ) -> None:
        self.name = path.stem
        self.params = params
        self.chunk = chunk
        self.separator = Separator(params, path, num_threads=2)
        model = load_model(path, params, 2)
        self.segments = Separator(params, model, stream=StreamSettings.spleeter())
        """Spleeter's own segmentation (whole ``T``-frame blocks, no overlap): offline only."""
        self.engine = BlockSeparator(model, StreamSettings())
        self.sweep = {
            lookahead: BlockSeparator(model, StreamSettings(lookahead_frames=lookahead))
            for lookahead in lookaheads
        }
        """Extra streaming engines by ``lookahead_frames`` (hop derived), for the latency curve."""
        self.stream_seconds = 0.0
        self.audio_seconds = 0.0
        self.max_difference = 0.0
        self._offline: Estimates = {}

    def method_name(self, lookahead: int) -> str:
        """Row name of the sweep engine with ``lookahead`` frames."""
        return f"{self.name} streaming L={lookahead}"

    def swept(self, lookahead: int) -> Method:
        """The sweep engine of ``lookahead`` as a method (no timing, no agreement check)."""

        def run(mix: NDArray[np.float32]) -> Estimates:
            return _stream(self.sweep[lookahead], mix, self.chunk, self.params)

        return run

    def spleeter_segments(self, mix: NDArray[np.float32]) -> Estimates:
        stems = self.segments.separate(mix[:, None], self.params.sample_rate)
        return {k: v[:, 0] for k, v in stems.items()}

    def offline(self, mix: NDArray[np.float32]) -> Estimates:
        stems = self.separator.separate(mix[:, None], self.params.sample_rate)
        self._offline = {k: v[:, 0] for k, v in stems.items()}
        return self._offline

    def streaming(self, mix: NDArray[np.float32]) -> Estimates:
        started = time.perf_counter()
        stems = _stream(self.engine, mix, self.chunk, self.params)
        self.stream_seconds += time.perf_counter() - started
        self.audio_seconds += mix.shape[0] / self.params.sample_rate
        if self._offline:
            diff = max(float(np.max(np.abs(stems[s] - self._offline[s]))) for s in stems)
            self.max_difference = max(self.max_difference, diff)
        return stems

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / max(self.stream_seconds, 1e-9)


def _stream(
    engine: BlockSeparator, mix: NDArray[np.float32], chunk: int, params: ModelParams
) -> Estimates:
    """``mix`` (n,) through ``engine`` in ``chunk``-sample pieces, cropped by its latency."""
    n = mix.shape[0]
    engine.reset()
    pieces = [engine.feed(mix[i : i + chunk, None]) for i in range(0, n, chunk)]
    pieces.append(engine.flush())
    out = np.concatenate(pieces, axis=1)[:, engine.latency_samples : engine.latency_samples + n]
    return {stem: out[i, :, 0] for i, stem in enumerate(params.instrument_list)}


def _score(
    estimates: Estimates, refs: Estimates, mix: NDArray[np.float32], params: ModelParams
) -> dict[str, dict[str, float]]:
    out = {}
    for stem in STEMS:
        ref, est = refs[stem], estimates[stem]
        value = si_sdr(ref, est)
        out[stem] = {
            "si_sdr": value,
            "si_sdri": value - si_sdr(ref, mix),
            "sdr": sdr(ref, est),
            "mad": spectrogram_mad(ref, est, params),
        }
    return out


def _mixtures(
    data_dir: Path,
    split: str,
    params: ModelParams,
    snrs: Sequence[float],
    n_per_snr: int,
    seed: int,
    seconds: float,
    level_db: float,
    p_synthetic: float = 0.0,
) -> list[tuple[float, Mixture]]:
    pool = load_pool(data_dir, split, params.sample_rate, params.frame_length)
    n_samples = int(round(seconds * params.sample_rate))
    out = []
    for j, snr in enumerate(snrs):
        for k in range(n_per_snr):
            rng = np.random.default_rng([seed, j, k])
            mixture = make_mixture(
                pool,
                rng,
                n_samples,
                float(snr),
                n_calls=int(rng.integers(1, 4)),
                level_db=level_db,
                noise_index=(j + k) % len(pool.noises),
                p_synthetic=p_synthetic,
            )
            out.append((float(snr), mixture))
    return out


def labeled_auc(
    data_dir: Path, params: ModelParams, methods: dict[str, Method]
) -> dict[str, dict[str, float]]:
    """ROC AUC of band-energy scores on ``labeled/{call,nocall}`` (calls are positives).

    Scores: ``mix`` (band energy of the clip), ``<method> orca`` (of the method's orca stem)
    and ``<method> orca/mix`` (their difference in dB: level-free). Clips are prepared like
    the mixtures (mono, DC removed, model rate).
    """
    scores: dict[str, dict[str, list[float]]] = {}
    counts = {}
    for label in ("call", "nocall"):
        paths = sorted((data_dir / "labeled" / label).glob("*.flac"))
        counts[label] = len(paths)
        for path in paths:
            audio, rate = read_audio(path)
            x = prepare_audio(audio, rate, params.sample_rate)
            mix_db = band_energy_db(x, params.sample_rate, *BAND_HZ)
            scores.setdefault("mix", {}).setdefault(label, []).append(mix_db)
            for name, method in methods.items():
                orca_db = band_energy_db(method(x)[ORCA_STEM], params.sample_rate, *BAND_HZ)
                scores.setdefault(f"{name} orca", {}).setdefault(label, []).append(orca_db)
                ratio = scores.setdefault(f"{name} orca/mix", {})
                ratio.setdefault(label, []).append(orca_db - mix_db)
    result = {
        name: {"auc": roc_auc(np.array(s["call"]), np.array(s["nocall"]))}
        for name, s in scores.items()
    }
    for name in result:
        result[name].update(n_call=counts["call"], n_nocall=counts["nocall"])
    return result


def evaluate(
    params: ModelParams,
    models: Sequence[Path],
    data_dir: Path,
    *,
    split: str = "val",
    snrs: Sequence[float] = (-5.0, 0.0, 5.0),
    n_per_snr: int = 8,
    seed: int = 0,
    seconds: float = 8.0,
    level_db: float = -30.0,
    chunk: int = 1024,
    labeled: bool = True,
    lookaheads: Sequence[int] = (),
    trim_seconds: float = 0.0,
    p_synthetic: float = 0.0,
) -> dict[str, Any]:
    """Run every method on the mixtures (and labelled clips); return the results dict.

    ``p_synthetic`` > 0 adds to each mixture's noise, with that probability, a synthetic noise
    (:mod:`tools.synthnoise`: rain, shrimp, hum or flow) the validation recordings lack.

    ``trim_seconds`` > 0 scores only ``[trim, n - trim]`` of every mixture (every method is still
    run on the whole mixture): the middle of a stream, away from its start and end.
    ``lookaheads`` adds, per model, streaming rows ``<name> streaming L=<lookahead_frames>``
    (hop derived from the lookahead) and a ``latency_curve`` of mean SI-SDRi against latency.
    """
    started = time.perf_counter()
    mixtures = _mixtures(
        data_dir, split, params, snrs, n_per_snr, seed, seconds, level_db, p_synthetic
    )
    rate = params.sample_rate
    runners = [_ModelRunner(Path(m), params, chunk, lookaheads) for m in models]
    methods: dict[str, Method] = {
        "mix": lambda x: {ORCA_STEM: x, NOISE_STEM: x},
        "passthrough": lambda x: {ORCA_STEM: x, NOISE_STEM: np.zeros_like(x)},
        "noisereduce-stationary": _noisereduce(True, rate),
        "noisereduce-nonstationary": _noisereduce(False, rate),
    }
    for runner in runners:
        methods[f"{runner.name} offline"] = runner.offline
        methods[f"{runner.name} offline spleeter-segments"] = runner.spleeter_segments
        methods[f"{runner.name} streaming"] = runner.streaming
        for lookahead in lookaheads:
            methods[runner.method_name(lookahead)] = runner.swept(lookahead)
    rows: list[dict[str, Any]] = []
    seconds_per_method = dict.fromkeys(["irm-F", "irm-full", *methods], 0.0)
    trim = int(round(trim_seconds * rate))
    for index, (snr, mixture) in enumerate(mixtures):
        keep = slice(trim, mixture.mix.shape[0] - trim)
        refs = {stem: _highpass(mixture.sources[stem], params) for stem in STEMS}
        scored_mix = _highpass(mixture.mix, params)
        outputs: dict[str, Estimates] = {}
        for name in seconds_per_method:
            t0 = time.perf_counter()
            if name.startswith("irm-"):
                outputs[name] = ideal_ratio_mask(
                    scored_mix, refs, params, band_limited=name == "irm-F"
                )
            elif any(f" {kind}" in name for kind in ("offline", "streaming")):
                outputs[name] = methods[name](mixture.mix)  # the engine high-passes itself
            else:
                outputs[name] = methods[name](scored_mix)
            seconds_per_method[name] += time.perf_counter() - t0
            rows.append(
                {
                    "index": index,
                    "snr_db": snr,
                    "method": name,
                    "metrics": _score(
                        {k: v[keep] for k, v in outputs[name].items()},
                        {k: v[keep] for k, v in refs.items()},
                        scored_mix[keep],
                        params,
                    ),
                }
            )
        _LOGGER.info("mixture %d/%d done", index + 1, len(mixtures))
    result: dict[str, Any] = {
        "config": {
            "params": params.to_dict(),
            "models": [str(m) for m in models],
            "data": str(data_dir),
            "split": split,
            "snrs": list(snrs),
            "n_per_snr": n_per_snr,
            "seed": seed,
            "seconds": seconds,
            "level_db": level_db,
            "p_synthetic": p_synthetic,
            "chunk": chunk,
            "lookaheads": list(lookaheads),
            "trim_seconds": trim_seconds,
            "machine": describe_machine(),
        },
        "mixtures": [{"index": i, "snr_db": s, **m.meta} for i, (s, m) in enumerate(mixtures)],
        "rows": rows,
        "summary": _summarize(rows, snrs),
        "paired": paired_comparison(rows),
        "models": {
            r.name: {
                "realtime_factor": r.realtime_factor,
                "max_abs_offline_vs_streaming": r.max_difference,
                "latency_samples": r.engine.latency_samples,
            }
            for r in runners
        },
        "method_seconds": seconds_per_method,
    }
    result["latency_curve"] = latency_curve(result, runners)
    if labeled and (data_dir / "labeled").is_dir():
        label_methods = {
            k: v
            for k, v in methods.items()
            if k not in ("mix", "passthrough")
            and " streaming" not in k
            and not k.endswith("spleeter-segments")
        }
        result["labeled"] = labeled_auc(data_dir, params, label_methods)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def latency_curve(result: dict[str, Any], runners: Sequence[_ModelRunner]) -> list[dict[str, Any]]:
    """Per model and lookahead: algorithmic latency (s) and mean orca/noise SI-SDRi (dB)."""
    summary = result["summary"]
    points = []
    for runner in runners:
        engines = [(runner.engine, f"{runner.name} streaming")]
        engines += [(e, runner.method_name(la)) for la, e in runner.sweep.items()]
        for engine, method in engines:
            points.append(
                {
                    "model": runner.name,
                    "method": method,
                    "lookahead_frames": engine.lookahead_frames,
                    "hop_frames": engine.hop_frames,
                    "latency_s": engine.latency_samples / runner.params.sample_rate,
                    **{
                        f"si_sdri_{stem}": summary[method][stem]["all"]["si_sdri"] for stem in STEMS
                    },
                }
            )
    return sorted(points, key=lambda p: (p["model"], p["latency_s"]))


def _summarize(rows: list[dict[str, Any]], snrs: Sequence[float]) -> dict[str, Any]:
    """Mean of every metric per method, stem and SNR bucket (``all`` too), and % of irm-F."""
    summary: dict[str, Any] = {}
    buckets: list[tuple[str, float | None]] = [("all", None), *((f"{s:g}", s) for s in snrs)]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for method in methods:
        summary[method] = {}
        for stem in STEMS:
            summary[method][stem] = {}
            for key, snr in buckets:
                chosen = [
                    r["metrics"][stem]
                    for r in rows
                    if r["method"] == method and (snr is None or r["snr_db"] == snr)
                ]
                summary[method][stem][key] = {
                    m: float(np.nanmean([c[m] for c in chosen]))
                    if any(np.isfinite(c[m]) for c in chosen)
                    else float("nan")
                    for m in METRICS
                }
    for method in methods:
        for stem in STEMS:
            values = np.array(
                [r["metrics"][stem]["si_sdri"] for r in rows if r["method"] == method]
            )
            values = values[np.isfinite(values)]
            sem = values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else float("nan")
            summary[method][stem]["all"]["si_sdri_sem"] = float(sem)
            for key, _ in buckets:
                ceiling = summary["irm-F"][stem][key]["si_sdri"]
                value = summary[method][stem][key]["si_sdri"]
                summary[method][stem][key]["pct_irm"] = (
                    100 * value / ceiling if ceiling else float("nan")
                )
    return summary


def _fmt_sem(value: float, sem: float) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if sem is None or not np.isfinite(sem) else f"{value:.2f} ± {sem:.2f}"


def paired_comparison(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each model method minus the best noisereduce method, per mixture and stem.

    The baseline is the noisereduce variant with the higher mean orca SI-SDRi. Returns one
    entry per (model method, stem): mean paired SI-SDRi difference, its standard error, and
    on how many mixtures the model is better.
    """

    def per_mixture(method: str, stem: str) -> NDArray[np.float64]:
        return np.array([r["metrics"][stem]["si_sdri"] for r in rows if r["method"] == method])

    methods = list(dict.fromkeys(r["method"] for r in rows))
    baselines = [m for m in methods if m.startswith("noisereduce")]
    if not baselines:
        return []
    baseline = max(baselines, key=lambda m: float(np.mean(per_mixture(m, ORCA_STEM))))
    out = []
    for method in methods:
        if not method.endswith(" offline"):
            continue
        for stem in STEMS:
            diff = per_mixture(method, stem) - per_mixture(baseline, stem)
            out.append(
                {
                    "method": method,
                    "baseline": baseline,
                    "stem": stem,
                    "mean_db": float(diff.mean()),
                    "sem_db": float(diff.std(ddof=1) / np.sqrt(diff.size)),
                    "wins": int((diff > 0).sum()),
                    "n": int(diff.size),
                }
            )
    return out


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def report(result: dict[str, Any]) -> str:
    """The Markdown report of :func:`evaluate`'s result."""
    cfg, summary = result["config"], result["summary"]
    snrs = [f"{s:g}" for s in cfg["snrs"]]
    n = len(result["mixtures"])
    lines = [
        f"# Evaluation: {', '.join(Path(m).name for m in cfg['models'])}",
        "",
        f"{n} mixtures ({cfg['n_per_snr']} per input SNR {', '.join(snrs)} dB) of "
        f"{cfg['seconds']:g} s "
        f"from the `{cfg['split']}` split, seed {cfg['seed']}, mix RMS {cfg['level_db']:g} dBFS, "
        f"{cfg['params']['sample_rate']} Hz"
        + (
            f", scored without the first and last {cfg['trim_seconds']:g} s"
            if cfg.get("trim_seconds")
            else ""
        )
        + (
            f", synthetic noise added with probability {cfg['p_synthetic']:g}"
            if cfg.get("p_synthetic")
            else ""
        )
        + ". Means over mixtures; SI-SDRi is over the mix; "
        "`% IRM` is the mean SI-SDRi as a percentage of the band-limited ideal ratio mask's; "
        "± is the standard error of the mean over mixtures.",
        "",
    ]
    for stem in STEMS:
        lines += [
            f"## `{stem}` (all SNRs)",
            "",
            *_table_header(
                ["method", "SI-SDR dB", "SI-SDRi dB", "SDR dB", "MAD", "% IRM"]
                + [f"SI-SDRi @{s} dB" for s in snrs]
            ),
        ]
        for method, stems in summary.items():
            a = stems[stem]["all"]
            per_snr = " | ".join(_fmt(stems[stem][s]["si_sdri"]) for s in snrs)
            lines.append(
                f"| {method} | {_fmt(a['si_sdr'])} | {_fmt_sem(a['si_sdri'], a['si_sdri_sem'])} | "
                f"{_fmt(a['sdr'])} | "
                f"{_fmt(a['mad'], 4)} | {_fmt(a['pct_irm'], 0)} | {per_snr} |"
            )
        lines.append("")
    if result.get("paired"):
        lines += [
            "## Paired SI-SDRi difference to the best noisereduce variant (per mixture)",
            "",
            "| method | baseline | stem | mean dB ± s.e. | better on |",
            "| --- | --- | --- | --- | --- |",
        ]
        for p in result["paired"]:
            lines.append(
                f"| {p['method']} | {p['baseline']} | {p['stem']} | {p['mean_db']:+.2f} ± "
                f"{p['sem_db']:.2f} | {p['wins']}/{p['n']} |"
            )
        lines.append("")
    lines += [
        "## Spleeter-style absolute difference (MAD of magnitude spectrograms, F bins)",
        "",
        "| method | orca_vocals | noise | total |",
        "| --- | --- | --- | --- |",
    ]
    for method, stems in summary.items():
        o, z = stems[ORCA_STEM]["all"]["mad"], stems[NOISE_STEM]["all"]["mad"]
        lines.append(f"| {method} | {o:.4f} | {z:.4f} | {o + z:.4f} |")
    lines += [
        "",
        "## Models",
        "",
        "| model | streaming x real time | max abs offline - streaming | latency samples |",
        "| --- | --- | --- | --- |",
    ]
    for name, info in result["models"].items():
        lines.append(
            f"| {name} | {info['realtime_factor']:.1f} | "
            f"{info['max_abs_offline_vs_streaming']:.2e} | {info['latency_samples']} |"
        )
    lines += _headline(result)
    if result.get("latency_curve"):
        lines += [
            "",
            "## Latency curve (streaming, orca and noise SI-SDRi, all SNRs)",
            "",
            "| model | hop / lookahead frames | latency s | orca SI-SDRi dB | noise SI-SDRi dB |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {c['model']} | {c['hop_frames']} / {c['lookahead_frames']} | "
            f"{c['latency_s']:.3f} | {_fmt(c[f'si_sdri_{ORCA_STEM}'])} | "
            f"{_fmt(c[f'si_sdri_{NOISE_STEM}'])} |"
            for c in result["latency_curve"]
        ]
    if "labeled" in result:
        first = next(iter(result["labeled"].values()))
        lines += [
            "",
            f"## Labelled clips: ROC AUC, {first['n_call']} call vs {first['n_nocall']} no-call "
            f"(0.5-15 kHz band energy)",
            "",
            "| score | AUC |",
            "| --- | --- |",
        ]
        lines += [f"| {k} | {v['auc']:.3f} |" for k, v in result["labeled"].items()]
    lines += ["", f"Evaluation wall time: {result['seconds']:.0f} s ({cfg['machine']}).", ""]
    return "\n".join(lines)


def _table_header(columns: Sequence[str]) -> list[str]:
    """The two header lines of a Markdown table."""
    return ["| " + " | ".join(columns) + " |", "| --- " * len(columns) + "|"]


def _headline(result: dict[str, Any]) -> list[str]:
    """Each model row against the full-band ceiling and the best noisereduce setting."""
    summary, snrs = result["summary"], [f"{x:g}" for x in result["config"]["snrs"]]
    baselines = [m for m in summary if m.startswith("noisereduce")]
    if "irm-full" not in summary or not baselines:
        return []
    orca = {m: summary[m][ORCA_STEM] for m in summary}
    best = max(baselines, key=lambda m: orca[m]["all"]["si_sdri"])
    ceiling = orca["irm-full"]["all"]["si_sdri"]
    lines = [
        "",
        f"## Orca stem against the full-band ideal ratio mask ({_fmt(ceiling)} dB) and the best "
        f"noisereduce setting ({best})",
        "",
        *_table_header(
            ["method", "SI-SDRi dB", "% of full-band IRM", "minus noisereduce, mean dB"]
            + [f"minus noisereduce @{x} dB" for x in snrs]
        ),
    ]
    for method in summary:
        if method.startswith(("irm-", "mix", "passthrough", "noisereduce")):
            continue
        value = orca[method]["all"]["si_sdri"]
        per_snr = " | ".join(
            f"{orca[method][x]['si_sdri'] - orca[best][x]['si_sdri']:+.2f}" for x in snrs
        )
        lines.append(
            f"| {method} | {_fmt(value)} | {100 * value / ceiling:.0f} | "
            f"{value - orca[best]['all']['si_sdri']:+.2f} | {per_snr} |"
        )
    return lines


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.evaluate", description="Evaluate models and baselines."
    )
    parser.add_argument("--params", type=Path, required=True, help="params JSON of the models")
    parser.add_argument("--model", type=Path, nargs="+", required=True, help=".tflite file(s)")
    parser.add_argument("--data", type=Path, required=True, help="shared data folder")
    parser.add_argument("--split", default="val", choices=("train", "val"))
    parser.add_argument("--snrs", type=float, nargs="+", default=[-5.0, 0.0, 5.0], help="dB")
    parser.add_argument("--n-per-snr", type=int, default=8, help="mixtures per SNR (8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=8.0, help="mixture length, s (8)")
    parser.add_argument("--level-db", type=float, default=-30.0, help="mix RMS, dBFS (-30)")
    parser.add_argument("--chunk", type=int, default=1024, help="streaming chunk, samples")
    parser.add_argument(
        "--lookaheads",
        type=int,
        nargs="*",
        default=[],
        help="extra streaming rows per lookahead_frames, for the latency curve",
    )
    parser.add_argument(
        "--trim-seconds",
        type=float,
        default=0.0,
        help="score only the mixtures' middle, without this many seconds at each end (0)",
    )
    parser.add_argument(
        "--synthetic-noise",
        type=probability,
        default=0.0,
        metavar="P",
        help="add a synthetic noise (rain, shrimp, hum, flow) to each mixture with probability P",
    )
    parser.add_argument("--no-labeled", action="store_true", help="skip the labelled clips")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    result = evaluate(
        params,
        args.model,
        args.data,
        split=args.split,
        snrs=args.snrs,
        n_per_snr=args.n_per_snr,
        seed=args.seed,
        seconds=args.seconds,
        level_db=args.level_db,
        chunk=args.chunk,
        labeled=not args.no_labeled,
        lookaheads=args.lookaheads,
        trim_seconds=args.trim_seconds,
        p_synthetic=args.synthetic_noise,
    )
    result["command"] = "python -m tools.evaluate " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    args.out.mkdir(parents=True, exist_ok=True)
    text = report(result)
    (args.out / "report.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(_finite(result), indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
