"""Fan-out of live events: 1, 10 and 100 websocket watchers of 10 concurrent operations.

Ten operations emit events at the same time from two producer processes (as two workers
would), through the real EventWriter, at ``--rate`` events/s each. N watchers connect to one
real daphne web process (watcher i follows operation i mod 10) and must each receive every
event of their operation exactly once and in order. For N = 1, 10, 100, embedded (SQLite, the
database-fed follower) and with Redis (channels-redis; PostgreSQL as production would use),
it prints:

* delivered events/s: every event received by every watcher, over the delivery window;
* p50/p99 latency from the producer's commit to a watcher's receipt;
* database queries of the web process per second and per delivered event, counted by a
  counter on Django's cursor in the web process (bench/counting_asgi.py);
* ratios against the same mode's single-watcher run (the baseline) of this same run.

    python bench/bench_fanout.py [--rate 250] [--seconds 10] [--watchers 1,10,100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OPERATIONS = 10


# --- inside a helper process with the mode's environment -------------------------------------


def prepare(count: int) -> None:
    """Migrate, then create a user with a session and ``count`` queued operations; print JSON."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User
    from django.test import Client

    from operations.models import Operation
    from tests.factories import make_cluster

    user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", "", "bench")
    client = Client()
    client.force_login(user)
    stamp = time.time_ns()
    ids = [
        Operation.objects.create(
            cluster=make_cluster(f"fanout-{stamp}-{index}"), kind="prepare-identity", status=Operation.Status.QUEUED
        ).pk
        for index in range(count)
    ]
    print(json.dumps({"operations": ids, "session": client.cookies["sessionid"].value}))


