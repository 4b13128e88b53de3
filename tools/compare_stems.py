"""Compare two ``streamsep separate`` output folders stem by stem (the arm64 check's verdict).

Usage::

    python -m tools.compare_stems REFERENCE CANDIDATE [--max-abs 1e-5] [--max-rel-db -40]
        [--json OUT.json]

Every audio file under ``REFERENCE`` (``<input>/<stem>.wav``...) must exist under ``CANDIDATE``
with the same rate and shape, its largest absolute sample difference at most ``--max-abs``
(unit-scale audio) and, when given, its relative error
``20 log10(||candidate - reference|| / ||reference||)`` at most ``--max-rel-db`` dB. Prints one
line per file with both numbers; exits 1 on a mismatch, a missing file or an empty reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

__all__ = ["compare_dirs", "main"]

_AUDIO_SUFFIXES = (".wav", ".flac")


def _rel_error_db(candidate: np.ndarray, reference: np.ndarray) -> float:
    error = float(np.linalg.norm(candidate - reference))
    norm = float(np.linalg.norm(reference))
    if error == 0.0:
        return float("-inf")
    return 20.0 * float(np.log10(error / norm)) if norm > 0 else float("inf")


def compare_dirs(
    reference: Path, candidate: Path, max_abs: float, max_rel_db: float | None = None
) -> list[dict[str, Any]]:
    """One result per reference audio file: ``file``, ``max_abs``, ``rel_error_db``, ``ok``,
    ``problem`` (``None`` when the file compared)."""
    results: list[dict[str, Any]] = []
    for ref_path in sorted(p for p in reference.rglob("*") if p.suffix in _AUDIO_SUFFIXES):
        rel = ref_path.relative_to(reference)
        row: dict[str, Any] = {"file": str(rel), "max_abs": None, "rel_error_db": None}
        cand_path = candidate / rel
        if not cand_path.is_file():
            results.append({**row, "ok": False, "problem": f"{cand_path} missing"})
            continue
        ref, ref_rate = sf.read(ref_path, dtype="float64", always_2d=True)
        cand, cand_rate = sf.read(cand_path, dtype="float64", always_2d=True)
        if (ref_rate, ref.shape) != (cand_rate, cand.shape):
            problem = f"{ref_rate} Hz {ref.shape} in reference, {cand_rate} Hz {cand.shape} here"
            results.append({**row, "ok": False, "problem": problem})
            continue
        diff = float(np.abs(cand - ref).max()) if ref.size else 0.0
        row.update(max_abs=diff, rel_error_db=_rel_error_db(cand, ref))
        rel_ok = max_rel_db is None or row["rel_error_db"] <= max_rel_db
        row["ok"] = diff <= max_abs and rel_ok and ref.size > 0
        row["problem"] = None if ref.size else "empty"
        results.append(row)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; 0 when every file matches, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m tools.compare_stems", description=__doc__)
    parser.add_argument("reference", type=Path, help="output folder of the reference run")
    parser.add_argument("candidate", type=Path, help="output folder to check")
    parser.add_argument("--max-abs", type=float, default=1e-5, help="tolerance (unit scale)")
    parser.add_argument("--max-rel-db", type=float, help="tolerance of the relative error (dB)")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    results = compare_dirs(args.reference, args.candidate, args.max_abs, args.max_rel_db)
    limits = f"max abs {args.max_abs:g}" + (
        f", rel. error {args.max_rel_db:g} dB" if args.max_rel_db is not None else ""
    )
    if not results:
        print(f"compare_stems: no audio files under {args.reference}", file=sys.stderr)
        return 1
    for r in results:
        if r["problem"]:
            print(f"{r['file']}: FAIL ({r['problem']})")
        else:
            verdict = "ok" if r["ok"] else f"FAIL (limits: {limits})"
            print(
                f"{r['file']}: max abs diff {r['max_abs']:.3g}, rel. error "
                f"{r['rel_error_db']:.1f} dB: {verdict}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
