"""The held-out test split: whole recordings that no training run or model choice looks at.

Chosen by a fixed rule before any model was scored on them (not by how a model does on them):

* **noise**: for every noise ``kind`` with at least three recordings in the manifest's ``train``
  split, the one whose path sorts last; the manifest's ``val`` noises stay validation.
* **calls**: two whole call sources added on 2026-11-30 that no bundled model has heard:
  ORCA-PARTY's four northern-resident single calls (Orchive, band-limited to ~10 kHz) and the
  three call-catalogue clips (SRKW J and L pods).

``manifest_entries`` gives these files ``split = "test"``, so ``load_pool(..., "train")`` and
``load_pool(..., "val")`` never contain them. Report the test split once per shipped model
(``python -m tools.evaluate ... --split test``); never choose weights, recipes or thresholds on
it. Models trained before this split existed (the stage-1 and stage-2 weights of 2026-11) saw the
five ``train`` noise files below in training, so their test numbers on those noises are
optimistic; the calls are new to them.
"""

from __future__ import annotations

from typing import Final

__all__ = ["TEST_FILES", "TEST_SPLIT", "is_test"]

TEST_SPLIT: Final = "test"

TEST_FILES: Final = frozenset(
    {
        # noise: per kind with >= 3 train recordings, the last path (rule above)
        "noise/deepship_8.flac",  # noise-ship-passenger
        "noise/deepship_50.flac",  # noise-ship-tanker
        "noise/pypam_67416073.210610034655.flac",  # noise-ambient-northsea-8k
        "noise/orcacnn_neg-12.flac",  # noise-tonal-pulses
        "noise/orcacnn_neg-24.flac",  # noise-transients
        # calls: whole sources new on 2026-11-30
        "calls/orca-party_N1_SINGLE_ORIG.flac",
        "calls/orca-party_N3_SINGLE_ORIG.flac",
        "calls/orca-party_N5_SINGLE_ORIG.flac",
        "calls/orca-party_N47_SINGLE_ORIG.flac",
        "calls/call-catalog-viewer_BCS07-J01pod-1.flac",
        "calls/call-catalog-viewer_BCS07-J01pod-2.flac",
        "calls/call-catalog-viewer_S18-L-1.flac",
    }
)
"""Paths (relative to the data folder) of the test split's files."""


def is_test(path: str) -> bool:
    """Whether the manifest path ``path`` belongs to the held-out test split."""
    return path in TEST_FILES
