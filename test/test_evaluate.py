"""`synergy evaluate` in prediction mode on real rosbag2 files written with bagio."""
import json
import math
import sys

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from synergy_ros.bags.bagio import BagWriter
from synergy_ros.cli import main as cli_main
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.geometry import PinholeIntrinsics
from synergy_ros.evaluation.evaluator import EvaluateOptions, evaluate
from synergy_ros.evaluation.metrics import depth_metrics
from synergy_ros.evaluation.report import matplotlib_available
from synergy_ros.ros.conversions import array_to_image, intrinsics_to_camera_info
from synergy_ros.ros.decoding import depth_from_cloud
from synergy_ros.ros.pointcloud import build_pointcloud2

H, W = 24, 32
START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000
INTR = PinholeIntrinsics.from_fov(math.radians(60.0), W, H)


def _header(stamp_ns):
    return Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                  frame_id="camera_optical_frame")


def _scene(index):
    """Depth 1..8 m ramps with a few invalid pixels, labels 0..2 by depth band."""
    rng = np.random.default_rng(index)
    depth = np.tile(np.linspace(1.0, 8.0, W, dtype=np.float32), (H, 1))
    depth += rng.uniform(0, 0.5, size=(H, W)).astype(np.float32)
    depth[0, :3] = np.nan
    labels = np.digitize(depth, [3.0, 6.0]).astype(np.uint8)
    labels[0, :3] = 255
    return depth, labels


