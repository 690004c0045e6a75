"""Audit trail at scale: the history page, search, exports and appends with a million records.

Fills N records (default 1,000,000) across 100 clusters in 10 teams with ``append_many`` (a
bulk load that still forms one valid keyed chain), then prints:

* p50/p95 of the history page rendered through the whole Django stack (middleware, scoping,
  template), for a team member filtering one cluster and an action, on the first page and on a
  deep page (keyset ``before=``), plus the superuser's unfiltered first page, a time range and a
  detail search; baseline in the same run: the same deep page fetched with OFFSET;
* the detail search's first page for common, rare and absent terms, as a superuser and as a
  member, and "search p95 for 'common term': N ms (goal < 150)"; baseline in the same run: the
  queries alone with PostgreSQL's default statistics sample of the details (before migration
  0011), as a ratio;
* the streamed export (JSON Lines) in records/s, and its peak Python memory against the
  baseline of materialising the same rows in a list;
* appends/s through ``audit.services.record`` (outside a transaction, as tasks and commands
  write them) with 1 and 4 writer processes: "appends/s with 4 writers, fsync on: N (goal >=
  1000)"; baseline in the same run: the old path (each append's commit waits for its WAL flush
  while holding the chain head's lock), as a ratio.

It runs on PostgreSQL: ``DATABASE_URL`` if set (its own fsync setting is reported), else a
server it starts itself (the test helper ``tests.support.services.start_postgres``) with fsync
on, the goal's condition (``--fsync off`` for a comparison). The appends need an otherwise
idle machine: on a busy one the writers wait for the CPU, not for the disk.

    python bench/bench_audit.py [--records 1000000] [--clusters 100] [--samples 40] [--appends 3000] [--rounds 3]
        [--parts pages,search,export,appends,verify] [--fsync on|off]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ACTIONS = [
    ("operation.queued", 8),
    ("operation.succeeded", 6),
    ("operation.failed", 1),
    ("node.added", 4),
    ("node.host_key_accepted", 3),
    ("node.joined", 3),
    ("token.created", 4),
    ("token.rotated", 2),
    ("token.revealed", 1),
    ("token.revoked", 2),
    ("cluster.admin_kubeconfig_issued", 1),
    ("auth.login", 5),
]


def setup_django(url: str, data_dir: Path) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["KUBEBOARD_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.pop("REDIS_URL", None)
    os.environ["KUBEBOARD_ALLOWED_HOSTS"] = "testserver"  # the in-process test client's host
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build_world(clusters: int):
    from django.contrib.auth.models import Group, User

    from clusters.models import Cluster
    from core.models import TeamMembership
    from kubeadm.versions import DEFAULT_KUBERNETES_VERSION

    teams = [Group.objects.get_or_create(name=f"team{i}")[0] for i in range(10)]
    made = []
    for i in range(clusters):
        cluster, _ = Cluster.objects.get_or_create(
            name=f"c{i:03d}",
            defaults={
                "team": teams[i % 10],
                "kubernetes_version": DEFAULT_KUBERNETES_VERSION,
                "control_plane_endpoint": f"10.0.{i}.10:6443",
            },
        )
        made.append(cluster)
    member = User.objects.filter(username="member").first() or User.objects.create_user("member")
    TeamMembership.objects.get_or_create(team=teams[0], user=member, defaults={"role": "viewer"})
    root = User.objects.filter(username="root").first() or User.objects.create_superuser("root", "", None)
    return made, member, root


def fill(count: int, clusters, users) -> float:
    from django.utils import timezone

    from audit.chain import append_many
    from audit.models import AuditEvent

    names, weights = zip(*ACTIONS, strict=True)
    rng = random.Random(7)
    start_time = timezone.now() - timezone.timedelta(days=365)
    step = timezone.timedelta(days=365) / count

    def events():
        for n in range(count):
            cluster = clusters[rng.randrange(len(clusters))]
            action = rng.choices(names, weights)[0]
            node = f"node-{rng.randrange(50)}"
            yield AuditEvent(
                created=start_time + step * n,
                actor_id=users[n % 2].pk,
                actor_name=users[n % 2].username,
                action=action,
                outcome="failure" if action == "operation.failed" else "success",
                object_type="node" if action.startswith("node.") else "operation",
                object_id=str(rng.randrange(5000)),
                object_repr=f"{cluster.name}/{node}",
                cluster_id=cluster.pk,
                cluster_name=cluster.name,
                team_id=cluster.team_id,
                details={"node": node, "token_id": f"t{rng.randrange(100000):05d}", "n": n},
                changes={},
                request_id=f"{n // 3:032x}",
                source="web",
                source_address="10.1.2.3",
                user_agent="bench",
            )

    started = time.perf_counter()
    append_many(events(), batch_size=5000)
    return time.perf_counter() - started


def timed_gets(client, url: str, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return times


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return f"p50 {statistics.median(ordered):7.1f} ms   p95 {p95:7.1f} ms"


def pages(member, root, samples: int) -> None:
    from django.db import connection
    from django.test import Client

    from audit.models import AuditEvent
    from audit.queries import visible_records

    member_client, root_client = Client(), Client()
    member_client.force_login(member)
    root_client.force_login(root)
    ids = (
        AuditEvent.objects.filter(cluster__name="c000", action="operation.queued")
        .order_by("id")
        .values_list("id", flat=True)
    )
    total = ids.count()
    deep = ids[total // 20]  # 95 % of the way back in time
    base = "/audit/?cluster=c000&action=operation.queued"
    print(f"history page ({total:,} records match cluster c000 + operation.queued; deep page = record {deep:,})")
    rows = [
        ("member, cluster+action, first page", member_client, base),
        ("member, cluster+action, deep page (keyset)", member_client, f"{base}&before={deep}"),
        ("member, unfiltered, first page", member_client, "/audit/"),
        ("superuser, unfiltered, first page", root_client, "/audit/"),
        (
            "superuser, unfiltered, deep page (keyset)",
            root_client,
            f"/audit/?before={AuditEvent.objects.order_by('id').values_list('id', flat=True)[1000]}",
        ),
        ("superuser, one month, first page", root_client, "/audit/?since=2026-03-01&until=2026-03-31"),
        ("superuser, outcome=failure", root_client, "/audit/?outcome=failure"),
        ("superuser, search details 'node-7'", root_client, "/audit/?q=node-7%22"),
        ("superuser, one node's records (object)", root_client, "/audit/?object=node:42"),
    ]
    for label, client, url in rows:
        print(f"  {label:48} {summary(timed_gets(client, url, samples))}")
    # Baseline: the same deep page with OFFSET, as a naive paginator would fetch it.
    records = visible_records(member).filter(cluster__name="c000", action="operation.queued").combined()
    records = records.order_by("-id")
    offset = total - total // 20
    times = []
    for _ in range(max(5, samples // 4)):
        started = time.perf_counter()
        list(records[offset : offset + 50])
        times.append((time.perf_counter() - started) * 1000)
    print(f"  {'baseline: same deep page by OFFSET (query only)':48} {summary(times)}")
    # And the whole table 99 % deep: keyset against OFFSET, the query alone.
    everything = AuditEvent.objects.all()
    total_all = everything.count()
    deep_id = everything.order_by("id").values_list("id", flat=True)[total_all // 100]
    deep_offset = total_all * 99 // 100
    for label, fetch in (
        (
            "keyset: unfiltered, 99 % deep (query only)",
            lambda: list(everything.filter(id__lt=deep_id).order_by("-id")[:51]),
        ),
        (
            "baseline: unfiltered, 99 % deep by OFFSET",
            lambda: list(everything.order_by("-id")[deep_offset : deep_offset + 51]),
        ),
    ):
        times = []
        for _ in range(5):
            started = time.perf_counter()
            fetch()
            times.append((time.perf_counter() - started) * 1000)
        print(f"  {label:48} {summary(times)}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('audit_auditevent'))")
        print(f"  audit table with indexes: {cursor.fetchone()[0]}")


def export(limit: int) -> None:
    from audit.export import lines
    from audit.models import AuditEvent

    records = AuditEvent.objects.all()
    started = time.perf_counter()
    count = 0
    for _line in lines(records, "jsonl"):
        count += 1
        if count >= limit:
            break
    elapsed = time.perf_counter() - started
    print(f"export (JSON Lines, streamed): {count:,} records in {elapsed:.1f} s = {count / elapsed:,.0f} records/s")
    for size in (50_000, 200_000):
        tracemalloc.start()
        for index, _ in enumerate(lines(records, "jsonl")):
            if index >= size:
                break
        streamed = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        tracemalloc.start()
        rows = list(records.order_by("-id")[:size])
        naive = tracemalloc.get_traced_memory()[1]
        del rows
        tracemalloc.stop()
        print(
            f"  peak Python memory for {size:>7,} records: streamed {streamed / 2**20:6.1f} MiB   "
            f"baseline list() {naive / 2**20:7.1f} MiB"
        )


def _writer(url: str, data_dir: str, count: int, path: str, start: multiprocessing.Event, out) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["KUBEBOARD_DATA_DIR"] = data_dir
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from audit import chain
    from audit.context import audit_context
    from audit.services import record
    from clusters.models import Cluster

    if path == "flush under lock":
        # The path before: each append commits synchronously while it holds the chain head's
        # lock, so every writer waits for every WAL flush in turn.
        chain.BEGIN_APPEND, chain.DURABLE = "BEGIN", "SELECT 1"
    cluster = Cluster.objects.order_by("pk").first()
    record("bench.warmup", cluster=cluster)
    start.wait()
    started = time.perf_counter()
    with audit_context(source=f"bench:{os.getpid()}"):
        for n in range(count):
            record("bench.append", cluster=cluster, details={"n": n})
    out.put((started, time.perf_counter()))


def append_rate(url: str, data_dir: Path, per_writer: int, writers: int, path: str) -> float:
    """Appends/s through ``audit.services.record`` (outside a transaction, as a worker's task or
    a command writes them) by ``writers`` processes at once."""
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    processes = [
        context.Process(target=_writer, args=(url, str(data_dir), per_writer, path, start, out)) for _ in range(writers)
    ]
    for process in processes:
        process.start()
    time.sleep(3 + writers)  # let each start Django and warm up
    start.set()
    spans = [out.get(timeout=900) for _ in processes]
    for process in processes:
        process.join()
    elapsed = max(end for _, end in spans) - min(begin for begin, _ in spans)
    return writers * per_writer / elapsed


def appends(url: str, data_dir: Path, per_writer: int, fsync: bool, rounds: int) -> None:
    condition = "fsync on" if fsync else "fsync OFF (not the goal's condition)"
    one = append_rate(url, data_dir, per_writer, 1, "flush after lock")
    print(f"appends/s with 1 writer, {condition}: {one:,.0f}")
    # Rounds alternate the two paths, so a checkpoint or an autoanalyze of the big table (which
    # takes a core for seconds) falls on both alike; the median of each is printed.
    rates, baselines = [], []
    for _ in range(rounds):
        rates.append(append_rate(url, data_dir, per_writer, 4, "flush after lock"))
        baselines.append(append_rate(url, data_dir, per_writer, 4, "flush under lock"))
    rate, baseline = statistics.median(rates), statistics.median(baselines)
    print(
        f"appends/s with 4 writers, {condition}: {rate:,.0f} (goal >= 1000; median of "
        f"{', '.join(f'{r:,.0f}' for r in rates)})"
    )
    print(
        f"  baseline, same run: 4 writers each flushing its commit while holding the head lock (the old path): "
        f"{baseline:,.0f} appends/s (median of {', '.join(f'{r:,.0f}' for r in baselines)}); "
        f"flushing after the lock = {rate / baseline:.2f}x"
    )


SEARCH_TERMS = [
    # (label, text, common): the details hold {"node": "node-N", "token_id": "tNNNNN", "n": N}.
    ("'node-1' (22 % of records)", "node-1", True),
    ("'node-42' (2 %, the planner guesses rare)", "node-42", True),
    ("'node' (every record)", "node", True),
    ("'t04242' (rare: ~10 records)", "t04242", False),
    ("': 123' (1,111 old records only)", ": 123", False),
    ("'zzzz' (no match)", "zzzz", False),
]


def _query_p95s(users, samples: int) -> dict[str, float]:
    """p95 of the first page's queries alone, per common term (worst of the users)."""
    from audit.queries import newest, search_details, visible_records

    figures = {}
    for _label, text, common in SEARCH_TERMS:
        if common:
            times = []
            for user in users:
                for _ in range(samples):
                    started = time.perf_counter()
                    newest(search_details(visible_records(user), text), size=51)
                    times.append((time.perf_counter() - started) * 1000)
            figures[text] = p95(times)
    return figures


