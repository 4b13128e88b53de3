"""Limits of the daemon's config values that no settings class knows: every number finite,
sane upper bounds, endpoints ZeroMQ can bind.

A value beyond these bounds can only be a mistake, and one that would fail while running, after
``running`` was logged (a thread timeout overflows, a buffer cannot be allocated, a socket
option is refused, the model cannot start its threads), so that ``streamsep check`` passed it
and systemd restarts the daemon in a loop. The config loader (:mod:`streamsep.daemon.config`)
applies them to the parsed TOML before building the settings, so the message names the key.
"""

from __future__ import annotations

import math
from typing import Any, Final

from streamsep.engine.model import MAX_NUM_THREADS
from streamsep.errors import ConfigError
from streamsep.validate import fail

__all__ = ["BOUNDS", "check_numbers", "check_endpoints"]

_DAY: Final = 86400.0
# Upper bounds of numbers whose type and lower bound their settings class checks: beyond them a
# value is a mistake that would fail only while running (a thread timeout overflows, a buffer
# cannot be allocated, a socket option is refused, the model cannot start its threads).
# ``key: (low, high)``; a list is checked item by item. Lower bounds are left to the classes
# (their messages say more), except for the magnitudes of the decibel keys and the archive's
# file length.
_ANY: Final = -math.inf
BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "source.sample_rate": (_ANY, 768_000),
    "source.channels": (_ANY, 256),
    "source.block_size": (_ANY, 1 << 20),
    "source.latency": (_ANY, 10.0),
    "source.buffer_seconds": (_ANY, 600.0),
    "source.stall_seconds": (_ANY, _DAY),
    "source.reconnect_seconds": (_ANY, _DAY),
    "source.reconnect_max_seconds": (_ANY, _DAY),
    "source.poll_seconds": (_ANY, 3600.0),
    "source.timeout_seconds": (_ANY, 3600.0),
    "source.stall_target_durations": (_ANY, 1000.0),
    "source.max_gap_seconds": (_ANY, _DAY),
    "source.live_edge_segments": (_ANY, 1000),
    "source.max_behind_segments": (_ANY, 100_000),
    "source.segment_retries": (_ANY, 1000),
    "source.wait_subscribers": (_ANY, 1_000_000),
    "source.wait_seconds": (_ANY, _DAY),
    "model.num_threads": (_ANY, MAX_NUM_THREADS),
    "stream.hop_frames": (_ANY, 1 << 20),
    "stream.lookahead_frames": (_ANY, 1 << 20),
    "publish.hwm": (_ANY, 1_000_000),
    "publish.sndbuf_bytes": (_ANY, 1 << 30),
    "publish.queue_chunks": (_ANY, 100_000),
    "publish.levels_seconds": (_ANY, 3600.0),
    "publish.status_seconds": (_ANY, 3600.0),
    "publish.end_timeout_seconds": (_ANY, 3600.0),
    "publish.sensitivity_db_re_1v_per_upa": (-400.0, 400.0),
    "publish.gain_db": (-200.0, 200.0),
    "publish.full_scale_volts": (_ANY, 1e6),
    "archive.file_seconds": (0.1, _DAY),  # shorter: a new file every few hundred samples
    "archive.queue_seconds": (_ANY, 600.0),
    "archive.min_free_mb": (_ANY, float(1 << 30)),
}


def check_numbers(data: dict[str, Any]) -> None:
    """Every number in the parsed TOML ``data`` is finite, and within :data:`BOUNDS` where it
    has one.

    Raises
    ------
    ConfigError
        ``section.key must be ..., got ...``.
    """
    for section, table in data.items():
        if not isinstance(table, dict):
            continue
        for key, value in table.items():
            name = f"{section}.{key}"
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, bool) or not isinstance(item, int | float):
                    continue
                if isinstance(item, float) and not math.isfinite(item):
                    raise ConfigError(f"{name} must be a finite number, got {item}")  # nan, inf
                low, high = BOUNDS.get(name, (-math.inf, math.inf))
                if not low <= item <= high:
                    bound = f"at most {_plain(high)}"
                    if low != _ANY:
                        bound = f"in [{_plain(low)}, {_plain(high)}]"
                    raise fail(name, bound, item)


def _plain(x: float) -> str:
    """``1000000``, not ``1e+06``."""
    return str(int(x)) if x == int(x) else f"{x:g}"


def check_endpoints(key: str, value: Any) -> None:
    """A ``tcp://`` endpoint to bind names a port ``0..65535`` (or ``*``): ZeroMQ refuses
    anything else only when binding."""
    for endpoint in value if isinstance(value, list) else [value]:
        if not isinstance(endpoint, str) or not endpoint.startswith("tcp://"):
            continue  # types and other transports: the settings class checks them
        host, colon, port = endpoint[len("tcp://") :].rpartition(":")
        valid = port == "*" or (port.isdigit() and int(port) <= 65535)
        if not (colon and host and valid):
            raise fail(key, "an endpoint like tcp://127.0.0.1:5556 (port 0..65535 or *)", endpoint)
