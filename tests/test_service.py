"""tools/streamsep.service: systemd accepts the unit (``systemd-analyze verify``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "tools" / "streamsep.service"
INSTALLED = "/opt/streamsep/.venv/bin/streamsep"
"""The executable the unit names (docs/edge.md installs the package there)."""


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (no systemd on this machine)")
    text = UNIT.read_text()
    assert INSTALLED in text
    # verify also checks that ExecStart= names an executable: point it at this environment's
    # streamsep (same command line), since /opt/streamsep is not installed here.
    here = Path(sys.prefix) / "bin" / "streamsep"
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(INSTALLED, str(here if here.is_file() else sys.executable)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    about_it = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if UNIT.name in line or str(tmp_path) in line
    ]
    assert result.returncode == 0 and not about_it, result.stdout + result.stderr
