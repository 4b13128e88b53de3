"""Benchmark of the web monitor: server CPU and memory with N WebSocket clients.

    python -m tools.bench_web [--clients 20] [--seconds 20] [--runs 3] [--out docs/bench]

Each run starts ``python -m streamsep web`` (a subprocess), a publisher of a 16 kHz mono
stream of three topics (orca_vocals, noise, mix) paced in real time (``Publisher`` fed with
synthetic chunks of 50 ms), and ``--clients`` aiohttp WebSocket clients on loopback that ask
for the audio of mix and orca_vocals (the heaviest a browser asks for) and read everything.
It measures the server's CPU seconds per second of stream (``/proc/PID/stat``), its resident
memory at the end (``VmRSS``) and peak (``VmHWM``), messages per client, and the latency from
capture (end of each chunk) to arrival in a client. Reports medians over ``--runs``; writes
``web.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from streamsep.engine.pipeline import OutputChunk
from streamsep.net.publish import Publisher, PublishSettings
from streamsep.web import frames
from tools.machine import describe_machine

RATE = 16000
CHUNK = 800


def _proc(pid: int) -> dict[str, float]:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    out = {"cpu": (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def _publish(publisher: Publisher, seconds: float) -> None:
    rng = np.random.default_rng(0)
    publisher.set_capture_start(time.time_ns())
    start = time.monotonic()
    for index in range(0, int(seconds * RATE), CHUNK):
        time.sleep(max(0.0, start + (index + CHUNK) / RATE - time.monotonic()))
        t = np.arange(index, index + CHUNK) / RATE
        orca = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
        noise = (rng.standard_normal(CHUNK) * 0.05).astype(np.float32)
        stems = np.stack([orca, noise])[:, :, None]
        publisher.write(OutputChunk(index, stems, (orca + noise)[:, None]))
    publisher.close()


async def _clients(url: str, n: int) -> list[dict[str, Any]]:
    import aiohttp

    async def one(session: aiohttp.ClientSession) -> dict[str, Any]:
        count, latencies, ended = 0, [], set()
        async with session.ws_connect(url + "ws") as ws:
            await ws.send_str(json.dumps({"type": "audio", "stems": ["mix", "orca_vocals"]}))
            async for msg in ws:
                count += 1
                if msg.type == aiohttp.WSMsgType.BINARY:
                    latencies.append(time.time() * 1000 - frames.HEADER.unpack_from(msg.data)[7])
                else:
                    body = json.loads(msg.data)
                    if body["type"] == "stream" and body["event"] == "end":
                        ended.add(body["stem"])
                if len(ended) == 3:
                    break
        return {"messages": count, "latencies": latencies}

    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(one(session) for _ in range(n)))


def run_once(n_clients: int, seconds: float, endpoint: str) -> dict[str, float]:
    server = subprocess.Popen(
        [sys.executable, "-m", "streamsep", "web", "--connect", endpoint, "--listen",
         "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip().split(" ", 2)[2]
        publisher = Publisher(
            PublishSettings(endpoints=(endpoint,), end_timeout_seconds=2.0),
            stems=("orca_vocals", "noise"), sample_rate=RATE, n_channels=1,
        )  # fmt: skip
        publisher.start()

        async def main() -> tuple[list[dict[str, Any]], dict[str, float], float]:
            task = asyncio.create_task(_clients(url, n_clients))
            await asyncio.sleep(1.0)
            before = _proc(server.pid)
            t0 = time.monotonic()
            await asyncio.to_thread(_publish, publisher, seconds)
            results = await asyncio.wait_for(task, seconds + 30)
            return results, before, time.monotonic() - t0

        results, before, wall = asyncio.run(main())
        after = _proc(server.pid)
        publisher.wait(5)
        publisher.stop()
    finally:
        server.terminate()
        server.wait(20)
    latencies = np.concatenate([r["latencies"] for r in results])
    return {
        "cpu_per_stream_second": (after["cpu"] - before["cpu"]) / seconds,
        "rss_mib": after["VmRSS"],
        "peak_rss_mib": after["VmHWM"],
        "messages_per_client": statistics.median(r["messages"] for r in results),
        "latency_median_ms": float(np.median(latencies)),
        "latency_p99_ms": float(np.percentile(latencies, 99)),
        "wall_seconds": wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="docs/bench")
    args = parser.parse_args(argv)
    import socket

    runs = []
    for _ in range(args.runs):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
        runs.append(run_once(args.clients, args.seconds, endpoint))
        print(json.dumps(runs[-1]), flush=True)
    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    report = {
        "command": f"python -m tools.bench_web --clients {args.clients} --seconds "
        f"{args.seconds:g} --runs {args.runs}",
        "machine": describe_machine(),
        "clients": args.clients,
        "stream": "16 kHz mono, 3 topics, 50 ms chunks; clients take mix + orca_vocals audio",
        "runs": runs,
        "median": medians,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "web.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(medians, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
