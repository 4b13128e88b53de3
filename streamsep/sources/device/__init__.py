"""Sound-card capture: device settings and listing (``capture``), the PortAudio child
process (``process``), one run of it and its frame pipe (``session``) and the source that
supervises it (``source``)."""
