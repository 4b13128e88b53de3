"""The ``streamsep`` command line: ``main`` (parser and dispatch, ``separate``, ``info``),
``daemon`` (``run``, ``check``, ``devices``), ``net`` (``stream``, ``listen``, ``keys``) and
``stream`` (one file published as a live stream).

Layer 5, the top: may import every subpackage; nothing imports it.
"""