def produce(operation_ids: list[int], rate: float, count: int, timing_file: str) -> None:
    """Emit ``count`` events per operation at ``rate``/s each, one thread per operation, and
    record ``<operation> <first seq> <last seq> <commit time>`` for every committed batch."""
    import django

    django.setup()
    from django.db import connection

    from operations import events as events_module
    from operations.models import Operation
    from operations.services import worker_identity

    lock = threading.Lock()
    timings = open(timing_file, "w")

    def publish(operation_id: int, batch: list[dict]) -> None:
        committed = time.time()
        events_module.publish(operation_id, batch)
        with lock:
            timings.write(f"{operation_id} {batch[0]['seq']} {batch[-1]['seq']} {committed:.6f}\n")

    def run(operation_id: int) -> None:
        Operation.objects.filter(pk=operation_id).update(status=Operation.Status.RUNNING, worker=worker_identity())
        writer = events_module.EventWriter(Operation.objects.get(pk=operation_id), on_publish=publish)
        heartbeat = events_module.Heartbeat(writer)
        heartbeat.start()
        started = time.monotonic()
        for index in range(count):
            delay = started + index / rate - time.monotonic()  # paced, like a chatty command
            if delay > 0:
                time.sleep(delay)
            writer.emit(f"[bench] output line {index} of {count} of operation {operation_id}: lorem ipsum dolor sit")
        writer.flush()
        heartbeat.stop()
        Operation.objects.filter(pk=operation_id).update(status=Operation.Status.SUCCEEDED)
        connection.close()

    threads = [threading.Thread(target=run, args=(operation_id,)) for operation_id in operation_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    timings.close()


# --- the orchestrating process ----------------------------------------------------------------


def helper(env: dict, *args: str, capture: bool = True) -> str:
    result = subprocess.run(
        [sys.executable, str(Path(__file__)), *args], cwd=ROOT, env=env, capture_output=capture, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def queries(address: str, path: str = "queries") -> int:
    import requests

    return requests.get(f"http://{address}/__bench__/{path}", timeout=30).json()["queries"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def watch(address: str, operation_id: int, cookie: str, count: int, received: dict, ready: asyncio.Event):
    import websockets

    async with websockets.connect(
        f"ws://{address}/ws/operations/{operation_id}/?after=0",
        additional_headers={"Cookie": f"sessionid={cookie}"},
        origin=f"http://{address}",
        max_size=None,
    ) as socket:
        ready.set()
        seqs = []
        while len(seqs) < count:
            message = json.loads(await socket.recv())
            now = time.time()
            if message["type"] != "events":
                raise RuntimeError(f"unexpected message {message}")
            for event in message["events"]:
                seqs.append(event["seq"])
                received.setdefault(event["seq"], now)
        if seqs != list(range(1, count + 1)):
            raise RuntimeError(f"watcher of operation {operation_id}: events missing, repeated or out of order")


def run_case(mode: str, env: dict, watchers: int, rate: float, seconds: float, logs: Path, profile: bool) -> dict:
    from tests.support import processes

    if profile:
        env = dict(env, KUBEBOARD_BENCH_PROFILE=str(logs / f"profile-{mode}-{watchers}.pstats"))
    count = int(rate * seconds)
    setup = json.loads(helper(env, "prepare", str(OPERATIONS)).strip().splitlines()[-1])
    ids, cookie = setup["operations"], setup["session"]
    port = processes.free_port()
    web = processes.start(
        f"daphne-{mode}-{watchers}",
        ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "bench.counting_asgi:application"],
        env,
        logs,
    )
    address = f"127.0.0.1:{port}"
    if not processes.wait_listening(web, port, timeout=60):
        raise RuntimeError(f"daphne did not start:\n{web.log()}")
    timing_files = [logs / f"timings-{mode}-{watchers}-{n}.txt" for n in range(2)]
    deliveries: list[dict[int, float]] = []
    try:

        async def scenario() -> tuple[float, int]:
            tasks = []
            for index in range(watchers):
                received: dict[int, float] = {}
                deliveries.append(received)
                ready = asyncio.Event()
                operation_id = ids[index % OPERATIONS]
                tasks.append(asyncio.ensure_future(watch(address, operation_id, cookie, count, received, ready)))
                await asyncio.wait_for(ready.wait(), 30)
            await asyncio.sleep(1.0)  # every watcher registered and replayed (nothing yet)
            before = await asyncio.to_thread(queries, address)
            counted_from = time.time()
            cpu_from = cpu_seconds(web.popen.pid)
            halves = [ids[: OPERATIONS // 2], ids[OPERATIONS // 2 :]]
            producers = [
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(Path(__file__)),
                    "produce",
                    ",".join(map(str, half)),
                    str(rate),
                    str(count),
                    str(timing_files[n]),
                    cwd=ROOT,
                    env=env,
                )
                for n, half in enumerate(halves)
            ]
            await asyncio.wait_for(asyncio.gather(*tasks), seconds * 20 + 120)
            after = await asyncio.to_thread(queries, address, "profile" if profile else "queries")
            counted_for = time.time() - counted_from
            cpu = cpu_seconds(web.popen.pid) - cpu_from
            for producer in producers:
                await producer.wait()
            return after - before, counted_for, cpu

        query_count, counted_for, web_cpu = asyncio.run(scenario())
    finally:
        web.stop()
        if os.environ.get("BENCH_KEEP_LOGS"):
            print(web.log()[-5000:], file=sys.stderr)
    committed: dict[tuple[int, int], float] = {}
    for path in timing_files:
        for line in path.read_text().splitlines():
            operation_id, first, last, at = line.split()
            for seq in range(int(first), int(last) + 1):
                committed[(int(operation_id), seq)] = float(at)
    latencies = []
    # The window opens at the first commit (not at the producers' start-up) and closes at the
    # last receipt.
    started = min(committed.values())
    last_receipt = started
    for index, received in enumerate(deliveries):
        operation_id = ids[index % OPERATIONS]
        for seq, at in received.items():
            latencies.append((at - committed[(operation_id, seq)]) * 1000)
            last_receipt = max(last_receipt, at)
    latencies.sort()
    window = last_receipt - started
    delivered = len(latencies)
    return {
        "mode": mode,
        "watchers": watchers,
        "offered_per_s": OPERATIONS * rate,
        "delivered": delivered,
        "delivered_per_s": delivered / window,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)],
        "queries": query_count,
        "queries_per_s": query_count / counted_for,
        "queries_per_event": query_count / delivered,
        "web_cpu_percent": 100 * web_cpu / counted_for,
    }


def mode_env(data_dir: Path, *, database_url: str = "", redis_url: str = "") -> dict:
    from tests.support import processes

    return processes.kubeboard_env(
        database_url=database_url,
        redis_url=redis_url,
        KUBEBOARD_DATA_DIR=str(data_dir),
        KUBEBOARD_SQLITE_PATH=str(data_dir / "bench.sqlite3"),
        KUBEBOARD_LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=250.0, help="events/s emitted by each of the 10 operations")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the operations emit")
    parser.add_argument("--watchers", default="1,10,100")
    parser.add_argument("--modes", default="embedded,redis")
    parser.add_argument("--redis-database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--profile", help="keep a cProfile of each web process's event loop in this directory")
    args = parser.parse_args()
    counts = [int(n) for n in args.watchers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="kubeboard-bench-fanout-"))
    work.chmod(0o755)  # PostgreSQL's initdb runs as the postgres user
    from tests.support.services import start_postgres, start_redis

    services = []
    results = []
    try:
        for mode in args.modes.split(","):
            if mode == "embedded":
                env = mode_env(work / "embedded")
            else:
                redis = start_redis(work / "redis")
                services.append(redis)
                database_url = ""
                if args.redis_database == "postgres":
                    postgres = start_postgres(work / "pg")
                    services.append(postgres)
                    database_url = postgres.url
                env = mode_env(work / "redis-mode", database_url=database_url, redis_url=redis.url)
            baseline = None
            for watchers in counts:
                row = run_case(mode, env, watchers, args.rate, args.seconds, work / "logs", bool(args.profile))
                baseline = baseline or row
                row["baseline"] = baseline
                results.append(row)
                print(
                    f"  {mode:8} {watchers:4d} watchers: {row['delivered_per_s']:9.0f} deliveries/s, "
                    f"p99 {row['p99_ms']:.0f} ms, {row['queries_per_s']:.1f} queries/s",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for service in services:
            service.stop()
    label = {
        "embedded": "embedded (SQLite, DB-fed follower)",
        "redis": f"Redis (channels-redis, {args.redis_database})",
    }
    print(
        f"10 operations emitting {args.rate:.0f} events/s each for {args.seconds:.0f}s; one daphne web process; "
        "ratios against the same mode's 1-watcher run"
    )
    header = (
        f"{'mode':36} {'watchers':>8} {'delivered/s':>12} {'x 1-watcher':>11} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'queries/s':>9} {'x 1-watcher':>11} {'queries/event':>13}"
    )
    print(header)
    for row in results:
        base = row["baseline"]
        print(
            f"{label.get(row['mode'], row['mode']):36} {row['watchers']:8d} {row['delivered_per_s']:12.0f} "
            f"{row['delivered_per_s'] / base['delivered_per_s']:11.1f} {row['p50_ms']:7.1f} {row['p99_ms']:7.1f} "
            f"{row['queries_per_s']:9.1f} {row['queries_per_s'] / base['queries_per_s']:11.2f} "
            f"{row['queries_per_event']:13.5f} {row['web_cpu_percent']:6.0f}%"
        )
    for mode in args.modes.split(","):
        rows = {row["watchers"]: row for row in results if row["mode"] == mode}
        if 10 in rows and 100 in rows:
            change = rows[100]["queries_per_s"] / rows[10]["queries_per_s"] - 1
            print(f"{label.get(mode, mode)}: queries/s from 10 to 100 watchers: {change:+.0%}")
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        for path in (work / "logs").glob("profile-*.pstats"):
            shutil.copy(path, args.profile)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "prepare":
        prepare(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "produce":
        produce([int(n) for n in sys.argv[2].split(",")], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit(main())
