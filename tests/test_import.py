"""``import streamsep`` stays light: no TensorFlow."""

from __future__ import annotations

import subprocess
import sys


def test_import_pulls_no_tensorflow() -> None:
    code = (
        "import sys, streamsep\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
