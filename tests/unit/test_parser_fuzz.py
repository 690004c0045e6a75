"""Fuzzing the parsers of user input with Hypothesis (issue 15, item 2).

The only oracle: every input gets a clean error (YAMLFormatError, DurationError, a form's
ValidationError) or a valid result, within a time and memory bound. Inputs come from random
text over each grammar's alphabet, from a generator of YAML with anchors, aliases, tags, merge
keys, deep nesting and odd scalars, from alias bombs of every size, and from byte mutations of a
real kubeadm config and kubeconfig.

Each test prints how many examples it ran and how they ended ("examples: ..."); CI's log (run
with -s, or the junit properties) gives the counts for the record. Runtime is kept near 30 s.
"""

from __future__ import annotations

import datetime
import time
import tracemalloc
from collections import Counter
from datetime import timedelta

import pytest
from django.forms import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeadm import yamlio
from kubeadm.durations import MAX_DURATION, format_duration, parse_duration
from kubeadm.errors import DurationError, YAMLFormatError

# Per input. The YAML limits make the worst honest input (1 MiB, 100,000 values) take well
# under this; an unbounded parser takes minutes and gigabytes.
TIME_BOUND = 2.0
MEMORY_BOUND = 64 * 1024 * 1024
# About 20 s and 5 s on a laptop.
YAML_EXAMPLES = 1000
DURATION_EXAMPLES = 2000


def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,  # time is the oracle's, measured per input below
        database=None,  # nothing written into the working tree
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def bounded(call, *args, **kwargs):
    """(outcome, value): run ``call`` and check the time and memory bounds."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        return "result", call(*args, **kwargs)
    except (YAMLFormatError, DurationError, ValidationError) as exc:
        return type(exc).__name__, exc
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert seconds < TIME_BOUND, f"took {seconds:.2f} s"
        assert peak < MEMORY_BOUND, f"allocated {peak} bytes at the peak"


def report(name: str, outcomes: Counter, record_property, parsers: int = 1) -> None:
    total = sum(outcomes.values()) // parsers
    print(f"\nexamples: {name}: {total} ({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))})")
    record_property(f"{name}_examples", total)
    record_property(f"{name}_outcomes", dict(outcomes))


# --- YAML --------------------------------------------------------------------------------------------

_VALUE_TYPES = (str, int, float, bool, bytes, type(None), datetime.date)


def check_yaml_result(docs: list) -> None:
    """A valid result: plain data with string keys, no cycles, within the value limit."""
    assert isinstance(docs, list)
    count = 0
    stack = [(doc, 1) for doc in docs]
    while stack:
        value, depth = stack.pop()
        count += 1
        assert count <= yamlio.DEFAULT_LIMITS.max_nodes * 2, "more values than the limit lets through"
        assert depth <= yamlio.DEFAULT_LIMITS.max_depth + 2
        if isinstance(value, dict):
            assert all(isinstance(key, str) for key in value)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, (list, tuple, set)):
            stack.extend((item, depth + 1) for item in value)
        else:
            assert isinstance(value, _VALUE_TYPES), type(value)


SCALARS = [
    "1", "-0x1F", "0o17", "0b101", "1_000", "1:20:30", "-1:59", ".inf", "-.Inf", ".NaN", "1e400", "0.", "~",
    "null", "yes", "No", "on", "2020-02-29", "2020-02-30", "2001-12-14t21:59:43.10-05:00",
    "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2002-12-14 21:59:43.10 +5", "!!int 12",
    "!!int x", "!!float x", "!!bool maybe", "!!binary aGk=", "!!binary a", "!!timestamp now", "!!null x",
    "!!str 1", "!!set {a, b}", "!!omap [a: 1, b: 2]", "!!pairs [a: 1]", "!!python/object:os.system x",
    "!local x", "'it''s'", '"\\x00\\u2028"', '"\\ud800"', "|\n  block\n", ">-\n  folded\n", "<<", "= ", "?",
    "-", "%", "@x", "`x", "\t", "\u00a0", "\ufeff", "x" * 300,
]  # fmt: skip


# Strategies are built once: a strategy object made inside every draw costs more than the parse.
SCALAR = st.one_of(
    st.sampled_from(SCALARS),
    st.text(alphabet="0123456789", min_size=1, max_size=200),
    st.from_regex(r"[-+]?[0-9_]{1,60}(\.[0-9]{0,40})?([eE][-+]?[0-9]{1,5})?", fullmatch=True),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12).map(repr),
)
KEY = st.one_of(st.sampled_from(["<<", "k", "1", "? [a]", "null"]), st.text("xyz", min_size=1, max_size=3))
ANCHOR = st.sampled_from(["", "", "", "", "&a ", "&b ", "&c ", "&d "])
KINDS = st.sampled_from(["scalar", "alias", "seq", "map"])
LEAF_KINDS = st.sampled_from(["scalar", "alias"])
SMALL = st.integers(0, 12)
DEEP = st.one_of(st.just(0), st.integers(0, 300))
SEPARATOR = st.sampled_from(["\n---\n", "\n...\n---\n", "\n"])


@st.composite
def yaml_streams(draw) -> str:
    """Flow-style YAML with anchors, aliases (also to unfinished nodes), tags and merge keys,
    then wrapped in up to 300 levels of nesting."""
    budget = [draw(st.integers(1, 60))]

    def node(depth: int) -> str:
        budget[0] -= 1
        kind = draw(LEAF_KINDS if depth > 12 or budget[0] <= 0 else KINDS)
        if kind == "alias":
            return draw(st.sampled_from(["*a", "*b", "*c", "*d", "*nowhere"]))
        anchor = draw(ANCHOR)
        if kind == "scalar":
            return anchor + draw(SCALAR)
        count = draw(SMALL)
        if kind == "seq":
            return anchor + "[" + ", ".join(node(depth + 1) for _ in range(count)) + "]"
        return anchor + "{" + ", ".join(f"{draw(KEY)}: {node(depth + 1)}" for _ in range(count)) + "}"

    documents = []
    for _ in range(draw(st.integers(1, 3))):
        deep = draw(DEEP)
        documents.append("[" * deep + node(0) + "]" * deep)
    return draw(SEPARATOR).join(documents) + "\n"


@st.composite
def alias_bombs(draw) -> str:
    levels, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    lines = [f"a0: &a0 [{','.join(['x'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{','.join([f'*a{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


KUBEADM_CONFIG = """apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
controlPlaneEndpoint: "cp.example:6443"
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
apiServer:
  extraArgs:
  - name: audit-log-maxage
    value: "30"
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: abcdef.0123456789abcdef
  ttl: 24h0m0s
