"""Match messages of several topics by ``header.stamp``, streaming, with bounded memory.

A bag stores messages in receive order, so a prediction recorded by a node arrives after the
ground truth it belongs to (or before it), and topics never interleave perfectly. Nor do the
stamps of one topic always increase: two publishers on one topic finish out of order, a
stream pauses, one message carries a far-future stamp, sim time restarts, a looping replay or
two recordings end up in one bag. :class:`StampMatcher` takes messages one at a time
(``push``, with the stamp *and* the time the bag recorded the message) and hands back complete
frames as soon as they are decided:

- one *anchor* stream (the frames being scored: predictions or camera images);
- *required* streams (e.g. depth ground truth): a frame without them is counted as incomplete
  and dropped, never scored silently;
- *optional* streams (e.g. semantic ground truth): attached when present.

Rules, none of which assume any order of stamps:

- An anchor's partner on another stream is a message whose stamp is within ``max_dt_ns`` of
  the anchor's (``0``: exactly equal) and which the bag recorded within ``window_ns`` of the
  anchor (receive time, i.e. seconds of recording). Among several, the nearest stamp wins
  (ties: the earlier stamp, then the message recorded nearer the anchor); a message is used
  at most once.
- An anchor is decided as soon as every other stream has an exactly-stamped partner, else
  once the recording has moved ``window_ns`` past it (or at ``finish()``), with the best
  partners there are. Anchors are decided in the order their frames complete.
- A message that no waiting or later anchor can take (recorded more than ``window_ns`` before
  the oldest waiting anchor and before the newest message) is given up as unmatched.

So memory is bounded by the window, not by stamps: at most ``window_ns`` of recording waits
on the anchor stream and ``2 * window_ns`` on the others. Everything that does not end up in a
frame is counted in :class:`MatchStats` with why: an anchor without a required partner
(``incomplete_frames``), a message without an anchor (``unmatched``), a repeated stamp
(``duplicates``: a copy of a message already used within the window), and a pair that would
have matched but was recorded further apart than the window (``outside_window``: raise the
window).
"""
from __future__ import annotations

import bisect
import collections
import dataclasses
from typing import Any, Iterable

#: Default match window (ns of recording): 5 s covers a node's latency and recorder buffering.
DEFAULT_WINDOW_NS = 5_000_000_000
#: How long (in windows) the stamps of decided messages are remembered to tell a duplicate or
#: a partner outside the window from a message that never had one (integers only).
_MEMORY_WINDOWS = 10


@dataclasses.dataclass
class MatchedFrame:
    """One anchor message with its matched partners.

    ``items`` maps stream name -> item (the anchor's included; unmatched optional streams are
    absent); ``stamps_ns`` maps the same names to the partner's stamp in nanoseconds.
    """

    stamp_ns: int
    items: dict[str, Any]
    stamps_ns: dict[str, int]

    def dt_ns(self, stream: str) -> int:
        """Absolute stamp difference (ns) between the anchor and ``stream``'s partner."""
        return abs(self.stamps_ns[stream] - self.stamp_ns)


