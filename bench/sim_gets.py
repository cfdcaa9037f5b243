"""Simple Graph GETs per second the simulator serves over keep-alive TLS (was `bench/bench_graph_sim.py`).

Client processes (httpx, `concurrency` keep-alive connections each) drive
`GET /v1.0/users/{id}/events/{id}` for `seconds`; the simulator's CPU per request comes from psutil.
Part of `python -m bench` (key `sim_gets_per_s`, goal ≥ 1,500/s); standalone, it starts its own
simulator:

    .venv/bin/python -m bench.sim_gets [--seconds 5] [--clients 1] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

GOAL = 1500


def _client(url: str, token: str, ca: str, seconds: float, start_at: float, concurrency: int, out: Any) -> None:
    if concurrency > 1:
        out.put(asyncio.run(_async_client(url, token, ca, seconds, start_at, concurrency)))
        return
    tls = ssl.create_default_context(cafile=ca)
    with httpx.Client(verify=tls, trust_env=False, headers={"Authorization": f"Bearer {token}"}) as c:
        c.get(url).raise_for_status()  # warm the connection (TLS handshake) before timing
        request = c.build_request("GET", url)  # built once: the client's own per-call cost stays small
        while time.time() < start_at:
            time.sleep(0.001)
        n = errors = 0
        deadline = start_at + seconds
        while time.time() < deadline:
            r = c.send(request)
            r.read()
            if r.status_code == 200:
                n += 1
            else:
                errors += 1
        out.put((n, errors))


async def _async_client(
    url: str, token: str, ca: str, seconds: float, start_at: float, concurrency: int
) -> tuple[int, int]:
    """`concurrency` keep-alive connections from one process, so client and server work overlap."""
    tls = ssl.create_default_context(cafile=ca)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        verify=tls, trust_env=False, limits=limits, headers={"Authorization": f"Bearer {token}"}
    ) as c:
        await asyncio.gather(*[c.get(url) for _ in range(concurrency)])  # open the connections
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = start_at + seconds
        counts = [0, 0]

        async def worker() -> None:
            request = c.build_request("GET", url)
            while time.time() < deadline:
                r = await c.send(request)
                counts[0 if r.status_code == 200 else 1] += 1

        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return counts[0], counts[1]


def measure(
    url: str, token: str, ca: str, server_pid: int, *, seconds: float = 5.0, clients: int = 1, concurrency: int = 1
) -> dict[str, Any]:
    """GETs per second from `clients` processes, and the server's CPU per request."""
    ctx = mp.get_context("spawn")  # the caller may run threads and an event loop: never fork it
    out = ctx.Queue()
    start_at = time.time() + 2.0  # spawned interpreters need a moment to import httpx
    procs = [
        ctx.Process(target=_client, args=(url, token, ca, seconds, start_at, concurrency, out)) for _ in range(clients)
    ]
    server = psutil.Process(server_pid)
    for p in procs:
        p.start()
    time.sleep(max(0.0, start_at - time.time()))
    cpu_before = server.cpu_times()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    cpu_after = server.cpu_times()
    for p in procs:
        p.join()
    total = sum(n for n, _ in results)
    errors = sum(e for _, e in results)
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    cpu_us = cpu / max(total + errors, 1) * 1e6
    return {
        "gets_per_second": round(total / seconds, 1),
        "requests": total,
        "errors": errors,
        "clients": clients,
        "connections_per_client": concurrency,
        "seconds": seconds,
        "server_cpu_us_per_request": round(cpu_us),
        "goal": GOAL,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--concurrency", type=int, default=1, help="connections per client process")
    args = parser.parse_args()

    from bench.baselines import sim_event_url
    from bench.stack import SERVICES, Stack

    workdir = Path(tempfile.mkdtemp(prefix="graph-sim-bench-"))
    stack = Stack(workdir, "sim", without=SERVICES)
    stack.start()
    try:
        url, token = asyncio.run(sim_event_url(stack))
        result = measure(
            url,
            token,
            str(stack.ca_path),
            stack.pid("graph-sim"),
            seconds=args.seconds,
            clients=args.clients,
            concurrency=args.concurrency,
        )
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    cpu_us = result["server_cpu_us_per_request"]
    print(
        f"graph simulator: {result['gets_per_second']:,.0f} GETs/s over keep-alive TLS "
        f"({args.clients} client process(es) x {args.concurrency} connection(s), {args.seconds:.0f} s, "
        f"{result['errors']} errors; goal >= {GOAL:,}/s)"
    )
    print(
        f"server CPU per request: {cpu_us:,} us, i.e. one core could serve ~{1e6 / max(cpu_us, 1):,.0f} GETs/s "
        f"(load average now {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; the clients share them)"
    )
    print(json.dumps({**result, "load_average": round(os.getloadavg()[0], 2), "ok": result["gets_per_second"] >= GOAL}))


if __name__ == "__main__":
    main()
