"""`manage.py token list` prints kubeadm's columns (checked against the real binary in
tests/e2e/test_tokens_cluster.py); here the parts that test needs no cluster for."""

from __future__ import annotations

import datetime
from datetime import timedelta

from kubeadm.durations import short_human_duration
from kubeadm.tokenlist import ListedToken, format_token_list

NOW = datetime.datetime(2026, 11, 27, 8, 0, 0, tzinfo=datetime.UTC)


def test_short_human_duration_like_apimachinery():
    assert [short_human_duration(timedelta(seconds=s)) for s in (-5, -1, 0, 59, 60, 3599, 3600, 86399, 86400)] == [
        "<invalid>",
        "0s",
        "0s",
        "59s",
        "1m",
        "59m",
        "1h",
        "23h",
        "1d",
    ]
    assert short_human_duration(timedelta(days=800)) == "2y"


def test_each_token_is_its_own_tabwriter_block():
    tokens = [
        ListedToken(
            "abcdef.0123456789abcdef",
            NOW + timedelta(hours=23, minutes=59),
            ("signing", "authentication"),
            "",
            ("system:bootstrappers:kubeadm:default-node-token",),
        ),
        ListedToken("ghijkl.0123456789abcdef", None, ("signing",), "forever", ()),
    ]
    lines = format_token_list(tokens, now=NOW).splitlines()
    assert lines[0] == (
        "TOKEN                     TTL         EXPIRES                USAGES                   "
        "DESCRIPTION" + " " * 48 + "EXTRA GROUPS"
    )
    assert lines[1].startswith(
        "abcdef.0123456789abcdef   23h         2026-11-28T07:59:00Z   authentication,signing   <none>"
    )
    assert lines[1].endswith("   system:bootstrappers:kubeadm:default-node-token")
    # A token without expiry: "<never>" is shorter, and its own block aligns only itself.
    assert lines[2].startswith("ghijkl.0123456789abcdef   <forever>   <never>   signing                  forever ")
    assert lines[2].endswith("   <none>")
    assert format_token_list([], now=NOW) == ""