@dataclasses.dataclass
class MatchStats:
    """Counts per stream: messages received, used in frames, never matched, duplicate stamps.

    ``incomplete_frames`` counts anchors dropped because a required stream had no partner;
    ``missing`` counts, per required/optional stream, the frames (or dropped anchors) that
    lacked it; ``outside_window`` counts, per stream, messages left unmatched although a
    partner with a fitting stamp was recorded, more than ``window_s`` seconds away.
    """

    received: dict[str, int]
    matched: dict[str, int]
    unmatched: dict[str, int]
    duplicates: dict[str, int]
    missing: dict[str, int]
    outside_window: dict[str, int]
    window_s: float = 0.0
    frames: int = 0
    incomplete_frames: int = 0

    def to_dict(self) -> dict:
        """Return a JSON-serialisable copy."""
        return dataclasses.asdict(self)

    def summary(self, anchor: str) -> str:
        """One paragraph saying how many frames matched and what was left over, and why."""
        parts = [f"{self.frames} matched frames from {self.received.get(anchor, 0)} "
                 f"'{anchor}' messages"]
        if self.incomplete_frames:
            parts.append(f"{self.incomplete_frames} '{anchor}' messages had no partner on a "
                         "required topic")
        for stream, count in self.unmatched.items():
            if count and stream != anchor:
                parts.append(f"{count} of {self.received[stream]} '{stream}' messages unmatched")
        for stream, count in self.duplicates.items():
            if count:
                parts.append(f"{count} '{stream}' messages repeated a stamp (ignored)")
        late = {stream: count for stream, count in self.outside_window.items() if count}
        if late:
            listing = ", ".join(f"{count} '{stream}'" for stream, count in late.items())
            parts.append(f"of those, {listing} messages had a partner with a fitting stamp "
                         f"recorded more than {self.window_s:g} s apart (outside the match "
                         "window: raise it to pair them)")
        return "; ".join(parts)


@dataclasses.dataclass(eq=False)
class _Entry:
    """One waiting message: ``rx`` is its receive (bag) time, ns."""

    stamp: int
    rx: int
    item: Any
    done: bool = False  # used in a frame or given up


class _Pending:
    """One stream's waiting messages: a sorted list of distinct stamps -> entries by arrival."""

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.by_stamp: dict[int, list[_Entry]] = {}

    def __len__(self) -> int:
        return sum(len(entries) for entries in self.by_stamp.values())

    def add(self, entry: _Entry) -> None:
        entries = self.by_stamp.get(entry.stamp)
        if entries is None:
            bisect.insort(self.keys, entry.stamp)
            entries = self.by_stamp[entry.stamp] = []
        entries.append(entry)

    def remove(self, entry: _Entry) -> None:
        entries = self.by_stamp[entry.stamp]
        entries.remove(entry)
        if not entries:
            del self.by_stamp[entry.stamp]
            del self.keys[bisect.bisect_left(self.keys, entry.stamp)]

    def best(self, stamp: int, rx: int, max_dt: int, window: int) -> _Entry | None:
        """The partner for an anchor at ``stamp`` received at ``rx`` (module docstring rules)."""
        lo = bisect.bisect_left(self.keys, stamp - max_dt)
        hi = bisect.bisect_right(self.keys, stamp + max_dt)
        best, best_key = None, None
        for key in self.keys[lo:hi]:
            for entry in self.by_stamp[key]:
                gap = abs(entry.rx - rx)
                rank = (abs(key - stamp), key, gap)
                if gap <= window and (best_key is None or rank < best_key):
                    best, best_key = entry, rank
        return best


class _Recent:
    """Stamps (ints) of one stream's decided messages with their receive time, pruned by age."""

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.rx: dict[int, int] = {}  # stamp -> latest receive time recorded with it
        self.order: collections.deque[tuple[int, int]] = collections.deque()

    def add(self, stamp: int, rx: int) -> None:
        if stamp not in self.rx:
            bisect.insort(self.keys, stamp)
        self.rx[stamp] = max(rx, self.rx.get(stamp, rx))
        self.order.append((rx, stamp))

    def near(self, stamp: int, max_dt: int) -> list[int]:
        """Receive times of remembered stamps within ``max_dt`` of ``stamp``."""
        lo = bisect.bisect_left(self.keys, stamp - max_dt)
        hi = bisect.bisect_right(self.keys, stamp + max_dt)
        return [self.rx[key] for key in self.keys[lo:hi]]

    def prune(self, before_rx: int) -> None:
        while self.order and self.order[0][0] < before_rx:
            rx, stamp = self.order.popleft()
            if self.rx.get(stamp) == rx:
                del self.rx[stamp]
                del self.keys[bisect.bisect_left(self.keys, stamp)]


