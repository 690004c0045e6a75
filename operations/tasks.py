"""Entry points that django-q2 workers import by dotted path."""

from operations.runner import run_operation

__all__ = ["run_operation"]
