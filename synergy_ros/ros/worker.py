"""A worker thread fed through a one-frame slot, so callbacks never wait for inference.

The executor thread calls :meth:`FrameWorker.submit` (constant time, never blocks on work);
the worker thread processes one frame at a time. While it is busy at most one frame waits:
with policy ``latest`` a new frame replaces the pending one, with ``drop_new`` the new frame
is dropped; either way the dropped frame is counted and memory stays bounded (one frame in
work + one pending) however fast the camera publishes.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable

import numpy as np


class FrameWorker:
    """Run ``process(item)`` on a background thread for the newest submitted item.

    Args:
        process: called on the worker thread for each item taken from the slot. Exceptions
            are passed to ``on_error`` (the thread keeps running).
        on_error: called with the exception (e.g. to log it throttled); default ignores.
        policy: ``latest`` (replace the pending item) or ``drop_new`` (keep it).
        name: thread name.
    """

    def __init__(self, process: Callable[[Any], None],
                 on_error: Callable[[BaseException], None] | None = None,
                 policy: str = "latest", name: str = "synergy-worker") -> None:
        self._process = process
        self._on_error = on_error or (lambda exc: None)
        self.policy = policy
        self._cond = threading.Condition()
        self._pending: Any = None
        self._has_pending = False
        self._busy = False
        self._stopping = False
        self.submitted = 0
        self.dropped = 0
        self.processed = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def policy(self) -> str:
        """``latest`` or ``drop_new`` (may be changed while running)."""
        return self._policy

    @policy.setter
    def policy(self, value: str) -> None:
        if value not in ("latest", "drop_new"):
            raise ValueError(f"queue policy must be 'latest' or 'drop_new', got {value!r}")
        self._policy = value

    def submit(self, item: Any) -> bool:
        """Offer an item; returns False when an item was dropped because the worker was busy."""
        with self._cond:
            self.submitted += 1
            if self._has_pending:
                self.dropped += 1
                if self._policy == "latest":
                    self._pending = item
                return False
            self._pending, self._has_pending = item, True
            self._cond.notify()
            return True

    def idle(self) -> bool:
        """True when nothing is pending and nothing is being processed."""
        with self._cond:
            return not self._has_pending and not self._busy

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._has_pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                item, self._pending, self._has_pending = self._pending, None, False
                self._busy = True
            try:
                self._process(item)
                self.processed += 1
            except Exception as exc:  # noqa: BLE001 - the worker must survive any frame
                self.errors += 1
                self._on_error(exc)
            finally:
                with self._cond:
                    self._busy = False
                    item = None

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the thread to finish after its current item; True if it ended within timeout."""
        with self._cond:
            self._stopping = True
            self._pending, self._has_pending = None, False
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()


class RateMeter:
    """Events per second over a sliding window (like diagnostic_updater's FrequencyStatus)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self.total = 0

    def tick(self, now: float | None = None) -> None:
        """Record one event at ``now`` (monotonic seconds)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.total += 1
            self._times.append(now)
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        """Events per second in the window ending at ``now`` (0 when fewer than 2 events)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], self._times[-1] - self._times[0])
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def last(self) -> float | None:
        """Monotonic time of the latest event, or None."""
        with self._lock:
            return self._times[-1] if self._times else None


class LatencyStats:
    """The last ``size`` durations (ms) with percentiles."""

    def __init__(self, size: int = 300) -> None:
        self._values: collections.deque = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value_ms: float) -> None:
        """Record one duration in milliseconds."""
        with self._lock:
            self._values.append(float(value_ms))

    def percentiles(self, *qs: float) -> list[float]:
        """The requested percentiles (0-100) in ms; NaN when empty."""
        with self._lock:
            values = np.array(self._values, dtype=np.float64)
        if values.size == 0:
            return [float("nan")] * len(qs)
        return [float(np.percentile(values, q)) for q in qs]

    def values(self) -> list[float]:
        """A copy of the recorded durations (ms)."""
        with self._lock:
            return list(self._values)
