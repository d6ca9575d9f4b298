"""FrameWorker (one-frame slot), RateMeter, LatencyStats and the diagnostics status levels."""
import threading
import time

import pytest

from synergy_ros.ros.worker import FrameWorker, LatencyStats, RateMeter

# ROS 2 message classes / serialization: run on Kilted and Jazzy (make test)
pytestmark = pytest.mark.ros


def _blocking_worker(policy):
    release, started, seen = threading.Event(), threading.Event(), []

    def process(item):
        seen.append(item)
        started.set()
        release.wait(5.0)

    return FrameWorker(process, policy=policy), release, started, seen


@pytest.mark.parametrize("policy,expected", [("latest", [0, 9]), ("drop_new", [0, 1])])
def test_one_pending_frame_and_counted_drops(policy, expected):
    worker, release, started, seen = _blocking_worker(policy)
    assert worker.submit(0)
    assert started.wait(5.0)  # frame 0 in work
    assert worker.submit(1)  # becomes the pending frame
    for i in range(2, 10):
        assert not worker.submit(i)  # busy + one pending: dropped
    release.set()
    deadline = time.monotonic() + 5.0
    while not worker.idle() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == expected
    assert (worker.submitted, worker.dropped, worker.processed) == (10, 8, 2)
    assert worker.stop()


def test_worker_survives_exceptions_and_reports_them():
    errors = []

    def process(item):
        if item == "bad":
            raise RuntimeError("boom")

    worker = FrameWorker(process, on_error=errors.append)
    for item in ("bad", "good"):
        worker.submit(item)
        deadline = time.monotonic() + 5.0
        while not worker.idle() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert worker.errors == 1 and worker.processed == 1 and str(errors[0]) == "boom"
    assert worker.stop()
    with pytest.raises(ValueError, match="latest"):
        worker.policy = "fifo"


def test_stop_waits_for_the_frame_in_work_and_discards_the_pending_one():
    worker, release, started, seen = _blocking_worker("latest")
    worker.submit(0)
    assert started.wait(5.0)
    worker.submit(1)
    threading.Timer(0.2, release.set).start()
    assert worker.stop(timeout=5.0)
    assert seen == [0]


def test_rate_meter_and_latency_stats():
    meter = RateMeter(window_s=10.0)
    for i in range(11):
        meter.tick(now=100.0 + i * 0.1)  # 10 Hz
    assert meter.rate(now=101.0) == pytest.approx(10.0)
    assert meter.rate(now=120.0) == 0.0 and meter.total == 11
    stats = LatencyStats(size=100)
    assert all(v != v for v in stats.percentiles(50))  # NaN when empty
    for value in range(1, 201):
        stats.add(value)
    p50, p95 = stats.percentiles(50, 95)
    assert p50 == pytest.approx(150.5) and p95 == pytest.approx(195.05)  # last 100 kept


def test_diagnostic_levels():
    pytest.importorskip("diagnostic_msgs.msg")
    from diagnostic_msgs.msg import DiagnosticStatus

    from synergy_ros.ros.diagnostics import PipelineSnapshot, status_level, to_diagnostic_array

    def snap(**changes):
        base = dict(input_rate_hz=30.0, output_rate_hz=5.0, latency_p50_ms=10.0,
                    latency_p95_ms=20.0, inference_p50_ms=8.0, inference_p95_ms=9.0,
                    frames_received=100, frames_processed=90, frames_dropped=10,
                    frames_skipped_no_subscribers=0, bad_messages=0, processing_errors=0,
                    new_errors=0, seconds_since_input=0.1, camera_info="received",
                    backend="torch", device="cpu", model="m.pt", model_file="m.pt",
                    input_size="64x48")
        base.update(changes)
        return PipelineSnapshot(**base)

    assert status_level(snap()) == (DiagnosticStatus.OK, "running")
    assert status_level(snap(new_errors=2))[0] == DiagnosticStatus.ERROR
    assert "no image for" in status_level(snap(seconds_since_input=9.0))[1]
    assert "no image received" in status_level(snap(seconds_since_input=None))[1]
    assert "dropping most" in status_level(snap(frames_dropped=80))[1]
    assert "camera_info" in status_level(snap(camera_info="missing"))[1]
    array = to_diagnostic_array(snap(), "synergy_node: pipeline", _stamp())
    values = {v.key: v.value for v in array.status[0].values}
    assert values["latency_p95_ms"] == "20.00" and values["backend"] == "torch"
    assert array.status[0].hardware_id == "m.pt"


def _stamp():
    from builtin_interfaces.msg import Time

    return Time(sec=1)
