"""Every parser of user input is bounded (issue 15): the attack inputs that gave a 500, a
websocket 1011 or a web process eating gigabytes now get a clean refusal naming the limit.

YAML (kubeadm config import, kubeconfig adopt), durations (token TTLs and the token policy),
the kubeconfig's server URL, JSON frames on the operation websocket, and the lockout page's
duration in words.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from core.formatting import duration_words
from kubeadm import yamlio
from kubeadm.durations import MAX_DURATION, parse_duration
from kubeadm.errors import DurationError, DurationRangeError, YAMLFormatError, YAMLLimitError
from tests.conftest import team_of
from tests.factories import make_cluster
from tests.unit.test_operation_consumer import (  # noqa: F401 (fixtures)
    add_events,
    connect,
    expect_refusal,
    member,
    operation,
    receive_seqs,
)

ROOT = Path(__file__).resolve().parents[2]


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """342 bytes naming 9**9 (387 million) strings once every alias is expanded."""
    lol = '"lol"'
    lines = [f"a: &a [{','.join([lol] * width)}]"]
    previous = "a"
    for name in "bcdefghijklmnop"[: levels - 1]:
        lines.append(f"{name}: &{name} [{','.join([f'*{previous}'] * width)}]")
        previous = name
    return "\n".join(lines) + "\n"


DEEP_LIST = "[" * 10_000 + "]" * 10_000
SELF_ALIAS = "a: &a {b: *a}\n"
HUGE_INT = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nx: " + "9" * 100_000 + "\n"


def kubeconfig(server: str = "https://10.0.0.1:6443", extra: str = "") -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: {server}
    certificate-authority-data: AAAA
users:
- name: u
  user:
    token: abcdef.0123456789abcdef
contexts:
- name: c
  context: {{cluster: c, user: u}}
current-context: c
{extra}"""


# --- YAML: the parser ------------------------------------------------------------------------------