def write_bag(path, frames=6, scale=1.1, pred_size=(H, W), gt_encoding="32FC1",
              skip_gt=(), pred_offset_ns=0, extra_pred=False, gt_cloud=False, pred_semantic=True):
    """A bag with GT depth/labels and predictions (depth * scale, labels equal to GT)."""
    with BagWriter(path) as bag:
        info = intrinsics_to_camera_info(INTR, _header(START_NS))
        bag.write("/camera/camera_info", info, START_NS)
        for i in range(frames):
            stamp = START_NS + i * PERIOD_NS
            depth, labels = _scene(i)
            if i not in skip_gt:
                if gt_cloud:
                    gt = build_pointcloud2(depth, None, None, INTR, header=_header(stamp))
                elif gt_encoding == "16UC1":
                    mm = np.nan_to_num(depth * 1000.0, nan=0.0).round().astype(np.uint16)
                    gt = array_to_image(mm, "16UC1", _header(stamp))
                else:
                    gt = array_to_image(depth, "32FC1", _header(stamp))
                bag.write("/camera/depth_gt", gt, stamp)
                bag.write("/camera/semantic_gt", array_to_image(labels, "mono8", _header(stamp)),
                          stamp)
            pred = np.nan_to_num(depth, nan=5.0) * scale
            pred_labels = np.where(labels == 255, 0, labels).astype(np.uint8)
            if pred_size != (H, W):
                pred = pred[::H // pred_size[0], ::W // pred_size[1]]
                pred_labels = pred_labels[::H // pred_size[0], ::W // pred_size[1]]
            pred_stamp = stamp + pred_offset_ns
            log = stamp + 30_000_000  # recorded after the GT, like a node's output
            bag.write("/synergy/depth", array_to_image(pred, "32FC1", _header(pred_stamp)), log)
            if pred_semantic:
                bag.write("/synergy/semantic",
                          array_to_image(pred_labels, "mono8", _header(pred_stamp)), log)
        if extra_pred:
            stamp = START_NS + frames * PERIOD_NS + 7
            bag.write("/synergy/depth", array_to_image(np.ones((H, W), np.float32), "32FC1",
                                                       _header(stamp)), stamp)
    return path


def options(bag, **kw):
    base = dict(bag=bag, gt_topic="/camera/depth_gt", pred_topic="/synergy/depth",
                pred_semantic_topic="/synergy/semantic", semantic_gt_topic="/camera/semantic_gt",
                label_set="synthetic", progress=False)
    base.update(kw)
    return EvaluateOptions(**base)


def test_prediction_mode_scores_match_direct_metrics(tmp_path):
    bag = write_bag(tmp_path / "bag", frames=5, scale=1.1)
    result, _ = evaluate(options(bag))
    assert result["status"] == "complete" and result["frames"] == 5
    assert result["depth"]["abs_rel"] == pytest.approx(0.1, abs=1e-5)  # pred = 1.1 x GT
    assert result["depth"]["delta1"] == 1.0
    expected = np.mean([depth_metrics(np.nan_to_num(_scene(i)[0], nan=5.0) * 1.1, _scene(i)[0])
                        ["rmse"] for i in range(5)])
    assert result["depth"]["rmse"] == pytest.approx(expected, rel=1e-5)
    assert result["depth"]["coverage"] == 1.0
    rows = {row["range"]: row for row in result["depth_ranges"]}
    assert list(rows) == ["<=4m", "<=6m", "<=8m", "all"]
    assert rows["<=4m"]["rmse"] < rows["all"]["rmse"]  # error grows with depth (10 %)
    assert rows["all"]["images"] == 5
    assert result["semantic"]["pixel_acc"] == 1.0 and result["semantic"]["miou"] == 1.0
    assert result["matching"]["unmatched"] == {"pred": 0, "gt": 0, "sem_gt": 0, "pred_sem": 0}


def test_resized_prediction_and_16uc1_ground_truth(tmp_path):
    bag = write_bag(tmp_path / "bag", frames=3, scale=1.0, pred_size=(H // 2, W // 2),
                    gt_encoding="16UC1")
    result, _ = evaluate(options(bag))
    assert result["frames"] == 3
    # half-size prediction upsampled bilinearly: close to, not exactly, the GT (mm rounding)
    assert 0 < result["depth"]["abs_rel"] < 0.1
    assert result["depth"]["delta1"] > 0.9
    assert result["semantic"]["pixel_acc"] > 0.8  # nearest-neighbour labels


def test_unmatched_messages_are_counted_and_reported(tmp_path):
    bag = write_bag(tmp_path / "bag", frames=6, skip_gt=(2, 4), extra_pred=True)
    result, _ = evaluate(options(bag))
    assert result["frames"] == 4
    assert result["matching"]["incomplete_frames"] == 3  # 2 without GT + the extra one
    assert result["matching"]["unmatched"]["pred"] == 3
    assert "3 '/synergy/depth' messages had no partner" not in result["matching_summary"]
    assert "had no partner on a required topic" in result["matching_summary"]


def test_max_frames_stops_early(tmp_path):
    bag = write_bag(tmp_path / "bag", frames=6)
    result, _ = evaluate(options(bag, max_frames=2))
    assert result["frames"] == 2 and result["status"] == "complete"
    assert "stopped after --max-frames 2" in result["notes"]


def test_nearest_stamp_matching_needs_max_dt(tmp_path, capsys):
    bag = write_bag(tmp_path / "bag", frames=4, pred_offset_ns=4_000_000)  # 4 ms later
    exact, _ = evaluate(options(bag))
    assert exact["frames"] == 0 and exact["matching"]["unmatched"]["gt"] == 4
    assert exact["depth"] == {}
    near, _ = evaluate(options(bag, max_dt_s=0.01))
    assert near["frames"] == 4
    assert near["matching"]["unmatched"]["gt"] == 0
    base = ["evaluate", "--bag", str(bag), "--gt-topic", "/camera/depth_gt", "--pred-topic",
            "/synergy/depth", "--no-progress"]
    assert cli_main(base) == 1
    assert "pass --max-dt S" in capsys.readouterr().err
    assert cli_main(base + ["--max-dt", "0.005"]) == 0


def test_pointcloud_ground_truth_projects_through_camera_info(tmp_path):
    depth, _ = _scene(0)
    cloud = build_pointcloud2(depth, None, None, INTR, header=_header(START_NS))
    projected = depth_from_cloud(cloud, INTR)
    valid = np.isfinite(depth)
    np.testing.assert_allclose(projected[valid], depth[valid], rtol=1e-5)
    assert np.isnan(projected[~valid]).all()
    bag = write_bag(tmp_path / "bag", frames=3, gt_cloud=True)
    result, _ = evaluate(options(bag, camera_info_topic="/camera/camera_info"))
    assert result["frames"] == 3
    assert result["depth"]["abs_rel"] == pytest.approx(0.1, abs=1e-4)
    with pytest.raises(SynergyError, match="--camera-info-topic"):
        evaluate(options(bag))


def test_outputs_json_csv_markdown_plots(tmp_path):
    bag = write_bag(tmp_path / "bag", frames=4)
    out = tmp_path / "out"
    result, written = evaluate(options(
        bag, json_path=out / "m.json", csv_path=out / "f.csv", markdown_path=out / "report.md",
        plots_dir=out / "plots", num_samples=2))
    data = json.loads((out / "m.json").read_text())  # strict JSON: no NaN
    assert data["depth"]["abs_rel"] == pytest.approx(0.1, abs=1e-5)
    assert data["semantic"]["per_class_iou"]["sky"] is None  # class absent from GT
    lines = (out / "f.csv").read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith("frame,stamp_s,gt_dt_ms,coverage,abs_rel")
    assert float(lines[1].split(",")[4]) == pytest.approx(0.1, abs=1e-4)
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    plots = ["error_over_time.png", "error_vs_range.png"] if matplotlib_available() else []
    assert pngs == plots + ["frame_00000.png", "frame_00002.png"]  # 2 samples over 4 frames
    report = (out / "report.md").read_text()
    assert "| <=4m |" in report and "pixel acc" in report
    assert "(plots/frame_00000.png)" in report
    assert ("(plots/error_vs_range.png)" in report) == bool(plots)
    assert set(written) >= {"json", "csv", "markdown"}


def test_plots_skipped_with_a_note_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    bag = write_bag(tmp_path / "bag", frames=2)
    result, _ = evaluate(options(bag, plots_dir=tmp_path / "plots", num_samples=1))
    assert any("matplotlib is not installed" in note for note in result["notes"])
    assert [p.name for p in (tmp_path / "plots").glob("*.png")] == ["frame_00000.png"]


def test_cli_prints_markdown_and_lists_topics_on_bad_input(tmp_path, capsys):
    bag = write_bag(tmp_path / "bag", frames=2)
    base = ["evaluate", "--bag", str(bag), "--gt-topic", "/camera/depth_gt", "--no-progress"]
    assert cli_main(base + ["--pred-topic", "/synergy/depth", "--ranges", "2,5"]) == 0
    out = capsys.readouterr().out
    assert "| <=2m |" in out and "| <=5m |" in out and "frames scored: 2" in out
    assert cli_main(base + ["--pred-topic", "/nope"]) == 1
    err = capsys.readouterr().err
    assert "--pred-topic /nope is not in" in err
    assert "/camera/depth_gt (sensor_msgs/msg/Image)" in err
    assert "/camera/camera_info (sensor_msgs/msg/CameraInfo)" in err
    assert cli_main(base + ["--pred-topic", "/camera/camera_info"]) == 1
    assert "has type sensor_msgs/msg/CameraInfo, expected sensor_msgs/msg/Image" in \
        capsys.readouterr().err
    missing = ["evaluate", "--bag", str(tmp_path / "nope"), "--gt-topic", "/x",
               "--pred-topic", "/y"]
    assert cli_main(missing) == 1
    assert "bag not found" in capsys.readouterr().err
    assert cli_main(base) == 1
    assert "nothing to score" in capsys.readouterr().err


def test_truncated_bag_is_a_clear_error(tmp_path, capsys):
    bag = write_bag(tmp_path / "bag", frames=10)
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[:-500])  # no MCAP footer: nothing can be indexed
    code = cli_main(["evaluate", "--bag", str(bag), "--gt-topic", "/camera/depth_gt",
                     "--pred-topic", "/synergy/depth", "--no-progress"])
    assert code == 1
    assert "truncated" in capsys.readouterr().err


def test_corrupt_bag_keeps_partial_results_and_fails(tmp_path, capsys):
    from test_bagio import break_last_mcap_chunk

    bag = write_bag(tmp_path / "bag", frames=160)  # > 1 MiB: rosbags writes 2 MCAP chunks
    break_last_mcap_chunk(bag)
    out = tmp_path / "out"
    code = cli_main(["evaluate", "--bag", str(bag), "--gt-topic", "/camera/depth_gt",
                     "--pred-topic", "/synergy/depth", "--json", str(out / "m.json"),
                     "--csv", str(out / "f.csv"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1, err
    data = json.loads((out / "m.json").read_text())
    assert "corrupt" in data["status"] and "reading stopped after" in data["status"]
    assert 0 < data["frames"] < 160
    assert len((out / "f.csv").read_text().splitlines()) == data["frames"] + 1
    assert "partial result" in err


def test_error_bins_for_the_error_vs_range_plot():
    from synergy_ros.evaluation.scoring import DepthErrorBins

    bins = DepthErrorBins(max_depth=10.0, bins=5)
    gt = np.array([[1.0, 3.0], [5.0, 9.0]], np.float32)
    bins.update(gt * 1.2, gt, np.ones_like(gt, bool))
    abs_rel, rmse = bins.means()
    np.testing.assert_allclose(abs_rel[[0, 1, 2, 4]], 0.2, rtol=1e-5)
    np.testing.assert_allclose(rmse[[0, 1, 2, 4]], [0.2, 0.6, 1.0, 1.8], rtol=1e-5)
    assert np.isnan(abs_rel[3])  # 6-8 m saw no pixel


def test_several_scoring_threads_give_the_same_results_in_frame_order(tmp_path):
    bag = write_bag(tmp_path / "bag", frames=12, scale=1.2)
    one, _ = evaluate(options(bag, workers=1, csv_path=tmp_path / "one.csv"))
    four, _ = evaluate(options(bag, workers=4, csv_path=tmp_path / "four.csv"))
    assert four["scoring_threads"] == 4 and four["frames"] == 12
    for key, value in one["depth"].items():
        assert four["depth"][key] == pytest.approx(value, rel=1e-9), key
    for row_one, row_four in zip(one["depth_ranges"], four["depth_ranges"]):
        assert row_four.pop("range") == row_one.pop("range")
        assert row_four == pytest.approx(row_one, rel=1e-9)
    assert four["semantic"] == one["semantic"]
    assert (tmp_path / "four.csv").read_text() == (tmp_path / "one.csv").read_text()


def test_sparse_ground_truth_scores_like_dense(tmp_path):
    """Lidar-like GT (most pixels invalid) takes the compact path; metrics are unchanged."""
    from synergy_ros.evaluation.metrics import DepthRangeEvaluator

    depth, _ = _scene(1)
    sparse = np.full_like(depth, np.nan)
    sparse[::4, ::3] = depth[::4, ::3]
    with BagWriter(tmp_path / "bag") as bag:
        bag.write("/gt", array_to_image(sparse, "32FC1", _header(START_NS)), START_NS)
        bag.write("/pred", array_to_image(depth * 1.3, "32FC1", _header(START_NS)), START_NS)
    result, _ = evaluate(EvaluateOptions(bag=tmp_path / "bag", gt_topic="/gt",
                                         pred_topic="/pred", progress=False))
    reference = DepthRangeEvaluator()
    reference.update(np.nan_to_num(depth * 1.3, nan=1e-3), sparse)
    expected = reference.compute()
    for row in result["depth_ranges"]:
        assert row["rmse"] == pytest.approx(expected[row["range"]]["rmse"], rel=1e-6)
    assert result["depth"]["coverage"] == 1.0