"""
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://[fd00::1]:6443
    certificate-authority-data: AAAA
users:
- name: u
  user: {token: abcdef.0123456789abcdef}
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
"""
_MUTATION_BYTES = list(b"[]{}:,-&*!|>'\"#%@?\n \t\x00\x85\xff0123456789") + list(range(256))


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from([KUBEADM_CONFIG, KUBECONFIG])).encode())
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        byte = draw(st.sampled_from(_MUTATION_BYTES))
        if action == "insert":
            data[position:position] = bytes([byte]) * draw(st.integers(1, 400))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 20))]
        elif action == "replace" and position < len(data):
            data[position] = byte
        else:
            data[position:position] = bytes(data[position : position + 8]) * draw(st.integers(1, 50))
    return bytes(data)


YAML_ALPHABET = "[]{}:,-&*!|>'\"#%@?\n \t~.0123456789abexyz<=\\\x00\u2028\ud7ff\ufeff"
YAML_INPUTS = st.one_of(
    st.text(alphabet=YAML_ALPHABET, max_size=400),
    yaml_streams(),
    alias_bombs(),
    mutated(),
    st.binary(max_size=200),
)


def test_yaml_fuzz_clean_error_or_valid_result(record_property):
    outcomes: Counter = Counter()

    @fuzz(YAML_EXAMPLES)
    @given(YAML_INPUTS)
    def run(text):
        outcome, value = bounded(yamlio.load_documents, text, source="fuzz")
        if outcome == "result":
            check_yaml_result(value)
        else:
            assert str(value).startswith("fuzz: expected "), value
        outcomes[outcome] += 1

    run()
    report("yaml", outcomes, record_property)
    assert outcomes["result"] and outcomes["YAMLFormatError"] and outcomes["YAMLLimitError"]


# --- durations -------------------------------------------------------------------------------------------

DURATION_ALPHABET = "0123456789.hmsunµμd+- \t"
DURATION_INPUTS = st.one_of(
    st.text(alphabet=DURATION_ALPHABET, max_size=40),
    st.builds(
        lambda sign, parts: sign + "".join(parts),
        st.sampled_from(["", "-", "+"]),
        st.lists(
            st.builds(
                lambda whole, frac, unit: whole + frac + unit,
                st.one_of(st.integers(0, 10**30).map(str), st.text("0123456789", max_size=30)),
                st.one_of(st.just(""), st.text("0123456789", max_size=30).map(lambda f: "." + f)),
                st.sampled_from(["ns", "us", "µs", "μs", "ms", "s", "m", "h", "d", ""]),
            ),
            min_size=1,
            max_size=4,
        ),
    ),
    st.text(max_size=20),
)


def check_duration(value) -> None:
    assert isinstance(value, timedelta)
    assert -MAX_DURATION - timedelta(microseconds=1) <= value <= MAX_DURATION
    # kubeadm writes what it read: the Go text reads back as the same duration.
    assert parse_duration(format_duration(value)) == value


def test_duration_fuzz_clean_error_or_valid_result(record_property):
    from tokens.forms import parse_ttl

    outcomes: Counter = Counter()

    @fuzz(DURATION_EXAMPLES)
    @given(DURATION_INPUTS)
    def run(text):
        outcome, value = bounded(parse_duration, text, field="ttl")
        if outcome == "result":
            check_duration(value)
        outcomes[f"parse_duration {outcome}"] += 1
        # The token forms' reading: Go durations plus days, never longer than Go holds.
        outcome, value = bounded(parse_ttl, text)
        if outcome == "result":
            check_duration(value)
        outcomes[f"parse_ttl {outcome}"] += 1

    run()
    report("duration", outcomes, record_property, parsers=2)
    assert outcomes["parse_duration result"] and outcomes["parse_duration DurationRangeError"]
    assert outcomes["parse_ttl result"] and outcomes["parse_ttl ValidationError"]


@pytest.mark.parametrize("text", ["999999999999999h", "99999999999999999999d"])
def test_the_fuzz_oracle_catches_the_old_overflow(text):
    """The oracle itself: the issue's inputs pass it (a clean error), as every fuzz input must."""
    from tokens.forms import parse_ttl

    assert bounded(parse_ttl, text)[0] == "ValidationError"