def test_the_342_byte_alias_bomb_is_refused_in_milliseconds_with_flat_memory():
    """In a child process with 1 GiB of address space, so the unbounded reader fails this test
    (MemoryError or the timeout) instead of taking the machine down."""
    bomb = alias_bomb()
    assert len(bomb.encode()) == 342
    child = f"""
import json, resource, time, tracemalloc
resource.setrlimit(resource.RLIMIT_AS, (1024**3, 1024**3))
from kubeadm import yamlio
tracemalloc.start()
start = time.perf_counter()
try:
    yamlio.load_documents({bomb!r}, source="the file")
    outcome = "parsed"
except Exception as exc:
    outcome = type(exc).__name__ + ": " + str(exc)
seconds = time.perf_counter() - start
print(json.dumps({{"outcome": outcome, "seconds": seconds, "peak": tracemalloc.get_traced_memory()[1]}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["outcome"].startswith("YAMLLimitError"), report
    assert "with every alias expanded" in report["outcome"], report
    assert report["seconds"] < 0.2, report
    assert report["peak"] < 2 * 1024 * 1024, f"parsing allocated {report['peak']} bytes"


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        (SELF_ALIAS, "recursive alias"),
        ("a: &a {<<: *a}\n", "recursive alias"),  # a merge key into itself recursed in PyYAML
        ("a: &a [x, [y, *a]]\n", "recursive alias"),
        (DEEP_LIST, "at most 100 levels of nesting"),
        ("".join(" " * i + "- \n" for i in range(0, 2 * 150, 2)), "at most 100 levels of nesting"),
        ("{a: " * 200 + "1" + "}" * 200, "at most 100 levels of nesting"),
        (HUGE_INT, "numbers of at most 100 characters"),
        ("x: !!int " + "1" * 5000 + "\n", "numbers of at most 100 characters"),
        ("x: " + "1:" * 3000 + "1\n", "numbers of at most 100 characters"),  # base 60
        ("x: &x 1\ny: [" + ", ".join(["*x"] * 101) + "]\n", "at most 100 aliases"),
        ("x: [" + "1, " * 10_001 + "]\n", "at most 10000 values"),
        ("a: " + "x" * (1024 * 1024) + "\n", "at most 1024 KiB of YAML"),
    ],
    ids=[
        "self-alias",
        "self-merge",
        "alias-in-own-list",
        "deep-flow",
        "deep-block",
        "deep-maps",
        "100000-digit-int",
        "tagged-long-int",
        "long-base-60",
        "101-aliases",
        "10001-values",
        "over-1-MiB",
    ],
)
def test_yaml_past_a_limit_is_a_clean_error_naming_it(text, limit):
    start = time.monotonic()
    with pytest.raises(YAMLLimitError, match=limit):
        yamlio.load_documents(text, source="the file")
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize(
    "text",
    [
        "x: !!int abc\n",
        "x: !!float abc\n",
        "x: !!bool maybe\n",
        "x: !!timestamp yesterday\n",
        "x: 2020-02-30\n",
        "x: 0001-01-01T00:00:00+05:00\n",
        "x: !!binary a\n",
        "x: *undefined\n",
        "x: \x00\n",
        "x: \ud800\n",
        "a: &a 1\nb: &a 2\nc: [&a x]\n",
    ],
    ids=[
        "int",
        "float",
        "bool",
        "timestamp",
        "feb-30",
        "year-0",
        "binary",
        "undefined-alias",
        "nul",
        "surrogate",
        "dup",
    ],
)
def test_values_python_cannot_build_are_yaml_errors_not_crashes(text):
    """Each raised ValueError, KeyError, AttributeError, OverflowError or UnicodeEncodeError."""
    with pytest.raises(YAMLFormatError):
        yamlio.load_documents(text)


def test_errors_never_quote_the_value_of_a_kubeconfig():
    with pytest.raises(YAMLFormatError) as caught:
        yamlio.load("token: !!int s3cr3t-t0ken-value\n", source="kubeconfig")
    assert "s3cr3t" not in str(caught.value) and "line 1" in str(caught.value)


def test_honest_yaml_within_the_limits_still_reads():
    assert yamlio.load("base: &b {x: 1}\nuse: *b\nmerged: {<<: *b, y: 2}\n") == {
        "base": {"x": 1},
        "use": {"x": 1},
        "merged": {"x": 1, "y": 2},
    }
    nested = "[" * 100 + "]" * 100
    assert yamlio.load(nested) is not None
    assert yamlio.load("x: " + "9" * 100) == {"x": int("9" * 100)}
    # Anchors are per document: the same name in the next document is no duplicate.
    assert yamlio.load_documents("a: &x 1\nb: *x\n---\nc: &x 2\nd: *x\n") == [{"a": 1, "b": 1}, {"c": 2, "d": 2}]
    # A caller with bigger documents (a manifest) passes its own limits.
    with pytest.raises(YAMLLimitError, match="at most 3 levels"):
        yamlio.load("a: {b: {c: {d: 1}}}", limits=yamlio.YAMLLimits(max_depth=3))


# --- YAML: the pages -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "limit"),
    [
        (alias_bomb(), "with every alias expanded"),
        (DEEP_LIST, "at most 100 levels of nesting"),
        (SELF_ALIAS, "recursive alias"),
        (HUGE_INT, "numbers of at most 100 characters"),
        ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nx: 2020-02-30\n", "not a valid timestamp"),
    ],
    ids=["alias-bomb", "deep", "self-alias", "huge-int", "feb-30"],
)
def test_import_page_refuses_hostile_yaml_with_a_400_naming_the_limit(operator, text, limit):
    client = Client()
    client.force_login(operator)
    client.get(reverse("import-cluster"))  # the timing below is of the refusal, not of compiling templates
    start = time.monotonic()
    response = client.post(reverse("import-cluster"), {"name": "imported", "team": team_of(operator).pk, "text": text})
    elapsed = time.monotonic() - start
    print(f"answered in {elapsed:.3f} s")
    assert elapsed < 1.0
    assert response.status_code == 400
    assert limit in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (kubeconfig(extra=alias_bomb()), "with every alias expanded"),
        (SELF_ALIAS, "recursive alias"),
        (kubeconfig("https://[::1"), "not a valid URL (Invalid IPv6 URL)"),
        (kubeconfig("https://10.0.0.1:99999"), "not a valid URL (Port out of range"),
        (kubeconfig("https://10.0.0.1:six"), "not a valid URL"),
        (kubeconfig("https://[zz]:6443"), "not a valid URL"),
    ],
    ids=["alias-bomb", "self-alias", "ipv6-unclosed", "port-out-of-range", "port-not-a-number", "bad-ip-literal"],
)
def test_adopt_page_refuses_a_hostile_kubeconfig_with_a_400(make_user, text, problem):
    admin = make_user("ada", role="admin")
    client = Client()
    client.force_login(admin)
    client.get(reverse("adopt-cluster"))
    start = time.monotonic()
    response = client.post(
        reverse("adopt-cluster"), {"name": "adopted", "team": team_of(admin).pk, "kubeconfig_text": text}
    )
    elapsed = time.monotonic() - start
    print(f"answered in {elapsed:.3f} s")
    assert elapsed < 1.0
    assert response.status_code == 400
    assert problem in response.content.decode().replace("&#x27;", "'")


# --- durations -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["999999999999999h", "2562047h47m16.854775808s", "9" * 5000 + "h", "106752d", "99999999999999999999d"],
)
def test_durations_past_what_go_holds_are_a_range_error(text):
    from tokens.forms import parse_ttl

    if not text.endswith("d"):
        with pytest.raises(DurationRangeError, match="at most 2562047h47m16.854775807s"):
            parse_duration(text, field="ttl")
    from django.forms import ValidationError

    with pytest.raises(ValidationError, match="too long; a duration is at most 106751 days"):
        parse_ttl(text)


def test_durations_at_the_limit_and_long_fractions_still_parse():
    assert parse_duration("2562047h47m16.854775807s") == MAX_DURATION
    assert parse_duration("-2562047h47m16.854775808s") < timedelta(0)
    assert parse_duration("1." + "0" * 10_000 + "1h") == timedelta(hours=1)
    assert parse_duration("0" * 10_000 + "90m") == timedelta(minutes=90)
    with pytest.raises(DurationError):
        parse_duration("1" + "x" * 10_000)


@pytest.fixture
def token_admin(make_user):
    admin = make_user("ada", role="admin")
    make_cluster("c1", team=team_of(admin))
    client = Client()
    client.force_login(admin)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("ttl", ["999999999999999h", "99999999999999999999d", "1" * 200 + "h"])
def test_token_pages_refuse_an_absurd_ttl_with_a_form_error(token_admin, ttl):
    response = token_admin.post("/clusters/c1/tokens/new/", {"ttl": ttl, "usages": ["signing", "authentication"]})
    assert response.status_code == 400
    text = response.content.decode()
    assert "too long; a duration is at most 106751 days" in text or "a duration is at most 64 characters" in text
    response = token_admin.post(
        "/clusters/c1/tokens/policy/",
        {"default_ttl": "24h", "max_ttl": ttl, "max_lifetime": "30d", "rotate_before": "2h", "rotation_grace": "1h"},
    )
    assert response.status_code == 400
    text = response.content.decode()
    assert "too long; a duration is at most 106751 days" in text or "a duration is at most 64 characters" in text


# --- websocket JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    ["[" * 100_000 + "]" * 100_000, '{"type": "ping", "pad": "' + "x" * 2000 + '"}'],
    ids=["100000-deep", "oversize"],
)
@pytest.mark.django_db(transaction=True)
async def test_a_hostile_frame_closes_with_4400_not_1011(operation, member, frame):  # noqa: F811
    from channels.db import database_sync_to_async

    await database_sync_to_async(add_events)(operation, 1)
    communicator = await connect(operation.pk, member)
    assert await receive_seqs(communicator, 1) == [1]
    await communicator.send_to(text_data=frame)
    refusal = await expect_refusal(communicator, 4400)
    assert "characters (at most 1024)" in refusal["message"]
    await communicator.wait(timeout=1)


# --- durations in words ------------------------------------------------------------------------------


def test_durations_read_as_people_say_them():
    assert [
        duration_words(value)
        for value in (
            timedelta(minutes=15),
            timedelta(hours=2),
            timedelta(hours=2, minutes=30),
            timedelta(hours=24),
            timedelta(hours=36),
            timedelta(days=7),
            timedelta(seconds=1),
            45,
            0,
            0.5,
            1.5,
        )
    ] == [
        "15 minutes",
        "2 hours",
        "2 hours 30 minutes",
        "24 hours",
        "36 hours",
        "7 days",
        "1 second",
        "45 seconds",
        "0 seconds",
        "0.5 seconds",
        "1.5 seconds",
    ]


@pytest.mark.django_db
def test_the_lockout_page_says_try_again_in_15_minutes(client, make_user, settings):
    make_user("target")
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        response = client.post("/login/", {"username": "target", "password": "wrong"})
    assert response.status_code == 429
    text = response.content.decode()
    assert "try again in 15 minutes" in text and "PT15M" not in text


@pytest.mark.django_db
def test_token_pages_show_ttls_in_words(token_admin):
    text = token_admin.get("/clusters/c1/tokens/").content.decode()
    assert "24 hours / 7 days" in text
    form = token_admin.get("/clusters/c1/tokens/new/").content.decode()
    assert "At most 7 days." in form


@pytest.mark.django_db
def test_the_backup_schedule_reads_in_words(token_admin):
    from clusters.models import Cluster
    from workflows.models import BackupSchedule

    BackupSchedule.objects.create(cluster=Cluster.objects.get(name="c1"), enabled=True, interval_hours=6)
    text = token_admin.get(reverse("daytwo:backups", args=["c1"])).content.decode()
    assert "Every 6 hours, keeping the newest" in text
