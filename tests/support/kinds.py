"""Operation kinds for tests: phases in plain Python, steered by the operation's params.

This is the engine's real interface (``register(OperationKind(...))``), not a double: the
runner, the threads, the events and the database are the production ones. Importing this
module registers the kinds; worker processes import it through
``KUBEBOARD_OPERATION_KIND_MODULES=tests.support.kinds``.

Params (all optional), keyed by a phase's label (``name`` or ``group:name``):
  plan: [[group, name], ...]      the phases, in order (default: prepare, work, finish)
  parallel: N                     max_parallel_groups
  sleep: seconds                  every phase waits this long (a cancel cuts it short)
  block: {label: n}               the first n attempts wait up to ``block_seconds`` for a cancel
  ignore_cancel: true             blocking phases ignore cancel (the SIGKILL tests)
  fail: {label: n}                the first n attempts fail with a PhaseError (hint, exit status 3)
  lines: {label: [line, ...]}     lines passed to ctx.output_line
  hostile_output: label           that phase prints HOSTILE_LINES (escapes, NUL, a 1 MB line:
                                  made here because PostgreSQL refuses NUL even inside params)
"""

from __future__ import annotations

import time

from kubeadm.workflow import INIT_PHASES
from operations.registry import OperationKind, PhaseSpec, PlannedPhase, register
from operations.runner import PhaseContext, PhaseError

HOSTILE_LINES = [
    "\x1b[31mred\x1b[0m and \x1b]0;title\x07bold\x00 text\r",
    "tab\tkept, bell\x07 and backspace\x08 gone, \x9b1mC1 CSI\x1bc",
    "bad surrogate \ud800 here",
    "x" * 1_000_000,
]


def step(ctx: PhaseContext) -> None:
    params = ctx.params
    label = ctx.phase.label
    ctx.log(
        f"{label} attempt {ctx.attempt} begins",
        attempt=ctx.attempt,
        skip_phases=ctx.skip_phases,
        job=ctx.job,
        previous=ctx.previous_attempt.status if ctx.previous_attempt else None,
    )
    for line in params.get("lines", {}).get(label, []):
        ctx.output_line(line)
    if params.get("hostile_output") == label:
        for line in HOSTILE_LINES:
            ctx.output_line(line)
    if ctx.attempt <= params.get("block", {}).get(label, 0):
        ctx.log(f"{label} blocks until cancelled")
        seconds = params.get("block_seconds", 120)
        if params.get("ignore_cancel"):
            time.sleep(seconds)
        else:
            ctx.cancel_event.wait(seconds)
            ctx.check_cancelled()
    if params.get("sleep"):
        if ctx.cancel_event.wait(params["sleep"]):
            ctx.check_cancelled()
    if ctx.attempt <= params.get("fail", {}).get(label, 0):
        raise PhaseError(
            f"{label} failed on purpose (attempt {ctx.attempt})", hint="Fix the machine, then resume.", exit_status=3
        )
    ctx.log(f"{label} attempt {ctx.attempt} ends")


def plan(operation) -> list[PlannedPhase]:
    items = operation.params.get("plan") or [["", "prepare"], ["", "work"], ["", "finish"]]
    return [PlannedPhase(name=name, group=group) for group, name in items]


def parallel(operation) -> int:
    return operation.params.get("parallel", 1)


PHASES = (
    PhaseSpec("prepare", "Get ready", step),
    PhaseSpec("work", "Do the work (not safe to repeat blindly)", step),
    PhaseSpec("idempotent-work", "Do work that is safe to repeat", step, idempotent=True),
    PhaseSpec("finish", "Wrap up", step),
)

STEPS = OperationKind(name="test-steps", label="Test steps", phases=PHASES, plan=plan, max_parallel_groups=parallel)
READ_ONLY = OperationKind(
    name="test-read-only",
    label="Test read-only steps",
    phases=PHASES,
    plan=plan,
    max_parallel_groups=parallel,
    mutating=False,
)
# Named like kubeadm's init phases, for skip tests that use kubeadm's --skip-phases names.
KUBEADM_LIKE = OperationKind(
    name="test-kubeadm-init",
    label="Test kubeadm-named phases",
    phases=tuple(PhaseSpec(phase.name, phase.description, step) for phase in INIT_PHASES),
)

for kind in (STEPS, READ_ONLY, KUBEADM_LIKE):
    register(kind)
