"""Losses on hand-computed tiny examples, incl. the log edge cases of L_DA and empty masks."""
import math

import pytest
import torch

from synergy_ros.core.errors import SynergyError
from synergy_ros.learning.losses import (TABLE8_CONFIGS, SynergyLoss, cross_entropy_loss,
                                         depth_attention_loss, depth_attention_weights, focal_loss,
                                         depth_gradient_loss, l2_loss, semantic_boundaries)
from synergy_ros.network import SynergyOutput

NAN = float("nan")


def _img(values):
    """Nested list (H, W) -> (1, 1, H, W) float tensor."""
    return torch.tensor(values, dtype=torch.float32).view(1, 1, len(values), len(values[0]))


def test_l2_ignores_zero_and_nan_depth():
    pred = _img([[1.0, 2.0], [3.0, 4.0]]).requires_grad_()
    gt = _img([[1.0, 0.0], [5.0, NAN]])
    loss = l2_loss(pred, gt)
    assert loss.item() == pytest.approx((0 + 4) / 2)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert pred.grad.flatten().tolist() == pytest.approx([0, 0, -2.0, 0])  # 2*(3-5)/2


def test_depth_attention_hand_computed():
    # alpha = gt / max(gt) = [1/3, 1]; lambda = 1 - log1p(1)/log1p(3) = 1 - ln2/ln4 = 0.5, 0.
    pred = _img([[3.0, 3.0]])
    gt = _img([[1.0, 3.0]])
    weights = depth_attention_weights(pred, gt)
    assert weights.flatten().tolist() == pytest.approx([1 / 3 + 0.5, 1.0])
    assert depth_attention_loss(pred, gt).item() == pytest.approx(((1 / 3 + 0.5) * 2 + 0) / 2)


@pytest.mark.parametrize("gt, pred, expected_lambda", [
    (1.0, 1.0, 0.0),            # log d = 0 for both: the paper's ratio would be 0/0
    (0.5, 0.5, 0.0),            # log d < 0: the paper's ratio would flip sign
    (0.5, 2.0, 1 - math.log1p(0.5) / math.log1p(2.0)),
    (2.0, 0.5, 1 - math.log1p(0.5) / math.log1p(2.0)),  # symmetric in d, d_hat
    (1.0, 0.0, 1.0),            # prediction 0 m: log1p(0) = 0
    (1e-6, 1e-6, 0.0),          # tiny depths stay finite
])
def test_depth_attention_log_edge_cases(gt, pred, expected_lambda):
    pred_t = _img([[pred]]).requires_grad_()
    gt_t = _img([[gt]])
    weights = depth_attention_weights(pred_t, gt_t)
    assert weights.item() == pytest.approx(1.0 + expected_lambda, abs=1e-6)  # alpha = 1
    loss = depth_attention_loss(pred_t, gt_t)
    assert loss.item() == pytest.approx((1.0 + expected_lambda) * abs(gt - pred), abs=1e-6)
    loss.backward()
    assert torch.isfinite(pred_t.grad).all()


def paper_lambda(d: float, d_hat: float) -> float:
    """lambda_D of the paper (Jiao et al., ECCV 2018, L_DA's regularisation term):
    lambda_D = 1 - min(log d, log d_hat) / max(log d, log d_hat)."""
    return 1 - min(math.log(d), math.log(d_hat)) / max(math.log(d), math.log(d_hat))


@pytest.mark.parametrize("gt, pred", [(2.0, 3.0), (3.0, 2.0), (2.5, 9.0), (1.01, 8.0),
                                      (7.0, 7.0), (40.0, 80.0)])
def test_depth_attention_lambda_is_the_papers_above_one_metre(gt, pred):
    weights = depth_attention_weights(_img([[pred]]), _img([[gt]]))
    assert weights.item() == pytest.approx(1.0 + paper_lambda(gt, pred), rel=1e-5)  # alpha 1
    # the log1p form everywhere is what this replaces: about half the paper's value at 2-3 m
    assert 1 - math.log1p(2.0) / math.log1p(3.0) < 0.6 * paper_lambda(2.0, 3.0)


