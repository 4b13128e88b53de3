"""The evaluation report (Markdown) from a result dictionary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tools.dataset.mixtures import (
    NOISE_STEM,
    ORCA_STEM,
)
from tools.dataset.synthnoise import DEFAULT_KINDS
from tools.evaluate.methods import (
    STEMS,
)


def _fmt_sem(value: float, sem: float) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if sem is None or not np.isfinite(sem) else f"{value:.2f} ± {sem:.2f}"


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
            f" ({', '.join(cfg.get('synthetic_kinds', DEFAULT_KINDS))})"
            if cfg.get("p_synthetic")
            else ""
        )
        + (
            f", every mix AAC-coded at {cfg['aac_kbps']:g} kbit/s and decoded"
            if cfg.get("aac_kbps")
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
    lines += _per_noise_table(result)
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
            "| score | AUC | median, call clips dB | median, no-call clips dB |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {k} | {v['auc']:.3f} | {_fmt(v.get('median_call_db'))} | "
            f"{_fmt(v.get('median_nocall_db'))} |"
            for k, v in result["labeled"].items()
        ]
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


def _per_noise_table(result: dict[str, Any]) -> list[str]:
    """Orca SI-SDRi per noise recording: IRM ceiling, best noisereduce, each model."""
    per = result.get("per_noise")
    if not per:
        return []
    models = [
        m
        for m in result["summary"]
        if not m.startswith(("irm-", "mix", "passthrough", "noisereduce"))
    ]
    lines = [
        "",
        "## Orca SI-SDRi per noise recording (dB; each model minus the best noisereduce variant "
        "on that recording)",
        "",
        *_table_header(
            ["noise recording", "mixtures", "irm-full", "best noisereduce"]
            + [f"{m} (minus noisereduce)" for m in models]
        ),
    ]
    for noise, entry in per.items():
        best = entry.get("best_noisereduce")
        base = entry[best] if best else float("nan")
        cells = [
            f"{_fmt(entry[m])} ({entry[m] - base:+.2f})" if best else _fmt(entry[m]) for m in models
        ]
        lines.append(
            f"| {Path(noise).name} | {entry['n']} | {_fmt(entry.get('irm-full', float('nan')))} | "
            f"{_fmt(base)} ({best}) | " + " | ".join(cells) + " |"
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
