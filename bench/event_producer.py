"""A worker-side event producer for bench_events.py: runs in its own process, like a worker.

Claims the given operation, emits COUNT events through the real EventWriter, and writes
one line per committed batch: ``<first seq> <last seq> <commit time>`` to the timing file.
With --naive it stores and publishes every event on its own (the baseline).
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--operation", type=int, required=True)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--timing-file", required=True)
    parser.add_argument("--naive", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from operations import events as events_module
    from operations.models import Operation
    from operations.services import worker_identity

    worker = worker_identity()
    Operation.objects.filter(pk=args.operation).update(status=Operation.Status.RUNNING, worker=worker)
    operation = Operation.objects.get(pk=args.operation)
    timings = open(args.timing_file, "w")

    def publish(operation_id: int, batch: list[dict]) -> None:
        committed = time.time()
        events_module.publish(operation_id, batch)
        timings.write(f"{batch[0]['seq']} {batch[-1]['seq']} {committed:.6f}\n")

    flush_count = 1 if args.naive else None
    writer = events_module.EventWriter(operation, flush_count=flush_count, on_publish=publish)
    heartbeat = events_module.Heartbeat(writer)
    heartbeat.start()
    for index in range(args.count):
        writer.emit(f"[bench] output line {index} of {args.count}: lorem ipsum dolor sit amet")
    writer.flush()
    heartbeat.stop()
    timings.close()
    Operation.objects.filter(pk=args.operation).update(status=Operation.Status.SUCCEEDED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
