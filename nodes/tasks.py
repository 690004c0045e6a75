"""Entry points that django-q2 workers import by dotted path."""

from __future__ import annotations


def check_machine(node_id: int) -> str:
    from nodes.models import Node
    from nodes.services import run_check

    if not Node.objects.filter(pk=node_id).exists():
        return "node gone"
    report = run_check(node_id)
    return "ok" if report["login"] and not report["problems"] else "problems"
