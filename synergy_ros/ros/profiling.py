"""Where a frame's time goes inside the node: perf_counter spans per stage, with percentiles.

Enabled by the node's ``profile`` parameter (off by default: a disabled profile costs one
attribute test per stage). Each frame records the stages it passes through, in milliseconds:

* ``convert``: image message -> (H, W, 3) RGB view, on the executor thread;
* ``handoff``: from the executor thread's hand-off to the worker thread picking the frame up;
* ``wanted``: which outputs have subscribers;
* ``preprocess`` / ``inference`` / ``postprocess``: the Predictor's own timings;
* ``build.<output>`` / ``publish.<output>``: each output message's construction and
  ``Publisher.publish`` (serialisation + hand-over to DDS);
* ``bookkeeping``: latency/rate statistics after the last publish;
* ``callback_to_published``: the whole span from the image callback to the last publish.

Deserialisation of the incoming image happens inside rclpy before the callback, so it is not a
span here; the node benchmark (benchmarks/bench_node.py) measures it from outside as the
end-to-end time left over after these spans and the transport floor.
"""
from __future__ import annotations

import threading
import time

from synergy_ros.ros.worker import LatencyStats


class FrameSpans:
    """The spans of one frame: ``mark(name)`` closes the span that started at the last mark."""

    __slots__ = ("spans", "_last")

    def __init__(self, start: float | None = None) -> None:
        self.spans: dict[str, float] = {}
        self._last = time.perf_counter() if start is None else start

    def mark(self, name: str) -> None:
        """Record the time since the previous mark (or the start) as stage ``name`` (ms)."""
        now = time.perf_counter()
        self.spans[name] = self.spans.get(name, 0.0) + (now - self._last) * 1e3
        self._last = now

    def restart(self) -> None:
        """Start the next span now without recording the time since the previous mark."""
        self._last = time.perf_counter()

    def add(self, name: str, milliseconds: float) -> None:
        """Record a duration measured elsewhere (e.g. the Predictor's timings)."""
        self.spans[name] = self.spans.get(name, 0.0) + float(milliseconds)


class ProfileStats:
    """p50/p95 per stage over the last ``size`` frames (thread-safe)."""

    def __init__(self, size: int = 300) -> None:
        self._size = size
        self._stages: dict[str, LatencyStats] = {}
        self._lock = threading.Lock()

    def add(self, spans: FrameSpans) -> None:
        """Add one frame's spans."""
        with self._lock:
            for name, value in spans.spans.items():
                stats = self._stages.get(name)
                if stats is None:
                    stats = self._stages[name] = LatencyStats(self._size)
                stats.add(value)

    def summary(self) -> dict[str, tuple[float, float]]:
        """Stage -> (p50 ms, p95 ms), in the order stages were first seen."""
        with self._lock:
            stages = dict(self._stages)
        return {name: tuple(stats.percentiles(50, 95)) for name, stats in stages.items()}
