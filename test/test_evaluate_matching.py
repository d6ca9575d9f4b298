"""Stamp matching used by `synergy evaluate`: exact, nearest within max_dt, bounded memory."""
import random

import pytest

from synergy_ros.bags.matching import StampMatcher

MS = 1_000_000


def _run(matcher, events):
    frames = []
    for stream, stamp in events:
        frames += matcher.push(stream, stamp, (stream, stamp))
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
    matcher = StampMatcher("pred", required=["gt"], max_dt_ns=30 * MS)
    assert matcher.push("gt", 0, "far") == []
    assert matcher.push("pred", 25 * MS, "p") == []  # gt has not moved past 55 ms yet
    assert matcher.push("gt", 30 * MS, "near") == []
    frames = matcher.push("gt", 100 * MS, "later")
    assert len(frames) == 1 and frames[0].items["gt"] == "near"


def test_optional_streams_are_attached_when_present():
    matcher = StampMatcher("pred", required=["gt"], optional=["sem"])
    frames = _run(matcher, [("pred", 1), ("gt", 1), ("sem", 1), ("pred", 2), ("gt", 2)])
    assert [sorted(f.items) for f in frames] == [["gt", "pred", "sem"], ["gt", "pred"]]
    assert matcher.stats.missing == {"gt": 0, "sem": 1}


def test_randomly_interleaved_topics_and_duplicates():
    stamps = list(range(0, 50 * MS, MS))
    queues = {"gt": list(stamps), "pred": list(stamps)}
    rng = random.Random(3)
    events = []
    while queues["gt"] or queues["pred"]:  # each topic in stamp order, topics interleaved
        stream = rng.choice([name for name, queue in queues.items() if queue])
        events.append((stream, queues[stream].pop(0)))
    events.insert(events.index(("pred", 7 * MS)) + 1, ("pred", 7 * MS))
    matcher = StampMatcher("pred", required=["gt"], max_pending=1000)
    frames = _run(matcher, events)
    assert sorted(f.stamp_ns for f in frames) == stamps
    assert all(f.stamps_ns["gt"] == f.stamp_ns for f in frames)
    assert matcher.stats.duplicates["pred"] == 1


def test_memory_stays_bounded_when_a_stream_never_matches():
    matcher = StampMatcher("pred", required=["gt"], max_pending=8)
    for i in range(1000):
        matcher.push("gt", i * 2 * MS, i)  # the anchor topic is silent
        assert matcher.pending("gt") <= 8
    for i in range(1000):
        matcher.push("pred", i * 2 * MS + 1, i)  # never an exact partner
        assert matcher.pending("pred") <= 9
    matcher.finish()
    assert matcher.stats.frames == 0
    assert matcher.stats.unmatched == {"pred": 1000, "gt": 1000}


def test_bad_arguments():
    with pytest.raises(ValueError):
        StampMatcher("a", required=["a"])
    with pytest.raises(ValueError):
        StampMatcher("a", required=["b"], max_dt_ns=-1)
    with pytest.raises(KeyError):
        StampMatcher("a").push("b", 0, None)
