"""The separation engine: params, spectral front end, block scheduling, the model, the
streaming separator, the ring buffer and the threaded pipeline, offline separation.

Layer 1. Imports only the core modules (``streamsep.errors``, ``validate``, ``resources``,
``version``) and itself; never ``sources``, ``net``, ``events``, ``web``, ``daemon`` or ``cli``.
"""
