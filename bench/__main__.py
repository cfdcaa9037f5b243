"""`make bench` / `python -m bench`: the benchmark suite, against bare I/O measured in the same run.

    python -m bench                          # full profile, about 9 minutes on 2 cores
    python -m bench --profile smoke          # seconds: proves the harness (tests/bench)
    python -m bench --only e2e,core          # some scenarios (intake, e2e, core, initial, incremental)
    python -m bench --py-spy sync-core       # also record py-spy profiles of those services per scenario
    python -m bench --trace                  # also export spans to an in-process sink: latency by span
                                             # (costs the services CPU: figures are then marked traced)
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python -m bench --only e2e
                                             # the services on PostgreSQL (new databases per stack,
                                             # dropped at its end; the server's CPU is counted)

Prints every figure (median, p99) with its goal, and writes `bench/results/latest.json`
(see docs/benchmarks.md for what each figure measures and how).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import baselines, core, e2e, incremental, initial, machine, seed, sim_gets, webhook
from bench.profiling import Recorder, summarize
from bench.spans import SpanSink
from bench.stack import DATABASE_URL, RssSampler, Stack
from bench.stats import ratio

RESULTS = Path("bench/results/latest.json")
# Where each run keeps its databases, logs and profiles (`var/` is not versioned).
VAR = Path(os.environ.get("BENCH_VAR_DIR", "var/bench"))
SCENARIOS = ("intake", "e2e", "core", "initial", "incremental")
# The machine's cores: what the services, the broker and the simulator share.
CORES = os.cpu_count() or 1

# Goals of issue 10: key → (operator, goal).
GOALS: dict[str, tuple[str, float]] = {
    "webhook_notifications_per_s": (">=", 3000),
    "webhook_p99_ms": ("<=", 50),
    "e2e_outlook_to_erp_p50_ms": ("<=", 150),
    "e2e_outlook_to_erp_p99_ms": ("<=", 1000),
    "e2e_erp_to_outlook_p50_ms": ("<=", 150),
    "e2e_erp_to_outlook_p99_ms": ("<=", 1000),
    "core_items_per_s": (">=", 1000),
    "initial_sync_s": ("<=", 60),
    "incremental_cost_ratio_50k_vs_1k": ("<=", 1.5),
    "max_rss_mb": ("<=", 150),
    "sim_gets_per_s": (">=", sim_gets.GOAL),
}


@dataclass(frozen=True)
class Profile:
    """Sizes and time budgets of one run."""

    name: str
    roundtrips: int = 500
    gets: int = 500
    publish_s: float = 4.0
    sim_gets_s: float = 5.0
    webhook_users: int = 20
    webhook_s: float = 9.0
    webhook_batch: int = 10
    webhook_connections: int = 4
    webhook_rounds: int = 3
    # sync-core's consumer processes (SYNC_CORE_WORKERS, ADR 0055): one per core of this machine.
    sync_core_workers: int = 2
    e2e_users: int = 20
    e2e_rate: float = 200.0
    e2e_s: float = 8.0
    e2e_drain_s: float = 60.0
    core_users: int = 20
    core_sizes: dict[str, int] = field(
        default_factory=lambda: {"events": 20, "contacts": 10, "tasks": 10, "erp_meetings": 10, "erp_todos": 10}
    )
    core_budget_s: float = 75.0
    initial_events: int = 10_000
    initial_contacts: int = 5_000
    initial_budget_s: float = 100.0
    incremental_small: int = 1_000
    incremental_large: int = 50_000
    incremental_probes: int = 10
    # One stack for every scenario (quicker, less isolated): the smoke profile.
    shared_stack: bool = False
    # Past this many seconds, scenarios not started yet are skipped (the suite must end within 10 minutes).
    deadline_s: float = 560.0


PROFILES = {
    "full": Profile("full"),
    "smoke": Profile(
        "smoke",
        roundtrips=50,
        gets=50,
        publish_s=0.5,
        sim_gets_s=0.0,  # spawning its client process costs more than the smoke run can spare
        webhook_users=2,
        webhook_s=0.6,
        webhook_connections=2,
        webhook_rounds=1,
        e2e_users=2,
        e2e_rate=20.0,
        e2e_s=1.0,
        e2e_drain_s=20.0,
        core_users=2,
        core_sizes={"events": 2, "contacts": 1, "tasks": 1, "erp_meetings": 1, "erp_todos": 2},
        core_budget_s=20.0,
        initial_events=20,
        initial_contacts=10,
        initial_budget_s=20.0,
        incremental_small=10,
        incremental_large=50,
        incremental_probes=1,
        shared_stack=True,
        deadline_s=50.0,
    ),
}


class Run:
    """One invocation: its folder, its stacks, the figures gathered so far."""

    def __init__(self, profile: Profile, args: argparse.Namespace) -> None:
        self.profile = profile
        self.args = args
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.dir = (VAR / f"{stamp}-{uuid.uuid4().hex[:4]}").resolve()
        self.rss = RssSampler()
        self.details: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.started = time.monotonic()
        self.sink = SpanSink() if args.trace else None
        self.spy = Recorder(self.dir / "profiles") if args.py_spy else None
        self._shared: Stack | None = None

    def stack(self, name: str, *, without: tuple[str, ...] = ()) -> Stack:
        env = {
            "GRAPH_SIM_NOTIFICATION_HISTORY_SIZE": "200000",
            "SYNC_CORE_WORKERS": str(self.profile.sync_core_workers),
        }
        if self.sink is not None:
            env.update(self.sink.env())
        if self.profile.shared_stack:
            if self._shared is None:
                self._shared = self._start(Stack(self.dir, "shared", self.rss, env_overrides=env))
            return self._shared
        return self._start(Stack(self.dir, name, self.rss, env_overrides=env, without=without))

    @staticmethod
    def _start(stack: Stack) -> Stack:
        t0 = time.monotonic()
        stack.start()
        say(
            f"stack {stack.name} up in {time.monotonic() - t0:.1f}s (ports {stack.sim_port}, {stack.erp_port}, "
            f"{stack.webhook_port}, {stack.sync_port}; AMQP prefix {stack.prefix})"
        )
        return stack

    def release(self, stack: Stack) -> None:
        if stack is not self._shared:
            stack.stop()

    def close(self) -> None:
        if self._shared is not None:
            self._shared.stop()

    def scenario(self, name: str, stack: Stack, fn: Callable[[], Any]) -> Any:
        """Run one measurement, with py-spy and span capture around it when asked; errors are kept, not raised."""
        if time.monotonic() - self.started > self.profile.deadline_s:
            self.errors[name] = "skipped: the run's time budget was spent"
            say(f"{name}: skipped (time budget)")
            return None
        say(f"{name} …")
        t0 = time.monotonic()
        since = time.time_ns()
        if self.spy is not None:
            wanted = [s for s in self.args.py_spy.split(",") if s in stack.sup.procs]
            self.spy.start(name, {s: stack.pid(s) for s in wanted})
        try:
            result = fn()
        except Exception as exc:
            self.errors[name] = f"{type(exc).__name__}: {exc}"[:500]
            say(f"{name}: FAILED {self.errors[name]}")
            traceback.print_exc()
            for service in ("sync-core", "erp-connector", "graph-webhook"):
                tail = stack.log_tail(service, 5)
                if tail:
                    print(f"--- {service} log tail\n{tail}", file=sys.stderr)
            result = None
        finally:
            if self.spy is not None:
                for path in self.spy.stop():
                    top = summarize(path, top=12)
                    self.details.setdefault("py_spy", {})[path.name] = top["inclusive"]
                    say(f"  py-spy: {path}")
        if self.sink is not None:
            self.details.setdefault("spans", {})[name] = self.sink.breakdown(since)[:40]
        say(f"{name}: done in {time.monotonic() - t0:.0f}s")
        return result


def say(text: str) -> None:
    print(f"» {text}", flush=True)


def _intake(run: Run) -> None:
    p = run.profile
    stack = run.stack("intake", without=("sync-core",))
    try:
        run.details["baseline_start"] = run.scenario(
            "baseline",
            stack,
            lambda: asyncio.run(
                baselines.measure(
                    stack,
                    roundtrips=p.roundtrips,
                    gets=p.gets,
                    publish_seconds=p.publish_s,
                    batch=p.webhook_batch,
                    concurrency=p.webhook_connections,
                )
            ),
        )

        def gets() -> dict[str, Any]:
            url, token = asyncio.run(baselines.sim_event_url(stack))
            return sim_gets.measure(url, token, str(stack.ca_path), stack.pid("graph-sim"), seconds=p.sim_gets_s)

        if p.sim_gets_s > 0:
            run.details["sim_gets"] = run.scenario("sim-gets", stack, gets)
        run.details["webhook"] = run.scenario(
            "webhook",
            stack,
            lambda: asyncio.run(
                webhook.run(
                    stack,
                    users=p.webhook_users,
                    seconds=p.webhook_s,
                    batch=p.webhook_batch,
                    connections=p.webhook_connections,
                    rounds=p.webhook_rounds,
                )
            ),
        )
    finally:
        run.release(stack)


def _e2e_and_core(run: Run, only: set[str]) -> None:
    p = run.profile
    stack = run.stack("e2e")
    try:
        if "e2e" in only:

            async def setup() -> list[seed.User]:
                await seed.add_partners(stack)
                users = await seed.add_users(stack, p.e2e_users, group="E")
                await seed.wait_caught_up(stack, [u.email for u in users])
                return users

            users = asyncio.run(setup())
            slots = e2e.Slots()

            def direction(fn: Any) -> dict[str, Any]:
                meter = stack.cpu_meter()
                meter.start()
                result = dict(
                    asyncio.run(fn(stack, users, slots, rate=p.e2e_rate, seconds=p.e2e_s, drain_s=p.e2e_drain_s))
                )
                meter.stop()
                result["cpu_s"] = meter.used
                result["cpu_ms_per_change"] = meter.per_item_ms(int(result.get("through") or 0))
                return result

            run.details["e2e_outlook_to_erp"] = run.scenario(
                "e2e-outlook-to-erp", stack, lambda: direction(e2e.outlook_to_erp)
            )
            run.details["e2e_erp_to_outlook"] = run.scenario(
                "e2e-erp-to-outlook", stack, lambda: direction(e2e.erp_to_outlook)
            )
        if "core" in only:
            if "e2e" not in only:
                asyncio.run(seed.add_partners(stack))
            run.details["core"] = run.scenario(
                "core",
                stack,
                lambda: asyncio.run(core.run(stack, users=p.core_users, sizes=p.core_sizes, budget_s=p.core_budget_s)),
            )
    finally:
        run.release(stack)


def _initial(run: Run) -> None:
    p = run.profile
    stack = run.stack("initial")
    try:
        asyncio.run(seed.add_partners(stack))
        budget = 3600.0 if run.args.initial_full else p.initial_budget_s
        run.details["initial"] = run.scenario(
            "initial",
            stack,
            lambda: asyncio.run(
                initial.run(stack, events=p.initial_events, contacts=p.initial_contacts, budget_s=budget)
            ),
        )
    finally:
        run.release(stack)


def _incremental(run: Run) -> None:
    p = run.profile
    stack = run.stack("incremental")
    try:
        run.details["incremental"] = run.scenario(
            "incremental",
            stack,
            lambda: asyncio.run(
                incremental.run(
                    stack, small=p.incremental_small, large=p.incremental_large, probes=p.incremental_probes
                )
            ),
        )
        # Bare I/O again at the end: the ratios use both ends of the run, so drift shows.
        run.details["baseline_end"] = run.scenario(
            "baseline-end",
            stack,
            lambda: asyncio.run(
                baselines.measure(
                    stack,
                    roundtrips=p.roundtrips,
                    gets=p.gets,
                    publish_seconds=p.publish_s,
                    batch=p.webhook_batch,
                    concurrency=p.webhook_connections,
                )
            ),
        )
    finally:
        run.release(stack)


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _mean(*values: Any) -> float | None:
    nums = [float(v) for v in values if isinstance(v, int | float)]
    return round(sum(nums) / len(nums), 3) if nums else None


def _sum(*values: float | None) -> float | None:
    return None if any(v is None for v in values) else round(sum(float(v) for v in values if v is not None), 1)


def figures(run: Run) -> dict[str, Any]:
    """The flat figures of latest.json: the issue's keys, the bare-I/O baselines, the overhead ratios."""
    d = run.details
    b0, b1 = d.get("baseline_start"), d.get("baseline_end")
    amqp_p50 = _mean(_get(b0, "amqp", "roundtrip_ms", "p50"), _get(b1, "amqp", "roundtrip_ms", "p50"))
    amqp_p99 = _mean(_get(b0, "amqp", "roundtrip_ms", "p99"), _get(b1, "amqp", "roundtrip_ms", "p99"))
    wh = d.get("webhook")
    # Raw publishing alternated with the webhook's rounds when there were any; else the start/end baselines.
    publish = _get(wh, "raw_publish", "messages_per_s") or _mean(
        _get(b0, "amqp", "confirmed_publish", "messages_per_s"), _get(b1, "amqp", "confirmed_publish", "messages_per_s")
    )
    publish_p99 = _get(wh, "raw_publish", "batch_latency_ms", "p99") or _mean(
        _get(b0, "amqp", "confirmed_publish", "batch_latency_ms", "p99"),
        _get(b1, "amqp", "confirmed_publish", "batch_latency_ms", "p99"),
    )
    get_p50 = _mean(_get(b0, "http", "get_ms", "p50"), _get(b1, "http", "get_ms", "p50"))
    get_p99 = _mean(_get(b0, "http", "get_ms", "p99"), _get(b1, "http", "get_ms", "p99"))
    bare_hop = (amqp_p50 or 0) + (get_p50 or 0) or None
    unit_costs = {
        "get_client_us": _mean(_get(b0, "http", "client_cpu_us_per_get"), _get(b1, "http", "client_cpu_us_per_get")),
        "get_server_us": _mean(_get(b0, "http", "server_cpu_us_per_get"), _get(b1, "http", "server_cpu_us_per_get")),
        "amqp_client_us": _mean(
            _get(b0, "amqp", "client_cpu_us_per_message"), _get(b1, "amqp", "client_cpu_us_per_message")
        ),
        "amqp_broker_us": _mean(
            _get(b0, "amqp", "broker_cpu_us_per_message"), _get(b1, "amqp", "broker_cpu_us_per_message")
        ),
    }
    o2e, e2o = d.get("e2e_outlook_to_erp"), d.get("e2e_erp_to_outlook")
    core_rate = _get(d.get("core"), "sustained_items_per_s")

    def cpu_total(result: Any, key: str = "cpu_ms_per_change") -> float | None:
        used = _get(result, key)
        if not isinstance(used, dict):
            return None
        return round(sum(float(v) for k, v in used.items() if k != "bench-client"), 2)

    o2e_cpu, e2o_cpu = cpu_total(o2e), cpu_total(e2o)
    core_cpu_total = cpu_total(d.get("core"), "cpu_ms_per_item")
    core_floor = cpu_floor_ms(_get(d.get("core"), "requests_per_item"), unit_costs)
    o2e_floor = cpu_floor_ms(_get(o2e, "requests_per_change"), unit_costs)
    e2o_floor = cpu_floor_ms(_get(e2o, "requests_per_change"), unit_costs)
    out: dict[str, Any] = {
        "webhook_notifications_per_s": _get(wh, "loaded", "notifications_per_s"),
        "webhook_p99_ms": _get(wh, "loaded", "post_ms", "p99"),
        "e2e_outlook_to_erp_p50_ms": _get(o2e, "latency_ms", "p50"),
        "e2e_outlook_to_erp_p99_ms": _get(o2e, "latency_ms", "p99"),
        "e2e_erp_to_outlook_p50_ms": _get(e2o, "latency_ms", "p50"),
        "e2e_erp_to_outlook_p99_ms": _get(e2o, "latency_ms", "p99"),
        "core_items_per_s": core_rate,
        "initial_sync_s": _get(d.get("initial"), "initial_sync_s"),
        "incremental_cost_ratio_50k_vs_1k": _get(d.get("incremental"), "ratio"),
        "max_rss_mb": round(max(run.rss.peak_mb.values()), 1) if run.rss.peak_mb else None,
        # Bare I/O, same run (mean of the start and end measurements).
        "baseline_amqp_roundtrip_p50_ms": amqp_p50,
        "baseline_amqp_roundtrip_p99_ms": amqp_p99,
        "baseline_amqp_confirmed_publish_per_s": publish,
        "baseline_amqp_confirmed_batch_p99_ms": publish_p99,
        "baseline_http_get_p50_ms": get_p50,
        "baseline_http_get_p99_ms": get_p99,
        "baseline_http_get_cpu_us": _sum(unit_costs["get_client_us"], unit_costs["get_server_us"]),
        "baseline_amqp_message_cpu_us": _sum(unit_costs["amqp_client_us"], unit_costs["amqp_broker_us"]),
        "sim_gets_per_s": _get(d.get("sim_gets"), "gets_per_second"),
        # Overhead ratios: the product's figure over bare I/O doing the same transport work.
        "webhook_throughput_ratio_raw_publish_over_webhook": ratio(publish, _get(wh, "loaded", "notifications_per_s")),
        "webhook_p99_ratio_over_raw_batch_p99": ratio(_get(wh, "loaded", "post_ms", "p99"), publish_p99),
        "webhook_single_p50_ms": _get(wh, "single", "post_ms", "p50"),
        "webhook_single_p50_ratio_over_bare_hop": ratio(_get(wh, "single", "post_ms", "p50"), bare_hop),
        "e2e_outlook_to_erp_p50_ratio_over_bare_hop": ratio(_get(o2e, "latency_ms", "p50"), bare_hop),
        "e2e_erp_to_outlook_p50_ratio_over_bare_hop": ratio(_get(e2o, "latency_ms", "p50"), bare_hop),
        # CPU per change of every process (bench client excluded) against the bare-I/O CPU of the same traffic.
        "e2e_outlook_to_erp_cpu_ms_per_change": o2e_cpu,
        "e2e_outlook_to_erp_cpu_floor_ms_per_change": o2e_floor,
        "e2e_outlook_to_erp_cpu_ratio_over_floor": ratio(o2e_cpu, o2e_floor),
        "e2e_erp_to_outlook_cpu_ms_per_change": e2o_cpu,
        "e2e_erp_to_outlook_cpu_floor_ms_per_change": e2o_floor,
        "e2e_erp_to_outlook_cpu_ratio_over_floor": ratio(e2o_cpu, e2o_floor),
        "core_ms_per_item": round(1000 / core_rate, 2) if core_rate else None,
        "core_ms_per_item_ratio_over_bare_hop": ratio(1000 / core_rate if core_rate else None, bare_hop),
        # The same for the core drain, and the rate its bare I/O alone would allow with every core busy.
        "core_cpu_ms_per_item": core_cpu_total,
        "core_cpu_floor_ms_per_item": core_floor,
        "core_cpu_ratio_over_floor": ratio(core_cpu_total, core_floor),
        "core_items_per_s_at_cpu_floor": round(1000 * CORES / core_floor, 1) if core_floor else None,
    }
    return out


