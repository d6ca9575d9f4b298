"""Bounded-memory concurrency for streaming jobs: a prefetching reader and an ordered pool.

:func:`prefetch` reads an iterator on a background thread a few items ahead;
:class:`OrderedPool` runs work items on several threads and hands the results back in
submission order. Both hold at most a small, fixed number of items, so memory does not grow
with the length of the stream, and both pass exceptions back to the caller.
"""
from __future__ import annotations

import os
import queue
import threading
from typing import Any, Callable, Iterable, Iterator

_STOP = object()


class ReadError(Exception):
    """The source iterator of :func:`prefetch` failed after ``count`` items (``cause``)."""

    def __init__(self, count: int, cause: BaseException) -> None:
        """Record how many messages were read before ``cause``."""
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.count = count
        self.cause = cause


def prefetch(messages: Iterable[Any], maxsize: int = 8) -> Iterator[Any]:
    """Iterate ``messages`` on a daemon thread, at most ``maxsize`` items ahead.

    Reading and deserialising overlap with the consumer's work; a failure while reading is
    re-raised here as :class:`ReadError` after the items read before it.
    """
    items: queue.Queue = queue.Queue(maxsize=maxsize)
    done = object()
    stop = threading.Event()

    def put(item: Any) -> bool:
        """Queue ``item`` unless the consumer has stopped (then False, never blocking)."""
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def worker() -> None:
        count = 0
        try:
            for item in messages:
                if not put(item):
                    return
                count += 1
            put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(ReadError(count, exc))

    thread = threading.Thread(target=worker, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, ReadError):
                raise item
            yield item
    finally:
        stop.set()


class OrderedPool:
    """Run ``work(item, worker_index)`` on ``workers`` threads; ``emit(result)`` in order.

    Results are handed to ``emit`` one at a time and in submission order, whichever thread
    finished first. At most ``2 x workers`` items wait (``submit`` blocks when full), so
    memory is bounded. The first exception in ``work`` or ``emit`` stops further work and is
    re-raised by the next ``submit`` or by ``close``. numpy and OpenCV release the GIL in
    their loops, so scoring threads run in parallel on several cores.
    """

    def __init__(self, work: Callable[[Any, int], Any], emit: Callable[[Any], None],
                 workers: int = 1, name: str = "worker") -> None:
        """Start the threads."""
        self._work, self._emit = work, emit
        self._items: queue.Queue = queue.Queue(maxsize=2 * workers)
        self._finished: dict[int, Any] = {}
        self._next = 0
        self._submitted = 0
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._threads = [threading.Thread(target=self._loop, args=(index,), daemon=True,
                                          name=f"{name}-{index}") for index in range(workers)]
        for thread in self._threads:
            thread.start()

    def _loop(self, worker: int) -> None:
        while True:
            entry = self._items.get()
            if entry is _STOP:
                return
            index, item = entry
            result = None
            if self._error is None:
                try:
                    result = self._work(item, worker)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    self._error = self._error or exc
            with self._lock:
                self._finished[index] = result
                while self._next in self._finished:
                    ready = self._finished.pop(self._next)
                    self._next += 1
                    if self._error is None:
                        try:
                            self._emit(ready)
                        except BaseException as exc:  # noqa: BLE001
                            self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, item: Any) -> None:
        """Queue ``item`` (blocks while ``2 x workers`` items wait)."""
        self._raise()
        self._items.put((self._submitted, item))
        self._submitted += 1

    def close(self) -> None:
        """Finish everything queued, stop the threads, re-raise a worker exception."""
        for _ in self._threads:
            self._items.put(_STOP)
        for thread in self._threads:
            thread.join()
        self._raise()


def default_workers() -> int:
    """Scoring threads: one per CPU core beyond one for reading and inference, at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, (cores or 1) - 1))
