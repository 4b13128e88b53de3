"""Releasing a loaded model file's mapped pages (streamsep.engine.pages) changes no result."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from streamsep.engine.model import load_model
from streamsep.engine.pages import release_mapped_file
from streamsep.engine.params import load_params
from streamsep.resources import default_model_paths

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="madvise of /proc/self/maps mappings: Linux"
)


def _resident_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    target, total, inside = str(path.resolve()), 0, False
    with open("/proc/self/smaps", encoding="utf-8") as smaps:
        for line in smaps:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                inside = line.rstrip("\n").endswith(target)
            elif inside and line.startswith("Rss:"):
                total += int(head[1])
    return total


def test_release_drops_the_model_files_pages_and_keeps_the_output(tmp_path: Path) -> None:
    params_path, model_path = default_model_paths()
    params = load_params(params_path)
    copy = tmp_path / "model.tflite"  # its own file: no other mapping of it in this process
    copy.write_bytes(Path(model_path).read_bytes())
    model = load_model(copy, params)  # loads, probes, releases
    block = np.abs(
        np.random.default_rng(1).standard_normal((params.T, params.F, params.input_channels))
    ).astype(np.float32)
    before = model.predict(block)
    size = copy.stat().st_size
    for _ in range(3):  # read the mapping's pages back in, as LiteRT would
        model.predict(block)
    released = release_mapped_file(copy)
    assert released >= size  # the whole file is mapped, rounded up to pages
    assert _resident_kib(copy) == 0
    np.testing.assert_array_equal(model.predict(block), before)
    model.close()


def test_release_of_a_file_not_mapped_is_nothing(tmp_path: Path) -> None:
    path = tmp_path / "never-mapped.tflite"
    path.write_bytes(b"\0" * 8192)
    assert release_mapped_file(path) == 0
    assert release_mapped_file(tmp_path / "missing.tflite") == 0


def test_a_writable_private_mapping_keeps_its_changed_pages(tmp_path: Path) -> None:
    """Only read-only mappings are advised: a copy-on-write page changed in memory would be
    lost (read back from the file) if it were."""
    import mmap

    path = tmp_path / "weights.bin"
    path.write_bytes(b"\0" * 8192)
    with path.open("rb") as f:
        private = mmap.mmap(f.fileno(), 8192, access=mmap.ACCESS_COPY)
    private[:4] = b"keep"
    assert release_mapped_file(path) == 0
    assert private[:4] == b"keep"
    private.close()
