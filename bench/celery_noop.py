"""The peer of `aimesh-bench jobs`: the same no-op workload on Celery with a Redis broker.

Submits N no-op tasks from several threads, each carrying its enqueue time; the task records
how long it waited before starting and counts itself done in Redis. Prints throughput from the
first submission to the last completion and the enqueue-to-start latency percentiles.

Run by scripts/bench-jobs, which starts the Celery worker (prefork, one process per core unless
told otherwise) and installs pinned Celery and redis-py into a cache venv.
"""

import argparse
import os
import statistics
import sys
import threading
import time

import redis
from celery import Celery

BROKER = os.environ.get("CELERY_BENCH_BROKER", "redis://127.0.0.1:6379/15")
app = Celery("celery_noop", broker=BROKER)
app.conf.update(
    task_ignore_result=True,
    worker_prefetch_multiplier=16,
    task_acks_late=True,  # like aimesh's leases: a task is not lost if its worker dies
    broker_connection_retry_on_startup=True,
)
_redis = redis.Redis.from_url(BROKER)


@app.task(name="noop")
def noop(enqueued_at):
    waited = time.time() - enqueued_at
    pipe = _redis.pipeline()
    pipe.rpush("bench:waited", waited)
    pipe.incr("bench:done")
    pipe.execute()


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--submitters", type=int, default=16)
    parser.add_argument("--paced-jobs", type=int, default=1000)
    args = parser.parse_args()

    _redis.delete("bench:waited", "bench:done")
    begin = time.time()
    per = -(-args.jobs // args.submitters)

    def submit(count):
        for _ in range(count):
            noop.delay(time.time())

    threads = []
    for s in range(args.submitters):
        count = max(0, min(per, args.jobs - s * per))
        thread = threading.Thread(target=submit, args=(count,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    submitted = time.time() - begin
    while int(_redis.get("bench:done") or 0) < args.jobs:
        time.sleep(0.002)
    elapsed = time.time() - begin
    waited = [float(v) for v in _redis.lrange("bench:waited", 0, -1)]

    # Unsaturated: a steady 200 tasks/s, so the latency is the queue's hand-off, not backlog.
    _redis.delete("bench:waited", "bench:done")
    next_at = time.time()
    for _ in range(args.paced_jobs):
        next_at += 0.005
        time.sleep(max(0.0, next_at - time.time()))
        noop.delay(time.time())
    while int(_redis.get("bench:done") or 0) < args.paced_jobs:
        time.sleep(0.002)
    paced = [float(v) for v in _redis.lrange("bench:waited", 0, -1)]

    print(f"celery (Redis broker, prefork workers): {args.jobs} no-op tasks")
    print(f"  submitted in {submitted:.2f}s, all completed in {elapsed:.2f}s")
    print(
        f"  throughput {args.jobs / elapsed:.0f} jobs/s   enqueue-to-start while saturated "
        f"p50 {percentile(waited, 0.5) * 1000:.2f} ms  p99 {percentile(waited, 0.99) * 1000:.2f} ms"
    )
    print(
        f"  enqueue-to-start at 200 jobs/s ({args.paced_jobs} jobs): "
        f"p50 {percentile(paced, 0.5) * 1000:.2f} ms  p99 {percentile(paced, 0.99) * 1000:.2f} ms"
    )
    _redis.delete("bench:waited", "bench:done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
