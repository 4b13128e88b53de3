"""Run the evaluation: every method on every mixture, labelled-clip AUC, latency, summaries."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamsep.engine.audio import read_audio
from streamsep.engine.params import ModelParams
from streamsep.errors import ConfigError
from tools.dataset.mixtures import (
    NOISE_STEM,
    ORCA_STEM,
    prepare_audio,
)
from tools.dataset.synthnoise import DEFAULT_KINDS
from tools.evaluate.methods import (
    BAND_HZ,
    METRICS,
    STEMS,
    Estimates,
    Method,
    _highpass,
    _mixtures,
    _ModelRunner,
    _noisereduce,
    _score,
    ideal_ratio_mask,
)
from tools.evaluate.metrics import band_energy_db, roc_auc
from tools.machine import describe_machine

_LOGGER = logging.getLogger(__name__)


def labeled_auc(
    data_dir: Path, params: ModelParams, methods: dict[str, Method]
) -> dict[str, dict[str, float]]:
    """ROC AUC of band-energy scores on ``labeled/{call,nocall}`` (calls are positives).

    Scores: ``mix`` (band energy of the clip), ``<method> orca`` (of the method's orca stem)
    and ``<method> orca/mix`` (their difference in dB: level-free; on the call clips, how much of
    real calls a method keeps), each with its median over the call and the no-call clips, dB.
    Clips are prepared like the mixtures (mono, DC removed, model rate).
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
        name: {
            "auc": roc_auc(np.array(s["call"]), np.array(s["nocall"])),
            "median_call_db": float(np.median(s["call"])),
            "median_nocall_db": float(np.median(s["nocall"])),
        }
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
    synthetic_kinds: Sequence[str] = DEFAULT_KINDS,
    aac_kbps: float | None = None,
) -> dict[str, Any]:
    """Run every method on the mixtures (and labelled clips); return the results dict.

    ``p_synthetic`` > 0 adds to each mixture's noise, with that probability, a synthetic noise
    (:mod:`tools.dataset.synthnoise`, a kind drawn from ``synthetic_kinds``) the validation
    recordings lack.

    ``trim_seconds`` > 0 scores only ``[trim, n - trim]`` of every mixture (every method is still
    run on the whole mixture): the middle of a stream, away from its start and end.
    ``lookaheads`` adds, per model, streaming rows ``<name> streaming L=<lookahead_frames>``
    (hop derived from the lookahead) and a ``latency_curve`` of mean SI-SDRi against latency.
    """
    if aac_kbps is not None and not aac_kbps > 0:
        raise ConfigError(f"--aac-kbps: need a bit rate > 0 kbit/s, got {aac_kbps}")
    stems = [Path(m).stem for m in models]
    if len(set(stems)) < len(stems):
        raise ConfigError(
            "--model: the models are named by their file names, and two share one: "
            f"{[str(m) for m in models]} (copy one to another name)"
        )
    started = time.perf_counter()
    mixtures = _mixtures(
        data_dir,
        split,
        params,
        snrs,
        n_per_snr,
        seed,
        seconds,
        level_db,
        p_synthetic,
        synthetic_kinds=synthetic_kinds,
        aac_kbps=aac_kbps,
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
                    "noise": mixture.meta["noises"][0]["path"],
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
            "synthetic_kinds": list(synthetic_kinds),
            "aac_kbps": aac_kbps,
            "chunk": chunk,
            "lookaheads": list(lookaheads),
            "trim_seconds": trim_seconds,
            "machine": describe_machine(),
        },
        "mixtures": [{"index": i, "snr_db": s, **m.meta} for i, (s, m) in enumerate(mixtures)],
        "rows": rows,
        "summary": _summarize(rows, snrs),
        "paired": paired_comparison(rows),
        "per_noise": per_noise(rows),
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


def per_noise(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Orca SI-SDRi per noise recording: ``{noise path: {"n": mixtures, method: mean dB}}``.

    Every model is judged against the noisereduce variant that does best on that recording
    (``"best_noisereduce"`` names it) and against the full-band IRM on the same mixtures.
    """
    out: dict[str, dict[str, Any]] = {}
    for noise in sorted({r["noise"] for r in rows}):
        chosen = [r for r in rows if r["noise"] == noise]
        methods = list(dict.fromkeys(r["method"] for r in chosen))
        entry: dict[str, Any] = {"n": len({r["index"] for r in chosen})}
        for method in methods:
            values = [r["metrics"][ORCA_STEM]["si_sdri"] for r in chosen if r["method"] == method]
            entry[method] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        baselines = [m for m in methods if m.startswith("noisereduce")]
        if baselines:
            best = max(baselines, key=lambda m: entry[m])
            entry["best_noisereduce"] = best
        out[noise] = entry
    return out