class StampMatcher:
    """Streaming nearest-stamp matcher (see the module docstring for the rules).

    Args:
        anchor: name of the stream whose messages become frames.
        required: streams every frame needs.
        optional: streams attached when a partner exists.
        max_dt_ns: largest allowed stamp difference, nanoseconds (0 = exact).
        window_ns: largest receive-time (bag time) distance between partners, nanoseconds;
            bounds memory to about this much recording per stream (twice on the others).
    """

    def __init__(self, anchor: str, required: Iterable[str] = (), optional: Iterable[str] = (),
                 max_dt_ns: int = 0, window_ns: int = DEFAULT_WINDOW_NS) -> None:
        self.anchor = anchor
        self.required = tuple(required)
        self.optional = tuple(optional)
        self.others = self.required + self.optional
        names = (anchor,) + self.others
        if len(set(names)) != len(names):
            raise ValueError(f"stream names must be distinct, got {names}")
        if max_dt_ns < 0 or window_ns <= 0:
            raise ValueError(f"max_dt_ns must be >= 0 and window_ns > 0, got {max_dt_ns} and "
                             f"{window_ns}")
        self.max_dt_ns = int(max_dt_ns)
        self.window_ns = int(window_ns)
        self._pending = {name: _Pending() for name in names}
        self._arrivals = {name: collections.deque() for name in names}  # entries by arrival
        self._used = {name: _Recent() for name in names}  # stamps that went into frames
        self._expired = {name: _Recent() for name in self.others}  # given-up partners
        self._lacking = {name: _Recent() for name in self.required}  # anchors that lacked them
        self._now: int | None = None  # newest receive time seen
        self._next_prune = -2 ** 63  # receive time of the next pruning of the stamp memories
        zero = {name: 0 for name in names}
        self.stats = MatchStats(received=dict(zero), matched=dict(zero), unmatched=dict(zero),
                                duplicates=dict(zero), missing={n: 0 for n in self.others},
                                outside_window=dict(zero), window_s=self.window_ns / 1e9)

    def pending(self, stream: str) -> int:
        """Number of messages of ``stream`` waiting for a decision."""
        return len(self._pending[stream])

    def push(self, stream: str, stamp_ns: int, item: Any, receive_ns: int) -> list[MatchedFrame]:
        """Add one message stamped ``stamp_ns`` and recorded at ``receive_ns`` (bag time, ns).

        Returns the frames this decided (possibly none, possibly older anchors').
        """
        if stream not in self._pending:
            raise KeyError(f"unknown stream {stream!r}; known: {sorted(self._pending)}")
        entry = _Entry(int(stamp_ns), int(receive_ns), item)
        self._now = entry.rx if self._now is None else max(self._now, entry.rx)
        self.stats.received[stream] += 1
        frames = self._expire(self._now - self.window_ns)
        self._pending[stream].add(entry)
        self._arrivals[stream].append(entry)
        if stream == self.anchor:
            candidates = [entry]
        else:  # the anchors this message may complete, earliest first
            candidates = list(self._pending[self.anchor].by_stamp.get(entry.stamp, ()))
        for anchor in candidates:
            if not anchor.done and self._complete(anchor):
                frames.extend(self._decide(anchor))
        self._give_up_partners(self._now - self.window_ns)
        return frames

    def finish(self) -> list[MatchedFrame]:
        """Decide every waiting anchor (end of input); leftovers count as unmatched."""
        frames = []
        for anchor in self._arrivals[self.anchor]:
            if not anchor.done:
                frames.extend(self._decide(anchor))
        self._arrivals[self.anchor].clear()
        for name in self.others:
            for entry in self._arrivals[name]:
                if not entry.done:
                    self._give_up(name, entry)
            self._arrivals[name].clear()
        return frames

    # -- decisions ------------------------------------------------------------------------------
    def _complete(self, anchor: _Entry) -> bool:
        """True when every other stream holds an exactly-stamped partner for ``anchor``."""
        for name in self.others:
            partner = self._pending[name].best(anchor.stamp, anchor.rx, 0, self.window_ns)
            if partner is None:
                return False
        return True

    def _expire(self, horizon: int) -> list[MatchedFrame]:
        """Decide the anchors recorded before ``horizon`` (ns), oldest first."""
        frames = []
        arrivals = self._arrivals[self.anchor]
        while arrivals and (arrivals[0].done or arrivals[0].rx < horizon):
            anchor = arrivals.popleft()
            if not anchor.done:
                frames.extend(self._decide(anchor))
        return frames

    def _give_up_partners(self, horizon: int) -> None:
        """Give up the partners no waiting or later anchor can take; forget old stamps."""
        anchors = self._arrivals[self.anchor]
        while anchors and anchors[0].done:
            anchors.popleft()
        oldest = min(horizon, anchors[0].rx - self.window_ns) if anchors else horizon
        for name in self.others:
            arrivals = self._arrivals[name]
            while arrivals and (arrivals[0].done or arrivals[0].rx < oldest):
                entry = arrivals.popleft()
                if not entry.done:
                    self._give_up(name, entry)
        if horizon >= self._next_prune:  # a few times a window: the stamps are only ints
            self._next_prune = horizon + self.window_ns // 4
            forget = horizon - _MEMORY_WINDOWS * self.window_ns
            for memory in (self._used, self._expired, self._lacking):
                for recent in memory.values():
                    recent.prune(forget)

    def _repeated(self, stream: str, entry: _Entry) -> bool:
        """True when a message of ``stream`` with the same stamp went into a frame nearby."""
        return any(abs(rx - entry.rx) <= self.window_ns
                   for rx in self._used[stream].near(entry.stamp, 0))

    def _give_up(self, stream: str, entry: _Entry) -> None:
        entry.done = True
        self._pending[stream].remove(entry)
        if self._repeated(stream, entry):
            self.stats.duplicates[stream] += 1
            return
        self.stats.unmatched[stream] += 1
        if stream in self._lacking and self._lacking[stream].near(entry.stamp, self.max_dt_ns):
            self.stats.outside_window[stream] += 1
        self._expired[stream].add(entry.stamp, entry.rx)

    def _decide(self, anchor: _Entry) -> list[MatchedFrame]:
        anchor.done = True
        self._pending[self.anchor].remove(anchor)
        partners = {name: self._pending[name].best(anchor.stamp, anchor.rx, self.max_dt_ns,
                                                   self.window_ns) for name in self.others}
        lacking = [name for name in self.required if partners[name] is None]
        if lacking and self._repeated(self.anchor, anchor):
            self.stats.duplicates[self.anchor] += 1
            return []
        for name, partner in partners.items():
            if partner is None:
                self.stats.missing[name] += 1
        if lacking:
            self.stats.incomplete_frames += 1
            self.stats.unmatched[self.anchor] += 1
            if any(self._expired[name].near(anchor.stamp, self.max_dt_ns) for name in lacking):
                self.stats.outside_window[self.anchor] += 1
            for name in lacking:
                self._lacking[name].add(anchor.stamp, anchor.rx)
            return []
        frame = MatchedFrame(anchor.stamp, {self.anchor: anchor.item},
                             {self.anchor: anchor.stamp})
        self._used[self.anchor].add(anchor.stamp, anchor.rx)
        self.stats.matched[self.anchor] += 1
        for name, partner in partners.items():
            if partner is not None:
                partner.done = True
                self._pending[name].remove(partner)
                self._used[name].add(partner.stamp, partner.rx)
                frame.stamps_ns[name] = partner.stamp
                frame.items[name] = partner.item
                self.stats.matched[name] += 1
        self.stats.frames += 1
        return [frame]
