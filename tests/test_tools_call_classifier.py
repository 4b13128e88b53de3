"""The detector's extra score term and the call classifier experiment built on it: window
features (level- and chunking-independent), the classifier file's format and clear errors, and
a term's effect on events."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streamsep.events.detector import Detector, DetectorSettings, events_of
from streamsep.events.terms import WindowView
from tools.call_classifier import CallClassifier, FeatureTerm
from tools.call_features import FEATURE_NAMES

from ._events import bursts

RATE = 32000
N = len(FEATURE_NAMES)


def _features(x: np.ndarray, noise: np.ndarray | None, chunk: int) -> np.ndarray:
    term = FeatureTerm(record=True)
    events_of(Detector(DetectorSettings(), RATE, term), 0, x, noise, chunk=chunk)
    return np.array(term.rows)


def _signal(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = bursts(RATE, 4.0, [(1.0, 2.5)])[:, 0] + 1e-3 * rng.standard_normal(4 * RATE)
    return x, 1e-2 * rng.standard_normal(4 * RATE)


def test_features_do_not_depend_on_level_or_chunking() -> None:
    x, noise = _signal()
    a = _features(x, noise, 4096)
    assert a.shape == (40, N) and np.all(np.isfinite(a))
    np.testing.assert_allclose(_features(x, noise, 777), a, atol=1e-9)
    # 20 dB louder, both stems: only the background term (its start) may move, and it does not
    louder = _features(10 * x, 10 * noise, 4096)
    np.testing.assert_allclose(louder, a, atol=1e-6)


def test_features_see_a_tone_as_tonal_and_steady() -> None:
    x, noise = _signal()
    f = _features(x, noise, 4096)
    i = {name: k for k, name in enumerate(FEATURE_NAMES)}
    inside, outside = f[15], f[35]  # windows in the burst (1.0-2.5 s) and after it
    assert inside[i["flatness_db"]] < outside[i["flatness_db"]] - 20
    assert inside[i["continuity"]] > 0.9
    assert inside[i["orca_minus_noise_db"]] > outside[i["orca_minus_noise_db"]] + 20


def _classifier(weight: float, bias: float) -> CallClassifier:
    weights = [0.0] * N
    weights[FEATURE_NAMES.index("flatness_db")] = weight
    return CallClassifier((0.0,) * N, (10.0,) * N, tuple(weights), bias, "test")


def test_extra_term_sees_each_window_in_order_and_enters_the_score() -> None:
    x, noise = _signal()
    settings = DetectorSettings(tone_flatness_db=-300.0)
    seen: list[WindowView] = []

    def low(view: WindowView) -> float:
        seen.append(view)
        return 5.0  # below the start threshold: no event can open

    detector = Detector(settings, RATE, low)
    detector.scores = []
    assert events_of(detector, 0, x, noise) == []
    assert [v.index for v in seen] == list(range(40))
    assert all(s.score_db <= 5.0 and s.extra_db == 5.0 for s in detector.scores)
    assert seen[15].orca.shape == (detector.window_samples, 1)
    assert len(events_of(Detector(settings, RATE, lambda v: 100.0), 0, x, noise)) == 1


def test_call_term_can_veto_an_event_and_round_trips(tmp_path: Path) -> None:
    x, noise = _signal()
    settings = DetectorSettings(tone_flatness_db=-300.0)
    assert len(events_of(Detector(settings, RATE), 0, x, noise)) == 1
    # a classifier that calls tonal windows unlikely (log-odds falls with lower flatness)
    veto = _classifier(weight=2.0, bias=0.0)
    assert events_of(Detector(settings, RATE, FeatureTerm(veto)), 0, x, noise) == []
    keep = _classifier(weight=0.0, bias=5.0)  # log-odds +21.7 dB everywhere: never binds
    assert len(events_of(Detector(settings, RATE, FeatureTerm(keep)), 0, x, noise)) == 1
    path = tmp_path / "c.json"
    veto.save(path)
    assert CallClassifier.load(path) == veto


def test_classifier_file_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"c\.json: cannot read it"):
        CallClassifier.load(path)
    doc = _classifier(1.0, 0.0).as_dict()
    doc["features"] = doc["features"][:-1]
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"c\.json: its features"):
        CallClassifier.load(path)
    doc = _classifier(1.0, 0.0).as_dict()
    doc["weights"] = doc["weights"][:-1]
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="weights must be"):
        CallClassifier.load(path)
    with pytest.raises(ValueError, match="not a streamsep-call-classifier/1"):
        path.write_text("[]")
        CallClassifier.load(path)
