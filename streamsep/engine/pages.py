"""Give a mapped model file's resident pages back to the page cache once they are not needed.

LiteRT maps a ``.tflite`` file read-only (``mmap``) and reads its weights once, when the
XNNPACK delegate packs them into its own buffers at the first run. From then on the mapping's
pages that the packing touched stay resident in the process (``RssFile``) although nothing
reads them: for a full-size Spleeter model about 75 MiB. :func:`release_mapped_file` tells the
kernel (``madvise(MADV_DONTNEED)`` on every read-only mapping of the file) that the process
does not need them now; the mapping stays valid, and a page read again (an operator the
delegate did not take) is read back from the file. The file's contents are unchanged, so
results are too.

Linux only; elsewhere, or when ``madvise`` is not available, it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from pathlib import Path
from typing import Final

__all__ = ["release_mapped_file"]

_LOGGER = logging.getLogger(__name__)

_MADV_DONTNEED: Final = 4  # <sys/mman.h> on Linux, every architecture


def _mappings(path: Path) -> list[tuple[int, int]]:
    """``(start, end)`` addresses of this process's read-only mappings of ``path`` (from
    /proc)."""
    target = os.path.realpath(path)
    found = []
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            # Read-only mappings only: a writable private one could hold changed pages, which
            # MADV_DONTNEED would throw away.
            if len(fields) == 6 and fields[5].rstrip("\n") == target and fields[1][1:2] == "-":
                start, end = (int(a, 16) for a in fields[0].split("-"))
                found.append((start, end))
    return found


def release_mapped_file(path: str | Path) -> int:
    """Drop this process's resident pages of every mapping of ``path``; returns the bytes of
    the mappings advised (0 when there are none or on a platform without ``madvise``)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        spans = _mappings(Path(path))
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError) as e:  # no /proc, no libc symbol
        _LOGGER.debug("not releasing pages of %s: %s", path, e)
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    released = 0
    for start, end in spans:
        if madvise(start, end - start, _MADV_DONTNEED) == 0:
            released += end - start
        else:
            _LOGGER.debug("madvise of %s failed: %s", path, os.strerror(ctypes.get_errno()))
    return released
