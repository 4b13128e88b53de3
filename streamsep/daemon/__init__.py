"""The daemon: TOML configuration (``config``), the source wiring that builds a source, the
pipeline and its sinks (``wiring``), the supervisor that keeps them running (``supervisor``),
its status and metrics (``report``), raw archive, Prometheus metrics server and systemd
notification.

Layer 4. May import every layer below (core, ``engine``, ``sources``, ``net``, ``events``,
``web``); never ``cli``.
"""
