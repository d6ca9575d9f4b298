"""`synergy evaluate` on real rosbag2 files whose stamps do not increase on every topic.

Each case of issue 18 is written as a bag (MCAP and sqlite3) in receive order, and the frame
count and metrics are checked against a brute-force matcher over all messages of the test:
every prediction pairs with the unused ground truth of the same stamp recorded within the
match window. Before the fix the streaming matcher kept 19 of 20, 641 of 1,000, 74 of 300,
10 of 100 and 51 of 100 frames in these cases.
"""
import dataclasses

import numpy as np
import pytest
from test_evaluate import _header

from synergy_ros.bags.bagio import BagWriter
from synergy_ros.cli import main as cli_main
from synergy_ros.evaluation.evaluator import EvaluateOptions, evaluate
from synergy_ros.evaluation.metrics import depth_metrics
from synergy_ros.ros.conversions import array_to_image

H, W = 6, 8
S0 = 1_700_000_000_000_000_000
PERIOD = 100_000_000  # 10 Hz
MS = 1_000_000
WINDOW = 5_000_000_000  # the default --match-window
TOPICS = {"gt": "/camera/depth_gt", "sem_gt": "/camera/semantic_gt", "pred": "/synergy/depth",
          "pred_sem": "/synergy/semantic"}
STORAGES = ["mcap", "sqlite3"]


@dataclasses.dataclass
class Msg:
    """One message of a test bag: stream, header stamp, bag (receive) time, scene index."""

    stream: str
    stamp: int
    log: int
    frame: int


def _scene(frame):
    """GT depth 1..8 m (one NaN), labels 0..2; the prediction's error differs per frame."""
    rng = np.random.default_rng(frame)
    gt = rng.uniform(1.0, 8.0, size=(H, W)).astype(np.float32)
    gt[0, 0] = np.nan
    labels = np.digitize(gt, [3.0, 6.0]).astype(np.uint8)
    labels[0, 0] = 255
    pred = np.nan_to_num(gt, nan=5.0) * np.float32(1.0 + 0.03 * (frame % 7) + 0.01)
    pred_labels = np.where(labels == 255, 0, labels).astype(np.uint8)
    pred_labels[:frame % H] = (pred_labels[:frame % H] + 1) % 3  # per-frame pixel accuracy
    return {"gt": gt, "sem_gt": labels, "pred": pred, "pred_sem": pred_labels}


def write_bag(path, messages, storage):
    """Write ``messages`` in receive order (what a recorder does) as a rosbag2."""
    with BagWriter(path, storage=storage) as bag:
        for msg in sorted(messages, key=lambda m: m.log):
            array = _scene(msg.frame)[msg.stream]
            encoding = "32FC1" if array.dtype == np.float32 else "mono8"
            bag.write(TOPICS[msg.stream], array_to_image(array, encoding, _header(msg.stamp)),
                      msg.log)
    return path


def brute_force(messages, window=WINDOW, max_dt=0):
    """Pair every prediction (in receive order) with the unused partner of the nearest stamp
    within ``max_dt`` (ties: nearer in receive time) recorded within ``window``; return
    (frames, expected depth / semantic metrics)."""
    used = set()

    def partner(pred, stream):
        candidates = [m for m in messages if m.stream == stream and id(m) not in used
                      and abs(m.stamp - pred.stamp) <= max_dt
                      and abs(m.log - pred.log) <= window]
        best = min(candidates, key=lambda m: (abs(m.stamp - pred.stamp), abs(m.log - pred.log)),
                   default=None)
        if best is not None:
            used.add(id(best))
        return best

    frames = []
    for pred in sorted((m for m in messages if m.stream == "pred"), key=lambda m: m.log):
        gt = partner(pred, "gt")
        if gt is not None:
            frames.append((pred, gt, partner(pred, "sem_gt"), partner(pred, "pred_sem")))
    per_frame = [depth_metrics(_scene(p.frame)["pred"], _scene(g.frame)["gt"])
                 for p, g, _, _ in frames]
    depth = {key: float(np.mean([m[key] for m in per_frame])) for key in ("abs_rel", "rmse")
             if per_frame}
    correct = total = 0
    for _, _, sem, pred_sem in frames:
        if sem is not None and pred_sem is not None:
            truth = _scene(sem.frame)["sem_gt"]
            valid = truth != 255
            correct += int(np.count_nonzero(_scene(pred_sem.frame)["pred_sem"][valid]
                                            == truth[valid]))
            total += int(np.count_nonzero(valid))
    return frames, depth, (correct / total if total else None)


def frames_of(count, gt_lag=0, pred_lag=30 * MS, sem_every=None, sem_until=None):
    """``count`` frames at 10 Hz: GT recorded ``gt_lag`` after its stamp, predictions
    ``pred_lag`` after; semantic GT only every ``sem_every``-th frame / before ``sem_until``."""
    messages = []
    for i in range(count):
        stamp = S0 + i * PERIOD
        messages += [Msg("gt", stamp, stamp + gt_lag, i), Msg("pred", stamp, stamp + pred_lag, i),
                     Msg("pred_sem", stamp, stamp + pred_lag, i)]
        if (sem_every is None or i % sem_every == 0) and (sem_until is None or i < sem_until):
            messages.append(Msg("sem_gt", stamp, stamp + gt_lag, i))
    return messages


