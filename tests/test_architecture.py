"""The package's layering: imports between subpackages only run downward.

Layers (see each subpackage's ``__init__``): core modules (``errors``, ``validate``, ``threads``,
``resources``, ``version``) < ``engine`` < ``sources`` | ``net`` < ``events`` | ``web`` <
``daemon`` < ``cli``. Subpackages on the same layer do not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "streamsep"

LAYERS: dict[str, int] = {
    "": 0,  # core modules at the package root
    "engine": 1,
    "sources": 2,
    "net": 2,
    "events": 3,
    "web": 3,
    "daemon": 4,
    "cli": 5,
}
TOP_MODULES = {"__init__", "__main__"}  # the public API and ``python -m``: may import anything
MAX_LINES = 450


def _subpackage(module: str) -> str:
    """``streamsep.engine.model`` -> ``engine``; a root module -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else ""


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """Every ``streamsep`` module that *path* imports (at any depth), with line numbers."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("streamsep")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("streamsep"):
                found.append((node.lineno, target))
    return found


def upward_imports(root: Path = PACKAGE) -> list[str]:
    """One line per import that goes up or sideways between layers."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        name = _module_name(path, root)
        if path.parent == root and path.stem in TOP_MODULES:
            continue
        source = _subpackage(name) if path.parent != root else ""
        for line, target in _imports(path, root):
            if target == "streamsep":
                bad.append(f"{path.relative_to(root.parent)}:{line} imports the package root")
                continue
            parts = target.split(".")
            dest = parts[1] if (root / parts[1]).is_dir() else ""
            if dest == source:
                continue
            if dest not in LAYERS or source not in LAYERS:
                bad.append(f"{path.relative_to(root.parent)}:{line}: unknown subpackage {dest!r}")
            elif LAYERS[dest] >= LAYERS[source]:
                bad.append(
                    f"{path.relative_to(root.parent)}:{line} ({source or 'core'}) imports {target}"
                )
    return bad


def test_imports_only_run_downward() -> None:
    assert upward_imports() == []


def test_every_subpackage_has_a_layer() -> None:
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages <= set(LAYERS)


def test_checker_flags_an_upward_import(tmp_path: Path) -> None:
    root = tmp_path / "streamsep"
    (root / "engine").mkdir(parents=True)
    (root / "net").mkdir()
    (root / "__init__.py").write_text("")
    (root / "engine" / "__init__.py").write_text("")
    (root / "net" / "__init__.py").write_text("")
    (root / "engine" / "model.py").write_text(
        "def f():\n    from ..net import protocol\n    return protocol\n"
    )
    (root / "net" / "protocol.py").write_text("from streamsep.engine import model\n")
    assert upward_imports(root) == ["streamsep/engine/model.py:2 (engine) imports streamsep.net"]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.name))
def test_module_size(path: Path) -> None:
    """No module over ~450 lines unless its docstring says why (a line containing "long:")."""
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n")
    if lines > MAX_LINES:
        doc = ast.get_docstring(ast.parse(text)) or ""
        assert "long:" in doc.lower(), f"{path.name}: {lines} lines and no reason at its top"
