"""Match messages of several topics by ``header.stamp``, streaming, with bounded memory.

A bag stores messages in receive order, so a prediction recorded by a node arrives after the
ground truth it belongs to, and two topics never interleave perfectly. :class:`StampMatcher`
takes messages one at a time (``push``) and hands back complete frames as soon as they are
decided:

- one *anchor* stream (the frames being scored: predictions or camera images);
- *required* streams (e.g. depth ground truth): a frame without them is counted as incomplete
  and dropped, never scored silently;
- *optional* streams (e.g. semantic ground truth): attached when present.

Each anchor takes, per other stream, the unused message whose stamp is nearest to its own and
at most ``max_dt_ns`` away (``max_dt_ns = 0``: exact stamps only); a message is used at most
once. An anchor is decided when every other stream has either an exact match or has moved past
``anchor + max_dt_ns`` (stamps are assumed to increase per topic, as cameras stamp them), or at
``finish()``. At most ``max_pending`` messages wait per stream; beyond that the oldest anchor is
decided with what is there (or the oldest other message is given up as unmatched), so memory
stays bounded however long the bag is. Topics may interleave in any order; within one topic
stamps should increase (a message older than one already seen on its topic may be decided as
unmatched; a repeated stamp is counted as a duplicate and ignored). Everything that does not
end up in a frame is counted in :class:`MatchStats`.
"""
from __future__ import annotations

import bisect
import dataclasses
from typing import Any, Iterable


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
    ``missing`` counts, per required/optional stream, the frames that lacked it.
    """

    received: dict[str, int]
    matched: dict[str, int]
    unmatched: dict[str, int]
    duplicates: dict[str, int]
    missing: dict[str, int]
    frames: int = 0
    incomplete_frames: int = 0

    def to_dict(self) -> dict:
        """Return a JSON-serialisable copy."""
        return dataclasses.asdict(self)

    def summary(self, anchor: str) -> str:
        """One paragraph saying how many frames matched and what was left over."""
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
        return "; ".join(parts)


class StampMatcher:
    """Streaming nearest-stamp matcher (see the module docstring for the rules).

    Args:
        anchor: name of the stream whose messages become frames.
        required: streams every frame needs.
        optional: streams attached when a partner exists.
        max_dt_ns: largest allowed stamp difference, nanoseconds (0 = exact).
        max_pending: most messages kept waiting per stream (bounds memory).
    """

    def __init__(self, anchor: str, required: Iterable[str] = (), optional: Iterable[str] = (),
                 max_dt_ns: int = 0, max_pending: int = 64) -> None:
        self.anchor = anchor
        self.required = tuple(required)
        self.optional = tuple(optional)
        self.others = self.required + self.optional
        names = (anchor,) + self.others
        if len(set(names)) != len(names):
            raise ValueError(f"stream names must be distinct, got {names}")
        if max_dt_ns < 0 or max_pending < 1:
            raise ValueError("max_dt_ns must be >= 0 and max_pending >= 1")
        self.max_dt_ns = int(max_dt_ns)
        self.max_pending = int(max_pending)
        self._stamps: dict[str, list[int]] = {name: [] for name in names}
        self._items: dict[str, list[Any]] = {name: [] for name in names}
        self._latest: dict[str, int | None] = {name: None for name in names}
        self._last_anchor: int | None = None  # stamp of the last decided anchor
        zero = {name: 0 for name in names}
        self.stats = MatchStats(received=dict(zero), matched=dict(zero), unmatched=dict(zero),
                                duplicates=dict(zero), missing={n: 0 for n in self.others})

    def pending(self, stream: str) -> int:
        """Number of messages of ``stream`` waiting for a decision."""
        return len(self._stamps[stream])

    def push(self, stream: str, stamp_ns: int, item: Any) -> list[MatchedFrame]:
        """Add one message; return the frames this decided (possibly none)."""
        if stream not in self._stamps:
            raise KeyError(f"unknown stream {stream!r}; known: {sorted(self._stamps)}")
        stamp_ns = int(stamp_ns)
        self.stats.received[stream] += 1
        stamps = self._stamps[stream]
        index = bisect.bisect_left(stamps, stamp_ns)
        repeated = stream == self.anchor and stamp_ns == self._last_anchor
        if repeated or (index < len(stamps) and stamps[index] == stamp_ns):
            self.stats.duplicates[stream] += 1
            return []
        stamps.insert(index, stamp_ns)
        self._items[stream].insert(index, item)
        latest = self._latest[stream]
        self._latest[stream] = stamp_ns if latest is None else max(latest, stamp_ns)
        frames = self._resolve(final=False)
        for name in self.others:  # a stream racing ahead of the anchor: give up its oldest
            while len(self._stamps[name]) > self.max_pending:
                self._drop_oldest(name)
        return frames

    def finish(self) -> list[MatchedFrame]:
        """Decide every waiting anchor (end of input); leftovers count as unmatched."""
        frames = self._resolve(final=True)
        for name in self.others:
            while self._stamps[name]:
                self._drop_oldest(name)
        return frames

    def _drop_oldest(self, stream: str) -> None:
        self._stamps[stream].pop(0)
        self._items[stream].pop(0)
        self.stats.unmatched[stream] += 1

    def _nearest(self, stream: str, stamp_ns: int) -> int | None:
        """Index of the waiting ``stream`` message nearest to ``stamp_ns`` within max_dt."""
        stamps = self._stamps[stream]
        index = bisect.bisect_left(stamps, stamp_ns)
        best, best_dt = None, None
        for candidate in (index - 1, index):
            if 0 <= candidate < len(stamps):
                dt = abs(stamps[candidate] - stamp_ns)
                if dt <= self.max_dt_ns and (best_dt is None or dt < best_dt):
                    best, best_dt = candidate, dt
        return best

    def _decided(self, stream: str, stamp_ns: int) -> bool:
        """True when no later ``stream`` message can be a better partner for ``stamp_ns``."""
        index = self._nearest(stream, stamp_ns)
        if index is not None and self._stamps[stream][index] == stamp_ns:
            return True
        latest = self._latest[stream]
        return latest is not None and latest > stamp_ns + self.max_dt_ns

    def _resolve(self, final: bool) -> list[MatchedFrame]:
        frames = []
        anchors = self._stamps[self.anchor]
        while anchors:
            stamp = anchors[0]
            overflow = len(anchors) > self.max_pending
            if not (final or overflow or all(self._decided(s, stamp) for s in self.others)):
                break
            self._last_anchor = anchors.pop(0)
            item = self._items[self.anchor].pop(0)
            frames.extend(self._build_frame(stamp, item))
            for name in self.others:  # messages too old for any later anchor
                while self._stamps[name] and self._stamps[name][0] < stamp - self.max_dt_ns:
                    self._drop_oldest(name)
        return frames

    def _build_frame(self, stamp: int, item: Any) -> list[MatchedFrame]:
        partners = {name: self._nearest(name, stamp) for name in self.others}
        for name, index in partners.items():
            if index is None:
                self.stats.missing[name] += 1
        if any(partners[name] is None for name in self.required):
            self.stats.incomplete_frames += 1
            self.stats.unmatched[self.anchor] += 1
            return []
        frame = MatchedFrame(stamp, {self.anchor: item}, {self.anchor: stamp})
        self.stats.matched[self.anchor] += 1
        for name, index in partners.items():
            if index is not None:
                frame.stamps_ns[name] = self._stamps[name].pop(index)
                frame.items[name] = self._items[name].pop(index)
                self.stats.matched[name] += 1
        self.stats.frames += 1
        return [frame]