def stray_anchor():
    """Predictions 150 ms late; frame 5's (another publisher) is recorded before frame 4's."""
    messages = frames_of(20, pred_lag=150 * MS)
    for msg in messages:
        if msg.stream.startswith("pred") and msg.frame == 5:
            msg.log = msg.stamp + 20 * MS
    return messages


def far_future_stamp():
    """Predictions recorded before their GT; frame 10's GT carries a far-future stamp."""
    messages = frames_of(100, gt_lag=30 * MS, pred_lag=0)
    for msg in messages:
        if msg.stream in ("gt", "sem_gt") and msg.frame == 10:
            msg.stamp += 10 ** 17  # about 3 years ahead (sec stays int32)
    return messages


def restarting_stamps():
    """A looping replay recorded: frames 50..99 repeat the stamps of 0..49 (GT after preds)."""
    messages = frames_of(100, gt_lag=30 * MS, pred_lag=0)
    for msg in messages:
        if msg.frame >= 50:
            msg.stamp -= 50 * PERIOD
    return messages


CASES = {  # name: (messages, frames kept before the fix)
    "stray_anchor": (stray_anchor, 19),
    "optional_every_100th": (lambda: frames_of(1000, sem_every=100), 641),
    "optional_stops_after_10": (lambda: frames_of(300, sem_until=10), 74),
    "far_future_stamp": (far_future_stamp, 10),
    "restarting_stamps": (restarting_stamps, 51),
}


@pytest.mark.parametrize("storage,max_dt", [("mcap", 0), ("sqlite3", 0), ("mcap", 10 * MS)])
@pytest.mark.parametrize("case", list(CASES))
def test_every_valid_frame_is_kept_whatever_the_stamp_order(tmp_path, case, storage, max_dt):
    build, kept_before = CASES[case]
    messages = build()
    if max_dt:  # nearest-stamp matching: predictions stamped 4 ms after their image
        for msg in messages:
            msg.stamp += 4 * MS if msg.stream == "pred" else 0
    bag = write_bag(tmp_path / "bag", messages, storage)
    result, _ = evaluate(EvaluateOptions(
        bag=bag, gt_topic=TOPICS["gt"], pred_topic=TOPICS["pred"],
        pred_semantic_topic=TOPICS["pred_sem"], semantic_gt_topic=TOPICS["sem_gt"],
        label_set="synthetic", max_dt_s=max_dt / 1e9, progress=False))
    frames, depth, pixel_acc = brute_force(messages, max_dt=max_dt)
    anchors = sum(m.stream == "pred" for m in messages)
    assert len(frames) > kept_before
    assert result["frames"] == len(frames), result["matching_summary"]
    assert result["matching"]["incomplete_frames"] == anchors - len(frames)
    assert result["matching"]["duplicates"] == dict.fromkeys(TOPICS, 0)
    for key, value in depth.items():
        assert result["depth"][key] == pytest.approx(value, rel=1e-5), key
    assert result["semantic"]["pixel_acc"] == pytest.approx(pixel_acc, rel=1e-9)
    sem_frames = sum(sem is not None for _, _, sem, _ in frames)
    assert result["matching"]["missing"]["sem_gt"] == anchors - sem_frames


def test_partners_recorded_further_apart_than_the_window_are_named(tmp_path, capsys):
    """GT recorded 3 s after the predictions: paired by default, not with --match-window 1."""
    messages = [m for m in frames_of(8, gt_lag=3000 * MS, pred_lag=0) if m.stream in
                ("gt", "pred")]
    bag = write_bag(tmp_path / "bag", messages, "mcap")
    base = ["evaluate", "--bag", str(bag), "--gt-topic", TOPICS["gt"], "--pred-topic",
            TOPICS["pred"], "--no-progress"]
    assert cli_main(base) == 0
    assert "frames scored: 8" in capsys.readouterr().out
    assert len(brute_force(messages, window=1_000_000_000)[0]) == 0
    assert cli_main(base + ["--match-window", "1"]) == 1
    err = capsys.readouterr().err
    assert "8 '/synergy/depth' messages had no partner" not in err  # names streams, not topics
    assert "8 'pred' messages had no partner on a required topic" in err
    assert "outside the match window" in err and "recorded more than 1 s apart" in err
    result, _ = evaluate(EvaluateOptions(bag=bag, gt_topic=TOPICS["gt"], pred_topic=TOPICS["pred"],
                                         match_window_s=1.0, progress=False))
    assert result["matching"]["outside_window"] == {"pred": 0, "gt": 8}
    assert result["matching"]["unmatched"] == {"pred": 8, "gt": 8}
    assert cli_main(base + ["--match-window", "0"]) == 1
    assert "--match-window must be > 0 s" in capsys.readouterr().err