@pytest.mark.parametrize("gt, pred", [(0.5, 3.0), (3.0, 0.5), (1.0, 2.0), (0.2, 0.9)])
def test_depth_attention_lambda_is_the_safe_form_at_or_below_one_metre(gt, pred):
    weights = depth_attention_weights(_img([[pred]]), _img([[gt]]))
    expected = 1 - min(math.log1p(gt), math.log1p(pred)) / max(math.log1p(gt), math.log1p(pred))
    assert weights.item() == pytest.approx(1.0 + expected, rel=1e-5)
    assert 0.0 <= weights.item() - 1.0 <= 1.0


def test_depth_attention_normalises_alpha_per_image():
    pred = torch.zeros(2, 1, 1, 2)
    gt = torch.tensor([[1.0, 2.0], [4.0, 8.0]]).view(2, 1, 1, 2)
    alpha_plus_lambda = depth_attention_weights(pred, gt).flatten().tolist()
    # pred = 0 -> lambda = 1 everywhere; alpha = [0.5, 1] in both images.
    assert alpha_plus_lambda == pytest.approx([1.5, 2.0, 1.5, 2.0])


def test_focal_loss_hand_computed_and_ignore():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]]).T.reshape(1, 2, 1, 3)
    labels = torch.tensor([[[1, 0, 255]]])
    p_equal = -0.25 * 0.5 ** 2 * math.log(0.5)
    p_three_quarters = -0.25 * 0.25 ** 2 * math.log(0.75)
    assert focal_loss(logits, labels).item() == pytest.approx((p_equal + p_three_quarters) / 2)
    assert cross_entropy_loss(logits, labels).item() == pytest.approx(
        (math.log(2) - math.log(0.75)) / 2)


def test_depth_gradient_on_a_ramp():
    ramp = _img([[float(x) for x in range(1, 7)]] * 5)  # slope 1 m/pixel along x
    assert depth_gradient_loss(ramp, ramp).item() == pytest.approx(0.0)
    flat = torch.full_like(ramp, 3.0)
    # Sobel/8 of the ramp is (1, 0) inside; the flat prediction's is 0 there -> error 1.
    assert depth_gradient_loss(flat, ramp).item() == pytest.approx(1.0)
    assert depth_gradient_loss(2 * ramp, ramp).item() == pytest.approx(1.0)


def test_depth_gradient_skips_neighbourhoods_of_invalid_pixels():
    gt = _img([[float(x) for x in range(1, 7)]] * 5)
    gt[0, 0, 2, 2] = 0.0  # invalid: all interior pixels with it in their 3x3 are excluded
    pred = gt.clone()
    pred[0, 0, 2, 2] = 100.0  # a wild prediction on the invalid pixel costs nothing ...
    pred[0, 0, 2, 4] = 3.0     # ... but a valid pixel outside its neighbourhood does
    loss = depth_gradient_loss(pred, gt)
    assert 0 < loss.item() < 10
    gt[0, 0, 2, 4] = 0.0
    assert depth_gradient_loss(pred, gt).item() == pytest.approx(0.0)


def test_semantic_boundary_term():
    labels = torch.tensor([[[0, 0, 0, 1, 1, 1]] * 5])
    edges = semantic_boundaries(labels)[0, 0]
    assert edges[:, 2:4].all() and not edges[:, :2].any() and not edges[:, 4:].any()
    gt = _img([[float(x) for x in range(1, 7)]] * 5)
    flat = torch.full_like(gt, 3.0)
    plain = depth_gradient_loss(flat, gt)
    weighted = depth_gradient_loss(flat, gt, labels, semantic_boundary_weight=1.0)
    # interior columns 1..4 (all error 1), boundary columns 2, 3 weighted 2 -> mean 1.5
    assert plain.item() == pytest.approx(1.0) and weighted.item() == pytest.approx(1.5)


