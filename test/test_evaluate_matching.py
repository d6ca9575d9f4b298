"""Stamp matching used by `synergy evaluate`: exact, nearest within max_dt, bounded memory."""
import random

import pytest

from synergy_ros.bags.matching import StampMatcher

MS = 1_000_000


def _run(matcher, events):
    """Push (stream, stamp) events recorded 1 ms apart in list order; then finish."""
    frames = []
    for index, (stream, stamp) in enumerate(events):
        frames += matcher.push(stream, stamp, (stream, stamp), index * MS)
    return frames + matcher.finish()


def test_exact_match_pairs_equal_stamps_and_counts_the_rest():
    matcher = StampMatcher("pred", required=["gt"])
    events = [("gt", 0), ("gt", 100 * MS), ("pred", 0), ("gt", 200 * MS), ("pred", 200 * MS),
              ("pred", 300 * MS)]
    frames = _run(matcher, events)
    assert [f.stamp_ns for f in frames] == [0, 200 * MS]
    assert all(f.items["gt"] == ("gt", f.stamp_ns) for f in frames)
    stats = matcher.stats
    assert stats.frames == 2 and stats.incomplete_frames == 1
    assert stats.unmatched == {"pred": 1, "gt": 1}
    assert stats.missing == {"gt": 1}
    assert "1 of 3 'gt' messages unmatched" in stats.summary("pred")


def test_nearest_within_max_dt_and_each_partner_used_once():
    matcher = StampMatcher("pred", required=["gt"], max_dt_ns=20 * MS)
    events = [("gt", 0), ("gt", 33 * MS), ("gt", 66 * MS), ("pred", 5 * MS), ("pred", 40 * MS),
              ("pred", 45 * MS), ("pred", 200 * MS)]
    frames = _run(matcher, events)
    got = [(f.stamp_ns, f.stamps_ns["gt"]) for f in frames]
    # 40 ms takes 33 ms; 45 ms may not reuse it and 66 ms is 21 ms away: incomplete.
    assert got == [(5 * MS, 0), (40 * MS, 33 * MS)]
    assert frames[1].dt_ns("gt") == 7 * MS
    assert matcher.stats.incomplete_frames == 2
    assert matcher.stats.unmatched["gt"] == 1


def test_nearest_waits_for_a_closer_partner_that_arrives_later():
    matcher = StampMatcher("pred", required=["gt"], max_dt_ns=30 * MS, window_ns=1000 * MS)
    assert matcher.push("gt", 0, "far", 0) == []
    assert matcher.push("pred", 25 * MS, "p", 10 * MS) == []  # no exact partner: wait
    assert matcher.push("gt", 30 * MS, "near", 900 * MS) == []
    assert matcher.push("gt", 100 * MS, "later", 1010 * MS) == []  # still within the window
    frames = matcher.push("gt", 200 * MS, "next", 1011 * MS)  # 1 s of recording has passed
    assert len(frames) == 1 and frames[0].items["gt"] == "near"


def test_exact_partner_decides_at_once_and_the_window_bounds_the_wait():
    matcher = StampMatcher("pred", required=["gt"], optional=["sem"], window_ns=1000 * MS)
    assert matcher.push("gt", 5, "g", 0) == []
    assert matcher.push("pred", 5, "p", 10 * MS) == []  # the optional stream may still come
    frames = matcher.push("sem", 5, "s", 20 * MS)
    assert [sorted(f.items) for f in frames] == [["gt", "pred", "sem"]]
    assert matcher.push("gt", 9, "g", 30 * MS) == [] and matcher.push("pred", 9, "p", 40 * MS) == []
    assert matcher.push("gt", 10, "g", 1040 * MS) == []  # exactly one window: still waiting
    frames = matcher.push("gt", 11, "g", 1041 * MS)
    assert [sorted(f.items) for f in frames] == [["gt", "pred"]]
    assert matcher.stats.missing == {"gt": 0, "sem": 1}


def test_optional_streams_are_attached_when_present():
    matcher = StampMatcher("pred", required=["gt"], optional=["sem"])
    frames = _run(matcher, [("pred", 1), ("gt", 1), ("sem", 1), ("pred", 2), ("gt", 2)])
    assert [sorted(f.items) for f in frames] == [["gt", "pred", "sem"], ["gt", "pred"]]
    assert matcher.stats.missing == {"gt": 0, "sem": 1}


def test_any_arrival_and_stamp_order_and_duplicates():
    stamps = list(range(0, 50 * MS, MS))
    events = [(stream, stamp) for stream in ("gt", "pred") for stamp in stamps]
    random.Random(3).shuffle(events)  # neither topics nor stamps in order
    events.insert(events.index(("pred", 7 * MS)) + 1, ("pred", 7 * MS))
    events.append(("gt", 9 * MS))
    matcher = StampMatcher("pred", required=["gt"])
    frames = _run(matcher, events)
    assert sorted(f.stamp_ns for f in frames) == stamps
    assert all(f.stamps_ns["gt"] == f.stamp_ns for f in frames)
    assert matcher.stats.duplicates == {"pred": 1, "gt": 1}
    assert matcher.stats.unmatched == {"pred": 0, "gt": 0}
    assert "1 'pred' messages repeated a stamp" in matcher.stats.summary("pred")


def test_memory_stays_bounded_by_the_window_when_a_stream_never_matches():
    matcher = StampMatcher("pred", required=["gt"], window_ns=16 * MS)  # 8 messages at 2 ms
    for i in range(1000):
        matcher.push("gt", i * 2 * MS, i, i * 2 * MS)  # the anchor topic is silent
        assert matcher.pending("gt") <= 9
    for i in range(1000, 2000):
        matcher.push("pred", i * 2 * MS + 1, i, i * 2 * MS)  # never an exact partner
        assert matcher.pending("pred") <= 9 and matcher.pending("gt") <= 9
    matcher.finish()
    assert matcher.stats.frames == 0
    assert matcher.stats.unmatched == {"pred": 1000, "gt": 1000}


def test_bad_arguments():
    with pytest.raises(ValueError):
        StampMatcher("a", required=["a"])
    with pytest.raises(ValueError):
        StampMatcher("a", required=["b"], max_dt_ns=-1)
    with pytest.raises(ValueError, match="window_ns"):
        StampMatcher("a", required=["b"], window_ns=0)
    with pytest.raises(KeyError):
        StampMatcher("a").push("b", 0, None, 0)
