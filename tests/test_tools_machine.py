"""tools.machine: how reports name the machine and the files they measured."""

from __future__ import annotations

from pathlib import Path

from tools.machine import ROOT, describe_machine, shown_path


def test_absolute_paths_inside_the_repository_are_shown_relative_to_it() -> None:
    assert shown_path(ROOT / "streamsep" / "data" / "orca_unet.tflite") == (
        "streamsep/data/orca_unet.tflite"
    )
    assert shown_path(str(ROOT / "configs")) == "configs"


def test_other_paths_and_names_are_shown_as_given(tmp_path: Path) -> None:
    outside = tmp_path / "model.tflite"
    assert shown_path(outside) == str(outside)
    assert shown_path("runs/x/model.tflite") == "runs/x/model.tflite"
    assert shown_path("passthrough") == "passthrough"


def test_machine_line_names_cores_and_python() -> None:
    line = describe_machine()
    assert " cores, Python 3." in line
