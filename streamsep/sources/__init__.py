"""Audio sources that fill the engine's ring buffer: files (``file``), sound cards through
PortAudio in a child process (``device``), HLS streams and Orcasound nodes (``hls``).

Layer 2. Imports the core modules and ``streamsep.engine``; never ``net`` (its sibling),
``events``, ``web``, ``daemon`` or ``cli``.
"""
