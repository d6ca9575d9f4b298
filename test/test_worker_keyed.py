"""FrameWorker with several keys (cameras): one slot per key, batches of every pending key."""
import threading
import time

import pytest

from synergy_ros.ros.worker import FrameWorker


def _wait_idle(worker, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not worker.idle() and time.monotonic() < deadline:
        time.sleep(0.01)
    return worker.idle()


def _blocking_batch_worker(policy="latest"):
    release, started, seen = threading.Event(), threading.Event(), []

    def process(batch):
        seen.append(dict(batch))
        started.set()
        release.wait(5.0)

    return FrameWorker(process, policy=policy, batch=True), release, started, seen


@pytest.mark.parametrize("policy,fast_kept", [("latest", "a9"), ("drop_new", "a1")])
def test_one_slot_per_key_and_every_pending_key_in_the_next_batch(policy, fast_kept):
    worker, release, started, seen = _blocking_batch_worker(policy)
    worker.submit("a0", key="a")
    assert started.wait(5.0)  # batch {a: a0} in work
    for i in range(1, 10):  # a fast camera: 9 frames while the worker is busy
        worker.submit(f"a{i}", key="a")
    worker.submit("b1", key="b")  # two slow cameras: one frame each
    worker.submit("c1", key="c")
    release.set()
    assert _wait_idle(worker)
    # the second batch serves every camera with a frame pending, the fast one included once
    assert seen == [{"a": "a0"}, {"a": fast_kept, "b": "b1", "c": "c1"}]
    assert worker.dropped == 8 and dict(worker.dropped_by_key) == {"a": 8}
    assert worker.submitted_by_key == {"a": 10, "b": 1, "c": 1}
    assert worker.processed == 4 and dict(worker.batch_sizes) == {1: 1, 3: 1}
    assert worker.stop()


def test_a_silent_key_never_delays_the_others():
    seen = []
    worker = FrameWorker(lambda batch: seen.append(sorted(batch)), batch=True)
    for i in range(5):
        worker.submit(i, key="front")
        worker.submit(i, key="left")
        assert _wait_idle(worker)  # "rear" never submits: nobody waits for it
    assert all(keys in (["front"], ["front", "left"], ["left"]) for keys in seen)
    assert sum(len(keys) for keys in seen) == 10 and worker.dropped == 0
    assert worker.stop()


def test_a_failing_batch_is_counted_once_and_the_worker_goes_on():
    errors = []

    def process(batch):
        if "bad" in batch.values():
            raise RuntimeError("device error")

    worker = FrameWorker(process, on_error=errors.append, batch=True)
    worker.submit("bad", key="a")
    assert _wait_idle(worker)
    worker.submit("good", key="a")
    assert _wait_idle(worker)
    assert worker.errors == 1 and worker.processed == 1 and str(errors[0]) == "device error"
    assert worker.stop()


def test_without_batch_keys_are_taken_one_at_a_time_oldest_first():
    seen, release, started = [], threading.Event(), threading.Event()

    def process(item):
        seen.append(item)
        started.set()
        release.wait(5.0)

    worker = FrameWorker(process)
    worker.submit("x0", key="x")
    assert started.wait(5.0)
    worker.submit("y1", key="y")
    worker.submit("x1", key="x")
    release.set()
    assert _wait_idle(worker)
    assert seen == ["x0", "y1", "x1"] and dict(worker.batch_sizes) == {1: 3}
    assert worker.stop()
