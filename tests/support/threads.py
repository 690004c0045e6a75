"""Running one function in several threads at once, each with its own database connection."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import connection


def in_threads(count: int, target, *args) -> list:
    """``target(index, *args)`` in ``count`` threads released together by a barrier; each
    thread closes its own database connection when done. Returns the results in index order."""
    barrier = threading.Barrier(count)

    def run(index: int):
        try:
            barrier.wait()
            return target(index, *args)
        finally:
            connection.close()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))