def _output(batch=2, classes=3, size=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    depth = (torch.rand(batch, 1, size, size, generator=generator) * 5 + 0.1).requires_grad_()
    logits = torch.randn(batch, classes, size, size, generator=generator).requires_grad_()
    return SynergyOutput(depth, logits)


def test_all_invalid_batches_are_finite_and_backpropagate():
    out = _output()
    depth_gt = torch.zeros_like(out.depth)
    depth_gt[0, 0, 0, 0] = NAN
    labels = torch.full((2, 8, 8), 255, dtype=torch.int64)
    for name, weights in TABLE8_CONFIGS.items():
        total, parts = SynergyLoss(weights)(out, depth_gt, labels)
        assert total.item() == 0.0 and all(v == 0.0 for v in parts.values()), name
        total.backward()
        assert torch.isfinite(out.depth.grad).all()
        assert torch.isfinite(out.semantic_logits.grad).all()


def test_synergy_loss_is_the_weighted_sum():
    out = _output()
    depth_gt = torch.rand(2, 1, 8, 8) * 4 + 0.5
    labels = torch.randint(0, 3, (2, 8, 8))
    weights = {"depth_attention": 2.0, "focal": 0.5, "depth_gradient": 1.5, "l2": 0.25}
    total, parts = SynergyLoss(weights)(out, depth_gt, labels)
    expected = (2.0 * depth_attention_loss(out.depth, depth_gt)
                + 0.5 * focal_loss(out.semantic_logits, labels)
                + 1.5 * depth_gradient_loss(out.depth, depth_gt)
                + 0.25 * l2_loss(out.depth, depth_gt))
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["total"] == pytest.approx(total.item())
    assert set(parts) == set(weights) | {"total"}


def test_table8_configs_are_four_weight_dicts():
    assert list(TABLE8_CONFIGS) == ["l2", "da", "da_semf", "da_semf_jg"]
    out = _output()
    depth_gt = torch.rand(2, 1, 8, 8) * 4 + 0.5
    labels = torch.randint(0, 3, (2, 8, 8))
    seen = [set(SynergyLoss(w)(out, depth_gt, labels)[1]) for w in TABLE8_CONFIGS.values()]
    assert seen[0] == {"l2", "cross_entropy", "total"}
    assert seen[3] == {"depth_attention", "focal", "depth_gradient", "total"}


def test_former_term_name_joint_gradient_is_the_depth_gradient_term():
    out = _output()
    depth_gt = torch.rand(2, 1, 8, 8) * 4 + 0.5
    old = SynergyLoss({"depth_attention": 1.0, "joint_gradient": 2.0})
    new = SynergyLoss({"depth_attention": 1.0, "depth_gradient": 2.0})
    assert old.weights == new.weights == {"depth_attention": 1.0, "depth_gradient": 2.0}
    assert old(out, depth_gt)[0].item() == pytest.approx(new(out, depth_gt)[0].item())
    with pytest.raises(SynergyError, match="given twice.*keep only 'depth_gradient'"):
        SynergyLoss({"joint_gradient": 1.0, "depth_gradient": 1.0})


def test_missing_targets_skip_their_terms():
    out = _output()
    labels = torch.randint(0, 3, (2, 8, 8))
    total, parts = SynergyLoss(TABLE8_CONFIGS["da_semf_jg"])(out, None, labels)
    assert set(parts) == {"focal", "total"}
    total.backward()
    assert out.depth.grad is not None and float(out.depth.grad.abs().sum()) == 0.0


@pytest.mark.parametrize("weights, message", [({"l1": 1.0}, "unknown loss"),
                                              ({"l2": 0.0}, "at least one"),
                                              ({"l2": -1.0}, ">= 0")])
def test_bad_weights(weights, message):
    with pytest.raises(SynergyError, match=message):
        SynergyLoss(weights)


def test_bad_targets_give_clear_errors():
    out = _output()
    loss = SynergyLoss({"focal": 1.0, "l2": 1.0})
    with pytest.raises(SynergyError, match="int64"):
        loss(out, None, torch.zeros(2, 8, 8, dtype=torch.int32))
    with pytest.raises(SynergyError, match="outside 0..2"):
        loss(out, None, torch.full((2, 8, 8), 7, dtype=torch.int64))
    with pytest.raises(SynergyError, match="depth target shape"):
        loss(out, torch.ones(2, 1, 4, 4), None)
