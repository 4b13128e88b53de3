"""The daemon: TOML configuration (``config``), the supervisor that wires a source to the
pipeline and its sinks and keeps them running, raw archive, Prometheus metrics and systemd
notification.

Layer 4. May import every layer below (core, ``engine``, ``sources``, ``net``, ``events``,
``web``); never ``cli``.
"""
