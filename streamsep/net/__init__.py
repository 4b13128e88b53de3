"""The network side: the wire protocol (``protocol``), the ZeroMQ publisher and subscriber,
CURVE keys and bind checks (``security``), the control endpoint, levels, status snapshots and
the ``listen`` client.

Layer 2. Imports the core modules and ``streamsep.engine``; never ``sources`` (its sibling),
``events``, ``web``, ``daemon`` or ``cli``.
"""