def _search_statistics(target: int) -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER INDEX audit_details_trgm ALTER COLUMN 1 SET STATISTICS {target}")
        cursor.execute("ANALYZE audit_auditevent")
    return time.perf_counter() - started


def search(root, member, samples: int) -> None:
    """The history's detail search: first pages through the whole stack (view, scoping,
    template); baseline in the same run: the queries alone with the planner's default sample
    of the details (before migration 0011) against the larger sample."""
    from urllib.parse import quote

    from django.test import Client

    clients = {"superuser": Client(), "member": Client()}
    clients["superuser"].force_login(root)
    clients["member"].force_login(member)
    print("history detail search, first page through the stack")
    worst = 0.0
    for label, text, common in SEARCH_TERMS:
        for who in clients:
            pages = timed_gets(clients[who], f"/audit/?q={quote(text)}", samples)
            print(f"  {who:9} {label:44} {summary(pages)}")
            if common:
                worst = max(worst, p95(pages))
    print(f"search p95 for 'common term': {worst:.0f} ms (goal < 150; the worst page of the common terms above)")
    now = _query_p95s([root, member], samples)
    took = _search_statistics(-1)
    default = _query_p95s([root, member], samples)
    restored = _search_statistics(2000)
    term = max(default, key=lambda text: default[text] / max(now[text], 0.1))
    print(
        f"  baseline, same run, query alone: default statistics sample (ANALYZE {took:.0f} s) p95 "
        + ", ".join(f"{text!r} {default[text]:.0f} ms" for text in default)
        + f"; with the sample of migration 0011 (ANALYZE {restored:.0f} s) "
        + ", ".join(f"{text!r} {now[text]:.0f} ms" for text in now)
        + f"; worst ratio {default[term] / max(now[term], 0.1):.1f}x for {term!r}"
        + " (the default sample is random: a run can guess right)"
    )


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--appends", type=int, default=3000, help="records per writer")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the 4-writer append measurement")
    parser.add_argument("--export-limit", type=int, default=1_000_000)
    parser.add_argument("--parts", default="pages,search,export,appends,verify", help="which measurements to run")
    parser.add_argument(
        "--fsync", choices=("on", "off"), default="on", help="the PostgreSQL this starts (the goal is with fsync on)"
    )
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="kb-bench-audit-"))
    data_dir.chmod(0o755)  # the postgres user must reach its data directory inside
    service = None
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        from tests.support.services import start_postgres

        service = start_postgres(data_dir / "pg", fsync=args.fsync == "on")
        url = service.url
        print(f"PostgreSQL started for the benchmark (fsync={args.fsync}): {url}")
    try:
        setup_django(url, data_dir)
        from django.db import connection

        from audit.models import AuditEvent

        with connection.cursor() as cursor:
            cursor.execute("SHOW fsync")
            fsync = cursor.fetchone()[0] == "on"
        clusters, member, root = build_world(args.clusters)
        missing = args.records - AuditEvent.objects.count()
        if missing > 0:
            # A bulk load builds the search index once at the end instead of row by row.
            with connection.cursor() as cursor:
                cursor.execute("DROP INDEX IF EXISTS audit_details_trgm")
            elapsed = fill(missing, clusters, [member, root])
            print(
                f"filled {missing:,} records across {len(clusters)} clusters in {elapsed:.1f} s "
                f"({missing / elapsed:,.0f} records/s, one keyed chain)"
            )
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(
                    "CREATE INDEX IF NOT EXISTS audit_details_trgm ON audit_auditevent "
                    "USING gin ((details::text) gin_trgm_ops)"
                )
                # As migration 0011 sets it: the planner's sample of the details, see there.
                cursor.execute("ALTER INDEX audit_details_trgm ALTER COLUMN 1 SET STATISTICS 2000")
                cursor.execute("ANALYZE audit_auditevent")
            print(f"search index built in {time.perf_counter() - started:.1f} s")
        parts = set(args.parts.split(","))
        if "pages" in parts:
            pages(member, root, args.samples)
        if "search" in parts:
            search(root, member, args.samples)
        if "export" in parts:
            export(args.export_limit)
        connection.close()
        if "appends" in parts:
            appends(url, data_dir, args.appends, fsync, args.rounds)
        if "verify" in parts:
            from audit.chain import verify

            started = time.perf_counter()
            report = verify()
            elapsed = time.perf_counter() - started
            print(f"verify_audit: {report.count:,} records in {elapsed:.1f} s, intact={report.intact}")
    finally:
        if service is not None:
            service.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
