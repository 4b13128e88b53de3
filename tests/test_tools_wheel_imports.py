"""The tools modules the wheel installs as ``streamsep_tools`` import each other relatively.

``setup.py`` installs ``tools/*.py`` (top level only) as the package ``streamsep_tools``, where no
``tools`` package exists. A conversion-path module that says ``from tools.x import y`` works in a
checkout and fails only in an installed wheel (``ModuleNotFoundError: No module named 'tools'``),
which the slow wheel test finds after a 10-minute build; this finds it in milliseconds.
"""

from __future__ import annotations

import ast
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent / "tools"
# What `pip install 'streamsep[tools]'` users run (docs/edge.md, `streamsep separate --model CKPT`).
ENTRY_POINTS = ("convert_spleeter", "export_tflite")


def _tools_imports(source: str) -> tuple[list[str], list[tuple[int, str]]]:
    """``(relative top-level modules imported, absolute `tools` imports with line numbers)``."""
    relative: list[str] = []
    absolute: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            relative.append(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "tools" or node.module.startswith("tools."):
                absolute.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            absolute += [
                (node.lineno, a.name)
                for a in node.names
                if a.name == "tools" or a.name.startswith("tools.")
            ]
    return relative, absolute


def _reachable() -> dict[str, list[tuple[int, str]]]:
    """Every top-level tools module the entry points reach, with its absolute `tools` imports."""
    seen: dict[str, list[tuple[int, str]]] = {}
    todo = list(ENTRY_POINTS)
    while todo:
        name = todo.pop()
        path = TOOLS / f"{name}.py"
        if name in seen or not path.is_file():
            continue
        relative, absolute = _tools_imports(path.read_text(encoding="utf-8"))
        seen[name] = absolute
        todo += relative
    return seen


def test_wheel_conversion_path_imports_only_relatively() -> None:
    reached = _reachable()
    assert {"convert_spleeter", "export_tflite", "unet", "widen"} <= set(reached), sorted(reached)
    bad = [f"tools/{m}.py:{line} imports {t}" for m, found in reached.items() for line, t in found]
    assert not bad, "use a relative import (`from .x import y`): " + "; ".join(bad)


def test_checker_flags_an_absolute_tools_import() -> None:
    source = "from .unet import build_unet\nfrom tools.widen import widen_weights\nimport tools.x\n"
    relative, absolute = _tools_imports(source)
    assert relative == ["unet"]
    assert absolute == [(2, "tools.widen"), (3, "tools.x")]
