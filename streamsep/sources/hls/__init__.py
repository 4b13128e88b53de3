"""HLS input: what a source is told and counts (``settings``), playlist parsing (``playlist``),
HTTP(S) requests with a total deadline, http/https only (``fetch``), back-off and segment
retries (``retry``), segment decoding (``decode``), which segments play next (``window``), the
timeline of written and lost samples (``timeline``), the follower thread that drives them
(``follower``) and the Orcasound node resolver (``orcasound``)."""