def cpu_floor_ms(requests: dict[str, float] | None, baseline: dict[str, Any | None]) -> float | None:
    """Bare-I/O CPU of one change's traffic: its HTTP requests and messages at the cost of raw httpx and aio-pika.

    HTTP: client + server CPU of a raw GET against the simulator (the ERP's requests are priced the same:
    both are uvicorn apps). Messages: client + broker CPU of a raw confirmed publish → consume → ack.
    """
    if not requests:
        return None
    http = (baseline.get("get_client_us") or 0) + (baseline.get("get_server_us") or 0)
    message = (baseline.get("amqp_client_us") or 0) + (baseline.get("amqp_broker_us") or 0)
    calls = sum(v for k, v in requests.items() if k.startswith(("graph ", "erp ")))
    messages = sum(v for k, v in requests.items() if k.startswith("messages "))
    return round((calls * http + messages * message) / 1000, 2)


def goals(fig: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, (op, goal) in GOALS.items():
        value = fig.get(key)
        met = None if value is None else (value >= goal if op == ">=" else value <= goal)
        out[key] = {"goal": f"{op} {goal:g}", "value": value, "met": met}
    return out


def print_table(fig: dict[str, Any], checked: dict[str, Any]) -> None:
    print("\nfigure                                              value        goal       met")
    for key, value in fig.items():
        goal = checked.get(key)
        shown = "—" if value is None else f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
        mark = "" if goal is None else ("yes" if goal["met"] else "NO" if goal["met"] is False else "?")
        print(f"{key:50}  {shown:>11}  {(goal or {}).get('goal', ''):>9}  {mark}")


def print_cpu(details: dict[str, Any]) -> None:
    """CPU milliseconds per change (or item), per process: where the two cores went."""
    rows = {
        "e2e outlook→erp": _get(details, "e2e_outlook_to_erp", "cpu_ms_per_change"),
        "e2e erp→outlook": _get(details, "e2e_erp_to_outlook", "cpu_ms_per_change"),
        "core": _get(details, "core", "cpu_ms_per_item"),
        "initial": _get(details, "initial", "cpu_ms_per_item"),
    }
    rows = {k: v for k, v in rows.items() if isinstance(v, dict)}
    if not rows:
        return
    names = sorted({n for v in rows.values() for n in v})
    print("\nCPU ms per change   " + "".join(f"{n[:13]:>14}" for n in names) + "         total")
    for label, used in rows.items():
        total = sum(float(used.get(n, 0.0)) for n in names if n != "bench-client")
        print(f"{label:19} " + "".join(f"{used.get(n, 0.0):>14.2f}" for n in names) + f"  {total:>12.2f}")
    print("(total: every process but the bench's own client; 2 cores give 2,000 CPU ms per second)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--only", help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--py-spy", help="comma-separated services to record with py-spy, e.g. sync-core,erp-connector")
    parser.add_argument("--trace", action="store_true", help="export spans to the bench and report latency by span")
    parser.add_argument("--initial-full", action="store_true", help="run the initial sync to the end, however long")
    parser.add_argument(
        "--e2e-rate",
        type=float,
        help="changes/s offered in the e2e scenarios instead of the profile's (diagnosis: where the latency knee is;"
        " the goals are for 200/s)",
    )
    parser.add_argument("--sync-core-workers", type=int, help="SYNC_CORE_WORKERS of the stacks (default: profile's)")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    if args.e2e_rate:
        profile = replace(profile, e2e_rate=args.e2e_rate)
    if args.sync_core_workers:
        profile = replace(profile, sync_core_workers=args.sync_core_workers)
    only = set((args.only or ",".join(SCENARIOS)).split(","))
    unknown = only - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")

    run = Run(profile, args)
    run.dir.mkdir(parents=True, exist_ok=True)
    at_start = machine.describe()
    cpus = f"{at_start['nproc']} × {at_start['cpu_model']}"
    say(f"bench {profile.name}: {run.dir} — {cpus}, load {at_start['load_average']}")
    run.rss.start()
    with ExitStack() as cleanup:
        if run.sink is not None:
            run.sink.start()
            cleanup.callback(run.sink.stop)
        cleanup.callback(run.close)
        cleanup.callback(run.rss.stop)
        if "intake" in only:
            _intake(run)
        if only & {"e2e", "core"}:
            _e2e_and_core(run, only)
        if "initial" in only:
            _initial(run)
        if "incremental" in only:
            _incremental(run)
    fig = figures(run)
    checked = goals(fig)
    result = {
        **fig,
        "goals": checked,
        "profile": profile.name,
        "traced": bool(args.trace),
        "scenarios": sorted(only),
        "errors": run.errors,
        "elapsed_s": round(time.monotonic() - run.started, 1),
        "machine": {"start": at_start, "end": machine.describe()},
        "settings": asdict(profile) | {"database": "postgresql" if DATABASE_URL else "sqlite"},
        "rss_peak_mb": {k: round(v, 1) for k, v in run.rss.peak_mb.items()},
        "rss_peak_total_mb": {k: round(v, 1) for k, v in run.rss.peak_total_mb.items()},
        "details": run.details,
        "run_dir": str(run.dir),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    (run.dir / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print_table(fig, checked)
    print_cpu(run.details)
    end_load = result["machine"]["end"]["load_average"]
    say(f"wrote {args.out} ({result['elapsed_s']:.0f}s, load at end {end_load})")
    if run.errors:
        say(f"errors: {run.errors}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
