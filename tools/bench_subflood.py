"""Memory of the publisher under a subscription flood (issue 18, defect 6).

    python -m tools.bench_subflood [--n 20000] [--sizes 24 1024] [--out docs/bench]

One local client (another process, a ZeroMQ SUB socket) subscribes to ``--n`` distinct random
prefixes of each size in ``--sizes`` bytes, none of them a published topic. Measured in a fresh
process per case: the growth of resident memory (peak ``VmHWM`` minus ``VmRSS`` before the
flood) of

* ``publisher``: :class:`streamsep.net.publish.Publisher` as it is (manual XPUB, inbound
  message limit), and
* ``plain-xpub``: a bare XPUB with ``XPUB_VERBOSER`` read as fast as it delivers, the
  configuration the publisher had before (every subscription kept in libzmq's trie),

and how many of the junk subscriptions reached the socket. Writes ``subflood.json`` and
``subflood.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

_CLIENT = """
import os, sys, time, zmq
n, size = int(sys.argv[2]), int(sys.argv[3])
c = zmq.Context(); s = c.socket(zmq.SUB); s.setsockopt(zmq.LINGER, 0)
s.connect(sys.argv[1]); time.sleep(0.3)
for i in range(n):
    s.setsockopt(zmq.SUBSCRIBE, b"%08d" % i + os.urandom(max(0, size - 8)))
    if i % 100 == 0:
        s.getsockopt(zmq.EVENTS)  # lets libzmq see its pipe drain
        time.sleep(0.002)
s.getsockopt(zmq.EVENTS); time.sleep(2.0)
"""


def _memory_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _worker(mode: str, n: int, size: int) -> dict[str, Any]:
    import zmq

    from streamsep.net.publish import Publisher, PublishSettings

    folder = tempfile.mkdtemp(prefix="ssflood")
    endpoint = f"ipc://{folder}/pub"
    stop = threading.Event()
    seen = [0]
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    publisher = None
    if mode == "publisher":
        settings = PublishSettings(endpoints=[endpoint], status_seconds=0, levels_seconds=0)
        publisher = Publisher(settings, stems=("orca_vocals", "noise"), sample_rate=48000,
                              n_channels=1)  # fmt: skip
        publisher.start()
    else:
        sock = context.socket(zmq.XPUB)
        sock.setsockopt(zmq.XPUB_VERBOSER, 1)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(endpoint)

        def read() -> None:
            while not stop.is_set():
                if sock.poll(50):
                    seen[0] += sock.recv()[:1] == b"\x01"
            sock.close()

        reader = threading.Thread(target=read)
        reader.start()
    before = _memory_mib("VmRSS")
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", _CLIENT, endpoint, str(n), str(size)], check=True)
    seconds = time.monotonic() - started
    if publisher is not None:
        seen[0] = publisher.stats()["subscriptions_rejected"]
        publisher.stop()
    else:
        stop.set()
        reader.join()
    context.term()
    return {
        "mode": mode,
        "n": n,
        "size_bytes": size,
        "reached_socket": seen[0],
        "rss_growth_mib": round(_memory_mib("VmHWM") - before, 1),
        "rss_after_mib": round(_memory_mib("VmRSS"), 1),
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Run every case in a fresh process; print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="junk subscriptions (default 20000)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[24, 1024], help="bytes each")
    parser.add_argument("--out", type=Path, default=Path("docs/bench"))
    parser.add_argument("--worker", nargs=3, metavar=("MODE", "N", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        mode, n, size = args.worker
        print(json.dumps(_worker(mode, int(n), int(size))))
        return 0
    rows = []
    for size in args.sizes:
        for mode in ("plain-xpub", "publisher"):
            command = [sys.executable, "-m", "tools.bench_subflood", "--worker", mode,
                       str(args.n), str(size)]  # fmt: skip
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "subflood.json").write_text(json.dumps(rows, indent=1) + "\n")
    import zmq

    from tools.machine import describe_machine

    lines = [
        f"Subscription flood, `python -m tools.bench_subflood --n {args.n} --sizes "
        f"{' '.join(map(str, args.sizes))}`: one client, distinct junk prefixes "
        f"({describe_machine()}, libzmq {zmq.zmq_version()}). RSS growth: peak minus before, "
        "one fresh process per row; `publisher` is `streamsep.net.publish.Publisher`, "
        "`plain-xpub` the XPUB configuration it had before (issue 18, defect 6).",
        "",
        "| socket | bytes each | reached the socket | RSS growth (MiB) | seconds |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['mode']} | {r['size_bytes']} | {r['reached_socket']} | {r['rss_growth_mib']} "
        f"| {r['seconds']} |"
        for r in rows
    ]
    (args.out / "subflood.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
