"""Sound-card capture: device settings and listing (``capture``), the PortAudio child
process (``process``) and the source that supervises it (``source``)."""
