"""Benchmark: simple Graph GETs per second the simulator serves over keep-alive TLS.

Runs `python -m graph_sim` in a subprocess on a free port, seeds one user and one event, then drives
GET /v1.0/users/{id}/events/{id} from client processes (httpx, one keep-alive connection each).
Prints the figure; the last stdout line is JSON: {"gets_per_second": ..., ...}. Goal: >= 1,500/s.

    .venv/bin/python bench/bench_graph_sim.py [--seconds 5] [--clients 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

GOAL = 1500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tls(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def _client(url: str, token: str, ca: str, seconds: float, start_at: float, concurrency: int,
            out: mp.Queue) -> None:  # type: ignore[type-arg]
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


async def _async_client(url: str, token: str, ca: str, seconds: float, start_at: float,
                        concurrency: int) -> tuple[int, int]:
    """`concurrency` keep-alive connections from one process, so client and server work overlap."""
    tls = ssl.create_default_context(cafile=ca)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(verify=tls, trust_env=False, limits=limits,
                                 headers={"Authorization": f"Bearer {token}"}) as c:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--concurrency", type=int, default=1, help="connections per client process")
    args = parser.parse_args()

    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="graph-sim-bench-"))
    ca = workdir / "ca.pem"
    env = {**os.environ, "GRAPH_SIM_PORT": str(port), "GRAPH_SIM_CA_PATH": str(ca)}
    server = subprocess.Popen([sys.executable, "-m", "graph_sim"], env=env, cwd=workdir,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = f"https://127.0.0.1:{port}"
    try:
        deadline = time.time() + 20
        while True:
            try:
                if ca.exists() and httpx.get(f"{root}/_sim/stats", verify=_tls(ca), trust_env=False).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise SystemExit("simulator did not start")
            time.sleep(0.1)
        with httpx.Client(base_url=root, verify=_tls(ca), trust_env=False) as c:
            user = c.post("/_sim/users", json={"userPrincipalName": "bench@contoso.example"}).json()
            tenant = "00000000-0000-0000-0000-0000000000aa"
            token = c.post(f"/{tenant}/oauth2/v2.0/token", data={
                "grant_type": "client_credentials", "client_id": "11111111-1111-1111-1111-111111111111",
                "client_secret": "demo-secret-change-me", "scope": "https://graph.microsoft.com/.default",
            }).json()["access_token"]
            event = c.post(f"/v1.0/users/{user['id']}/events", headers={"Authorization": f"Bearer {token}"}, json={
                "subject": "bench", "start": {"dateTime": "2030-01-01T10:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2030-01-01T11:00:00", "timeZone": "UTC"}}).json()
        url = f"{root}/v1.0/users/{user['id']}/events/{event['id']}"
        out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
        start_at = time.time() + 1.0
        work = (url, token, str(ca), args.seconds, start_at, args.concurrency, out)
        procs = [mp.Process(target=_client, args=work)
                 for _ in range(args.clients)]
        server_proc = psutil.Process(server.pid)
        for p in procs:
            p.start()
        time.sleep(max(0.0, start_at - time.time()))
        cpu_before = server_proc.cpu_times()
        results = [out.get(timeout=args.seconds + 30) for _ in procs]
        cpu_after = server_proc.cpu_times()
        for p in procs:
            p.join()
    finally:
        server.terminate()
        server.wait(10)
    total = sum(n for n, _ in results)
    errors = sum(e for _, e in results)
    rate = total / args.seconds
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    cpu_us = cpu / max(total + errors, 1) * 1e6
    print(f"graph simulator: {rate:,.0f} GETs/s over keep-alive TLS "
          f"({args.clients} client process(es) x {args.concurrency} connection(s), {args.seconds:.0f} s, "
          f"{errors} errors; goal >= {GOAL:,}/s)")
    print(f"server CPU per request: {cpu_us:,.0f} us, i.e. one core could serve ~{1e6 / cpu_us:,.0f} GETs/s "
          f"(load average now {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; the clients share them)")
    print(json.dumps({"gets_per_second": round(rate, 1), "requests": total, "errors": errors,
                      "clients": args.clients, "connections_per_client": args.concurrency,
                      "seconds": args.seconds, "server_cpu_us_per_request": round(cpu_us),
                      "load_average": round(os.getloadavg()[0], 2), "goal": GOAL, "ok": rate >= GOAL}))


if __name__ == "__main__":
    main()
