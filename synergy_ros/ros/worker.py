"""A worker thread fed through one-frame slots, so callbacks never wait for inference.

The executor thread calls :meth:`FrameWorker.submit` (constant time, never blocks on work);
the worker thread processes the pending items. There is one slot per *key* (a camera; the
single-camera node uses one key): while the worker is busy at most one item waits per key.
With policy ``latest`` a new item replaces that key's pending one, with ``drop_new`` the new
item is dropped; either way the dropped item is counted (per key too) and memory stays bounded
(one batch in work + one pending item per key) however fast a camera publishes.

With ``batch=True`` the worker takes the pending item of *every* key that has one and hands
them over together (``process({key: item, ...})``, oldest pending first): every key with an
item waiting is served in every batch, so a fast camera cannot starve a slow one, and a key
with nothing pending (a silent camera) never delays the others.

With a ``finish`` stage the work is pipelined over two threads: the worker thread runs
``process`` (inference) and hands its result to a finisher thread that runs ``finish``
(building and publishing the outputs), so the next frame's inference overlaps this frame's
publishing. The hand-off holds one result, and the worker takes new work only while that slot
is empty: when publishing is the slower stage, the frame inferred next is the newest one at the
moment the slot frees, not one that would then wait two publishing periods (results stay in
order, memory stays bounded: one item in ``process``, one handed off, one in ``finish``, one
pending per key).
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Hashable

import numpy as np


class FrameWorker:
    """Run ``process`` on a background thread for the newest submitted item of each key.

    Args:
        process: called on the worker thread with one item (``batch=False``: each pending
            item in turn) or with ``{key: item}`` of every key that had one pending
            (``batch=True``). Exceptions are passed to ``on_error`` (the thread keeps running).
        on_error: called with the exception (e.g. to log it throttled); default ignores.
        policy: ``latest`` (replace the key's pending item) or ``drop_new`` (keep it).
        name: thread name.
        batch: hand every key's pending item over in one call (see the module doc).
        finish: a second stage run on its own thread with what ``process`` returned (not
            called when it returned None); exceptions go to ``on_error`` as well.

    Counters: ``submitted``, ``dropped``, ``processed`` (items through every stage),
    ``errors`` (calls that raised), the same per key in ``submitted_by_key`` /
    ``dropped_by_key``, and ``batch_sizes`` (a Counter: items per call -> calls).
    """

    def __init__(self, process: Callable[[Any], Any],
                 on_error: Callable[[BaseException], None] | None = None,
                 policy: str = "latest", name: str = "synergy-worker",
                 batch: bool = False, finish: Callable[[Any], None] | None = None) -> None:
        self._process = process
        self._finish = finish
        self._on_error = on_error or (lambda exc: None)
        self.policy = policy
        self._batch = bool(batch)
        self._cond = threading.Condition()
        self._pending: dict[Hashable, Any] = {}  # key -> item, oldest pending first
        self._busy = False
        self._handoff: tuple[Any, int] | None = None  # (process's result, items) for finish
        self._finishing = False
        self._stopping = False
        self.submitted = 0
        self.dropped = 0
        self.processed = 0
        self.errors = 0
        self.submitted_by_key: collections.Counter = collections.Counter()
        self.dropped_by_key: collections.Counter = collections.Counter()
        self.batch_sizes: collections.Counter = collections.Counter()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._finisher = (threading.Thread(target=self._run_finish, name=f"{name}-finish",
                                           daemon=True) if finish is not None else None)
        self._thread.start()
        if self._finisher is not None:
            self._finisher.start()

    @property
    def policy(self) -> str:
        """``latest`` or ``drop_new`` (may be changed while running)."""
        return self._policy

    @policy.setter
    def policy(self, value: str) -> None:
        if value not in ("latest", "drop_new"):
            raise ValueError(f"queue policy must be 'latest' or 'drop_new', got {value!r}")
        self._policy = value

    def submit(self, item: Any, key: Hashable = "") -> bool:
        """Offer ``item`` in ``key``'s slot; returns False when an item of that key was dropped
        because one was already pending."""
        with self._cond:
            self.submitted += 1
            self.submitted_by_key[key] += 1
            if key in self._pending:
                self.dropped += 1
                self.dropped_by_key[key] += 1
                if self._policy == "latest":
                    self._pending[key] = item  # keeps its place in the order
                return False
            self._pending[key] = item
            self._cond.notify_all()  # the finisher waits on the same condition
            return True

    def idle(self) -> bool:
        """True when nothing is pending and nothing is being processed."""
        with self._cond:
            return (not self._pending and not self._busy and self._handoff is None
                    and not self._finishing)

    def _take(self) -> Any:
        """The work of one call, taken out of the slots (lock held): the oldest pending item,
        or with ``batch`` the whole ``{key: item}`` dict."""
        if self._batch:
            items, self._pending = self._pending, {}
            return items
        return self._pending.pop(next(iter(self._pending)))

    def _ready(self) -> bool:
        """Work to take (lock held): a pending item, and with a finish stage a free slot."""
        return bool(self._pending) and (self._finish is None or self._handoff is None)

    def _attempt(self, stage: Callable[[Any], Any], arg: Any) -> tuple[bool, Any]:
        """``(True, stage(arg))``, or ``(False, None)`` after counting and reporting what it
        raised (an ``on_error`` that raises itself cannot stop a thread either)."""
        try:
            return True, stage(arg)
        except Exception as exc:  # noqa: BLE001 - the threads must survive any frame
            with self._cond:
                self.errors += 1
            try:
                self._on_error(exc)
            except Exception:  # noqa: BLE001 - reporting must not kill the thread
                pass
            return False, None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._ready() and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                work = self._take()
                self._busy = True
            size = len(work) if self._batch else 1
            ok, result = False, None
            try:
                ok, result = self._attempt(self._process, work)
            finally:  # also for what _attempt lets through (SystemExit ...): never stuck busy
                self._after_process(ok, result, size)
                work = result = None

    def _after_process(self, ok: bool, result: Any, size: int) -> None:
        """Count the batch and hand its result to the finisher (worker thread)."""
        with self._cond:
            self.batch_sizes[size] += 1
            if ok and (self._finish is None or result is None):  # done here
                self.processed += size
            elif ok and not self._stopping:  # the slot is empty: work is taken only then
                self._handoff = (result, size)
                self._cond.notify_all()
            self._busy = False

    def _run_finish(self) -> None:
        while True:
            with self._cond:
                while self._handoff is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                (result, size), self._handoff = self._handoff, None
                self._finishing = True
                self._cond.notify_all()  # the worker may hand off the next result
            ok = False
            try:
                ok, _ = self._attempt(self._finish, result)
            finally:  # never left "finishing" (idle() would never be true again)
                with self._cond:
                    if ok:
                        self.processed += size
                    self._finishing = False
                result = None

    def batch_size_counts(self) -> collections.Counter:
        """A copy of :attr:`batch_sizes` taken under the worker's lock (safe to read from
        another thread while the worker adds to it)."""
        with self._cond:
            return collections.Counter(self.batch_sizes)

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the thread to finish after its current work; True if it ended within timeout."""
        with self._cond:
            self._stopping = True
            self._pending = {}
            self._handoff = None
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        self._thread.join(timeout)
        if self._finisher is not None:
            self._finisher.join(max(0.0, deadline - time.monotonic()))
            if self._finisher.is_alive():
                return False
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
