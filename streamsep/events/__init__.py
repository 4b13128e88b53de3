"""Orca activity events: a streaming detector on the separated stems (:mod:`.detector`), the
``[events]`` settings (:mod:`.settings`), event records and the ``events`` topic body
(:mod:`.record`), clips of the mix and the orca stem (:mod:`.clips`), the append-only event log
and its writer thread (:mod:`.store`), the webhook notifier (:mod:`.webhook`), the daemon's tap
that wires them to the output (:mod:`.tap`) and offline detection on files (:mod:`.offline`).
"""
