"""Depth and semantic metrics against hand-computed values."""
import json
import math

import numpy as np
import pytest
import torch

from synergy_ros.core.errors import SynergyError
from synergy_ros.evaluation.metrics import (DEPTH_METRIC_KEYS, DepthRangeEvaluator,
                                            SemanticConfusion, crop_box, depth_metrics)


def test_depth_metrics_hand_computed():
    # valid pixels: (p, g) = (2, 1), (1, 2), (3, 3); gt 0 and gt 20 (> max) are ignored.
    pred = np.array([[2.0, 1.0, 3.0], [5.0, 5.0, 5.0]])
    gt = np.array([[1.0, 2.0, 3.0], [0.0, 20.0, np.nan]])
    m = depth_metrics(pred, gt, max_depth=10.0)
    assert set(m) == set(DEPTH_METRIC_KEYS)
    assert m["abs_rel"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["sq_rel"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(2 / 3))
    assert m["rmse_log"] == pytest.approx(math.log(2) * math.sqrt(2 / 3))  # natural log
    assert m["log10"] == pytest.approx(2 * math.log10(2) / 3)
    assert m["delta1"] == m["delta2"] == m["delta3"] == pytest.approx(1 / 3)  # ratio 2 > 1.95


def test_delta_thresholds():
    gt = np.ones((1, 4))
    pred = np.array([[1.2, 1.5, 1.9, 2.5]])  # ratios vs 1.25, 1.5625, 1.953125
    m = depth_metrics(pred, gt)
    assert (m["delta1"], m["delta2"], m["delta3"]) == pytest.approx((0.25, 0.5, 0.75))


def test_predictions_are_clipped_and_torch_accepted():
    gt = torch.tensor([[5.0, 5.0]])
    pred = torch.tensor([[100.0, -1.0]])  # clipped to 10 and 1e-3
    m = depth_metrics(pred, gt, min_depth=1e-3, max_depth=10.0)
    assert m["abs_rel"] == pytest.approx((5 / 5 + (5 - 1e-3) / 5) / 2)
    assert depth_metrics(torch.ones(1, 1, 2, 2), torch.ones(2, 2))["rmse"] == 0.0
    half = depth_metrics(torch.full((2, 2), 2.0, dtype=torch.bfloat16), torch.ones(2, 2))
    assert half["abs_rel"] == 1.0


def test_no_valid_pixel_gives_nan_and_shape_mismatch_errors():
    assert all(math.isnan(v) for v in depth_metrics(np.ones((2, 2)), np.zeros((2, 2))).values())
    with pytest.raises(SynergyError, match="differ in size"):
        depth_metrics(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(SynergyError, match="one \\(H, W\\) image"):
        depth_metrics(np.ones((2, 2, 2)), np.ones((2, 2, 2)))


def test_eigen_crop():
    assert crop_box("eigen", 480, 640) == (45, 471, 41, 601)
    assert crop_box("eigen", 240, 320) == (22, 235, 20, 300)
    gt = np.full((480, 640), 2.0)
    pred = np.full((480, 640), 2.0)
    pred[:45] = 4.0  # only outside the crop
    pred[:, 601:] = 4.0
    assert depth_metrics(pred, gt, crop="eigen")["abs_rel"] == 0.0
    assert depth_metrics(pred, gt)["abs_rel"] > 0.0
    assert depth_metrics(pred, gt, crop=(0, 45, 0, 640))["abs_rel"] == pytest.approx(1.0)
    with pytest.raises(SynergyError, match="crop"):
        depth_metrics(pred, gt, crop="garg")
    with pytest.raises(SynergyError, match="inside a 480x640"):
        depth_metrics(pred, gt, crop=(0, 500, 0, 10))


def test_range_evaluator_averages_per_image_and_counts_skips():
    evaluator = DepthRangeEvaluator(ranges=(4, 6, 8))
    evaluator.update(np.full((1, 2), 2.0), np.full((1, 2), 1.0))   # abs_rel 1
    evaluator.update(np.full((2, 2), 1.0), np.full((2, 2), 1.0))   # abs_rel 0
    evaluator.update(np.full((2, 2), 3.5), np.full((2, 2), 7.0))   # only <=8 and all
    result = evaluator.compute()
    assert list(result) == ["<=4m", "<=6m", "<=8m", "all"]
    # per-image mean (1 + 0) / 2 = 0.5, not the pixel-pooled 2 / 6
    assert result["<=4m"]["abs_rel"] == pytest.approx(0.5)
    assert (result["<=4m"]["images"], result["<=4m"]["skipped"]) == (2, 1)
    assert result["all"]["abs_rel"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert (result["all"]["images"], result["all"]["skipped"]) == (3, 0)
    table = evaluator.to_markdown()
    assert "| <=4m | 0.500 |" in table and "δ<1.25" in table and "| all |" in table
    data = json.loads(evaluator.to_json())
    assert data["ranges"]["<=6m"]["images"] == 2 and data["max_depth"] == 10.0


def test_range_evaluator_outdoor_ranges_and_empty_ranges_are_null():
    evaluator = DepthRangeEvaluator(ranges=(80, 20, 40), max_depth=80.0)
    evaluator.update(np.full((2, 2), 30.0), np.full((2, 2), 30.0))
    result = evaluator.compute()
    assert list(result) == ["<=20m", "<=40m", "<=80m", "all"]
    assert math.isnan(result["<=20m"]["rmse"]) and result["<=20m"]["skipped"] == 1
    assert evaluator.to_dict()["ranges"]["<=20m"]["rmse"] is None
    assert "n/a" in evaluator.to_markdown()


def test_semantic_confusion_hand_computed_and_streaming():
    gt = np.array([0, 0, 1, 1, 2, 255, 3])
    pred = np.array([0, 1, 1, 1, 0, 2, 3])
    conf = SemanticConfusion(5)
    conf.update(pred[:3], gt[:3])
    conf.update(torch.tensor(pred[3:]), torch.tensor(gt[3:]))
    expected = np.zeros((5, 5), dtype=np.int64)
    for g, p in zip(gt, pred):
        if g != 255:
            expected[g, p] += 1
    assert np.array_equal(conf.matrix, expected)
    r = conf.compute()
    assert r["pixel_acc"] == pytest.approx(4 / 6)
    assert r["mean_acc"] == pytest.approx((0.5 + 1 + 0 + 1) / 4)  # class 4 absent from GT
    assert r["class_iou"][:4] == pytest.approx([1 / 3, 2 / 3, 0.0, 1.0])
    assert r["class_iou"][4] is None and r["classes_present"] == 4
    assert r["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0 + 1) / 4)
    conf.reset()
    assert conf.matrix.sum() == 0 and math.isnan(conf.compute()["miou"])


def test_semantic_confusion_rejects_bad_ids():
    conf = SemanticConfusion(3)
    with pytest.raises(SynergyError, match="outside 0..2"):
        conf.update(np.array([0, 1]), np.array([0, 5]))
    with pytest.raises(SynergyError, match="prediction"):
        conf.update(np.array([0, 3]), np.array([0, 1]))
    with pytest.raises(SynergyError, match="differ"):
        conf.update(np.array([0]), np.array([0, 1]))


def test_range_evaluator_matches_direct_per_range_formulas_over_many_blocks():
    # 200x150 = 30000 pixels: two of the evaluator's pixel blocks; float32 inputs as the
    # evaluator gets them, NaN/inf/negative predictions and invalid GT included.
    rng = np.random.default_rng(3)
    gt = rng.uniform(0.2, 11.0, (150, 200)).astype(np.float32)
    gt[rng.random(gt.shape) < 0.1] = 0.0
    gt[0, :4] = np.nan
    pred = (gt * rng.uniform(0.6, 1.7, gt.shape)).astype(np.float32)
    pred[1, :3] = np.nan
    pred[2, :3] = -1.0
    pred[3, :3] = np.inf
    result = DepthRangeEvaluator(ranges=(4, 6, 8)).update(pred, gt)
    g64, p64 = gt.astype(np.float64), pred.astype(np.float64)
    for label, limit in (("<=4m", 4.0), ("<=6m", 6.0), ("<=8m", 8.0), ("all", 10.0)):
        mask = np.isfinite(g64) & (g64 > 1e-3) & (g64 < 10.0) & (g64 <= limit)
        g = g64[mask]
        p = np.clip(np.nan_to_num(p64[mask], nan=1e-3), 1e-3, 10.0)
        ratio = np.maximum(g / p, p / g)
        expected = {"abs_rel": np.mean(np.abs(p - g) / g), "sq_rel": np.mean((p - g) ** 2 / g),
                    "rmse": np.sqrt(np.mean((p - g) ** 2)),
                    "rmse_log": np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2)),
                    "log10": np.mean(np.abs(np.log10(p) - np.log10(g))),
                    "delta1": np.mean(ratio < 1.25), "delta2": np.mean(ratio < 1.25 ** 2),
                    "delta3": np.mean(ratio < 1.25 ** 3)}
        for key, value in expected.items():
            # per-pixel terms are float32 (sums float64): agree with the float64 formulas to
            # float32 rounding; a formula error would be off by far more
            assert result[label][key] == pytest.approx(value, rel=2e-6), (label, key)


def test_range_evaluator_mask_leaves_pixels_out_like_invalid_ground_truth():
    rng = np.random.default_rng(5)
    gt = rng.uniform(0.5, 9.0, (40, 60)).astype(np.float32)
    pred = (gt * rng.uniform(0.7, 1.4, gt.shape)).astype(np.float32)
    mask = rng.random(gt.shape) < 0.6
    masked = DepthRangeEvaluator().update(pred, gt, mask=mask)
    as_invalid = DepthRangeEvaluator().update(pred, np.where(mask, gt, np.nan))
    assert masked == as_invalid
    assert masked["all"] != DepthRangeEvaluator().update(pred, gt)["all"]
    with pytest.raises(SynergyError, match="mask"):
        DepthRangeEvaluator().update(pred, gt, mask=mask[:10])


def test_confusion_update_returns_the_pairs_counts_and_skips_ignored_pixels():
    conf = SemanticConfusion(3)
    first = conf.update(np.array([0, 1, 2, 7]), np.array([0, 1, 1, 255], dtype=np.uint8))
    assert first.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]  # id 7 sits on an ignored pixel
    second = conf.update(np.array([2, 2]), np.array([2, 0]))
    assert second.tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 1]]
    assert (conf.matrix == first + second).all()
