"""Event pipeline throughput and latency: worker process -> database -> websocket client.

For N events (default 10,000) emitted by a separate worker process through the real
EventWriter, prints events/s stored and delivered to a websocket client connected to a real
daphne server, and p50/p99 latency from commit to receipt — in the embedded mode (SQLite,
database-fed live feed) and with Redis (channels-redis). The baseline, measured in the same
run, is the naive pipeline: one transaction and one publish per event.

    python bench/bench_events.py [--events 10000] [--baseline-events 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import setup_django  # noqa: E402  (ROOT is on sys.path now)


def new_operation(name: str):
    from django.contrib.auth.models import User

    from operations.models import Operation
    from tests.factories import make_cluster

    user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", "", "bench")
    cluster = make_cluster(name)
    return user, Operation.objects.create(cluster=cluster, kind="prepare-identity", status=Operation.Status.QUEUED)


def session_key(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def receive(ws_url: str, cookie: str, origin: str, count: int, received: dict, ready: asyncio.Event) -> None:
    import websockets

    async with websockets.connect(
        ws_url, additional_headers={"Cookie": f"sessionid={cookie}"}, origin=origin, max_size=None
    ) as socket:
        ready.set()
        while len(received) < count:
            message = json.loads(await socket.recv())
            now = time.time()
            if message["type"] == "events":
                for event in message["events"]:
                    received[event["seq"]] = now


def run_case(label: str, *, count: int, redis_url: str, naive: bool, data_dir: Path, logs: Path) -> dict:
    from tests.support import processes

    user, operation = new_operation(f"bench-{label}".replace(" ", "-").replace("(", "").replace(")", "").lower()[:60])
    env = processes.kubeboard_env(redis_url=redis_url, KUBEBOARD_DATA_DIR=str(data_dir))
    web, address = processes.start_web(env, logs)
    timing_file = logs / f"timings-{operation.pk}.txt"
    received: dict[int, float] = {}
    cookie = session_key(user)
    try:

        async def scenario() -> float:
            ready = asyncio.Event()
            receiver = asyncio.ensure_future(
                receive(
                    f"ws://{address}/ws/operations/{operation.pk}/?after=0",
                    cookie,
                    f"http://{address}",
                    count,
                    received,
                    ready,
                )
            )
            await asyncio.wait_for(ready.wait(), 30)
            started = time.time()
            producer = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.event_producer",
                "--operation",
                str(operation.pk),
                "--count",
                str(count),
                "--timing-file",
                str(timing_file),
                *(["--naive"] if naive else []),
                cwd=ROOT,
                env=env,
            )
            await asyncio.wait_for(receiver, 600)
            await producer.wait()
            return started

        started = asyncio.run(scenario())
    finally:
        web.stop()
    committed: dict[int, float] = {}
    for line in timing_file.read_text().splitlines():
        first, last, at = line.split()
        for seq in range(int(first), int(last) + 1):
            committed[seq] = float(at)
    assert sorted(received) == list(range(1, count + 1)), "every event delivered exactly once"
    latencies = sorted((received[seq] - committed[seq]) * 1000 for seq in received)
    return {
        "label": label,
        "events": count,
        "stored_per_s": count / (max(committed.values()) - started),
        "delivered_per_s": count / (max(received.values()) - started),
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--baseline-events", type=int, default=2_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kubeboard-bench-"))
    setup_django(work)
    from tests.support.services import start_redis

    redis = start_redis(work / "redis")
    results = []
    try:
        for label, redis_url in (("embedded (SQLite, DB feed)", ""), ("Redis (channels-redis)", redis.url)):
            base = run_case(
                f"{label} naive",
                count=args.baseline_events,
                redis_url=redis_url,
                naive=True,
                data_dir=work,
                logs=work / "logs",
            )
            best = run_case(
                label, count=args.events, redis_url=redis_url, naive=False, data_dir=work, logs=work / "logs"
            )
            best["baseline_delivered_per_s"] = base["delivered_per_s"]
            results.extend([base, best])
    finally:
        redis.stop()
    print(f"{'case':36} {'events':>7} {'stored/s':>10} {'delivered/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'x naive':>8}")
    for row in results:
        ratio = row["delivered_per_s"] / row["baseline_delivered_per_s"] if "baseline_delivered_per_s" in row else 1.0
        print(
            f"{row['label']:36} {row['events']:7d} {row['stored_per_s']:10.0f} {row['delivered_per_s']:12.0f} "
            f"{row['p50_ms']:8.1f} {row['p99_ms']:8.1f} {ratio:8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
