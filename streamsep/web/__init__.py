"""The browser monitor (layer 3: imports core, engine and net only).

``settings`` (WebSettings, HlsOutSettings), ``frames`` (the browser wire format),
``spectrogram`` (server-side uint8 dB columns), ``feed`` (a protocol subscriber turned into
browser messages), ``hub`` (bounded per-client queues), ``hls`` (live HLS of one stem),
``server`` (the aiohttp app and :class:`~streamsep.web.server.WebMonitor`), ``static/`` (the
page: plain HTML, JS and CSS, no build step). See ``docs/web.md``.
"""
