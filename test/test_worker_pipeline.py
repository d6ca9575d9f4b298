"""FrameWorker with a finish stage: inference and publishing pipelined over two threads."""
import threading
import time

from synergy_ros.ros.worker import FrameWorker


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)
    return predicate()


class Stages:
    """process returns its item doubled; finish blocks until released, recording order."""

    def __init__(self):
        self.processed, self.finished = [], []
        self.release = threading.Event()
        self.finishing = threading.Event()

    def process(self, item):
        self.processed.append(item)
        return None if item is None else item * 2

    def finish(self, result):
        self.finishing.set()
        self.release.wait(5.0)
        if result == -2:
            raise RuntimeError("publish failed")
        self.finished.append(result)


def test_the_next_inference_runs_while_the_previous_frame_is_published():
    stages = Stages()
    worker = FrameWorker(stages.process, finish=stages.finish)
    try:
        worker.submit(1)
        assert stages.finishing.wait(5.0)  # 1 is in finish, blocked
        worker.submit(2)
        assert _wait(lambda: stages.processed == [1, 2])  # 2 inferred meanwhile
        assert stages.finished == [] and not worker.idle()
        stages.release.set()
        assert _wait(worker.idle)
        assert stages.finished == [2, 4] and worker.processed == 2
    finally:
        stages.release.set()
        assert worker.stop()


def test_a_slow_publisher_holds_new_work_until_the_slot_frees_newest_frame_wins():
    """finish blocked on 1: 2 is inferred and handed off; with the slot full the worker takes
    nothing more (a frame inferred now would wait two publishing periods), so 3..9 replace each
    other in the pending slot and the newest, 9, is inferred once the slot frees."""
    stages = Stages()
    worker = FrameWorker(stages.process, finish=stages.finish)
    try:
        worker.submit(1)
        assert stages.finishing.wait(5.0)
        worker.submit(2)
        assert _wait(lambda: stages.processed == [1, 2])
        for item in range(3, 10):
            worker.submit(item)
        time.sleep(0.05)
        assert stages.processed == [1, 2]  # the worker waits for the hand-off slot
        assert worker.dropped == 6
        stages.release.set()
        assert _wait(worker.idle)
        assert stages.processed == [1, 2, 9]
        assert stages.finished == [2, 4, 18] and worker.processed == 3
    finally:
        stages.release.set()
        assert worker.stop()


def test_finish_errors_are_counted_and_none_results_skip_finish():
    stages = Stages()
    stages.release.set()
    errors = []
    worker = FrameWorker(stages.process, on_error=errors.append, finish=stages.finish)
    try:
        for item in (-1, None, 5):
            worker.submit(item)
            assert _wait(worker.idle)
        assert stages.processed == [-1, None, 5] and stages.finished == [10]
        assert worker.errors == 1 and isinstance(errors[0], RuntimeError)
        assert worker.processed == 2  # -1 failed in finish; None was done in process
    finally:
        assert worker.stop()


def test_stop_ends_both_threads_even_with_a_result_waiting():
    stages = Stages()
    worker = FrameWorker(stages.process, finish=stages.finish)
    worker.submit(1)
    assert stages.finishing.wait(5.0)
    worker.submit(2)
    assert _wait(lambda: stages.processed == [1, 2])
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    time.sleep(0.05)
    stages.release.set()  # the finisher ends its current frame, then stops
    stopper.join(5.0)
    assert not stopper.is_alive()
    assert stages.finished == [2]  # the handed-off 4 was dropped by stop


def test_an_on_error_that_raises_stops_neither_thread():
    stages = Stages()
    stages.release.set()

    def broken_on_error(exc):
        raise ValueError("the error reporter itself failed")

    worker = FrameWorker(stages.process, on_error=broken_on_error, finish=stages.finish)
    try:
        for item in (-1, 3):
            worker.submit(item)
            assert _wait(worker.idle)
        assert stages.finished == [6] and worker.errors == 1
    finally:
        assert worker.stop()
