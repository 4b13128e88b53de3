"""Where a measurement ran, as benchmark and evaluation reports say it: the machine in one line,
and file paths relative to the repository."""

from __future__ import annotations

import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def describe_machine() -> str:
    """CPU model, core count and Python version, e.g. ``AMD EPYC, 2 cores, Python 3.11.7``."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def shown_path(path: str | Path) -> str:
    """``path`` as a report shows it: relative to the repository when it is an absolute path
    inside it, else unchanged (a relative path, a name such as ``passthrough``, a path
    elsewhere)."""
    if not Path(path).is_absolute():
        return str(path)
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
