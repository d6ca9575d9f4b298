"""The evaluator's concurrency helpers: prefetching reader and ordered worker pool."""
import random
import threading
import time

import pytest

from synergy_ros.evaluation.streaming import OrderedPool, ReadError, prefetch


def test_ordered_pool_emits_in_submission_order_across_threads():
    rng = random.Random(0)
    delays = [rng.uniform(0, 0.01) for _ in range(60)]
    used_threads, emitted = set(), []

    def work(item, worker):
        time.sleep(delays[item])  # out-of-order completion
        used_threads.add(threading.current_thread().name)
        return item * item, worker

    pool = OrderedPool(work, emitted.append, workers=4, name="t")
    for item in range(60):
        pool.submit(item)
    pool.close()
    assert [value for value, _ in emitted] == [i * i for i in range(60)]
    assert len(used_threads) > 1
    assert {worker for _, worker in emitted} <= {0, 1, 2, 3}


def test_ordered_pool_reraises_a_worker_error():
    def work(item, worker):
        if item == 3:
            raise RuntimeError("bad item 3")
        return item

    pool = OrderedPool(work, lambda result: None, workers=2)
    with pytest.raises(RuntimeError, match="bad item 3"):
        for item in range(50):
            pool.submit(item)
        pool.close()


def test_ordered_pool_bounds_the_queue():
    release = threading.Event()
    pool = OrderedPool(lambda item, worker: release.wait(5), lambda result: None, workers=1)
    submitted = []
    feeder = threading.Thread(target=lambda: [submitted.append(pool.submit(i))
                                              for i in range(10)], daemon=True)
    feeder.start()
    time.sleep(0.3)
    assert len(submitted) <= 3  # 1 running + 2 queued
    release.set()
    feeder.join(5)
    pool.close()
    assert len(submitted) == 10


def test_prefetch_yields_everything_then_reports_where_reading_failed():
    def source():
        yield from range(5)
        raise OSError("disk gone")

    got = []
    with pytest.raises(ReadError) as info:
        for item in prefetch(source(), maxsize=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
    assert info.value.count == 5 and isinstance(info.value.cause, OSError)


def test_prefetch_stops_its_thread_when_the_consumer_stops():
    produced = []

    def source():
        for i in range(1000):
            produced.append(i)
            yield i

    for item in prefetch(source(), maxsize=2):
        if item == 3:
            break
    time.sleep(0.3)
    assert len(produced) < 10


def test_prefetch_thread_ends_when_the_consumer_stops_at_a_full_queue_after_the_source():
    def alive():
        return sum(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())

    before = alive()
    stream = prefetch(iter(range(2)), maxsize=1)
    assert next(stream) == 0
    time.sleep(0.3)  # item 1 fills the queue; the end-of-stream marker has to wait
    stream.close()  # the consumer stops (as evaluate does at --max-frames)
    deadline = time.monotonic() + 5.0
    while alive() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive() == before
