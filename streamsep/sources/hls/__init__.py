"""HLS input: playlist parsing and fetching (``playlist``), the fetch deadline and retry policy
(``fetch``), segment decoding (``decode``), the follower that turns segments into a gap-marked
timeline (``follower``) and the Orcasound node resolver (``orcasound``)."""
