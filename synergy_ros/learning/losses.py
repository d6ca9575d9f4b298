"""Training losses of the synergy network (paper Sec. 3.3 and supplementary Table 8).

All losses take the network's full-resolution outputs and ignore invalid targets: depth
``<= 0`` or NaN (no return), label ``255`` (``IGNORE_INDEX``). With no valid target a loss
is 0 (finite, still connected to the graph so ``backward()`` works).

- ``l2``: mean squared depth error (Table 8's baseline).
- ``depth_attention`` (L_DA): mean((alpha_D + lambda_D) * |d - d_hat|) with
  alpha_D = d / max(d) per image (the GT depth normalised to [0, 1]) and
  lambda_D = 1 - min(l, l_hat) / max(l, l_hat). Where both d and d_hat are > 1 m, l = log d,
  the paper's form. log d <= 0 at or below 1 m makes the paper's ratio undefined (0/0 at 1 m)
  or flips its sign, so where either depth is <= 1 m we use l = log(1 + d), positive and
  monotonic for every depth > 0 (``log1p`` everywhere would roughly halve lambda_D at 2-3 m
  indoors). lambda_D is in [0, 1] in both regions; it jumps where a depth crosses 1 m, which
  is harmless for a detached weight. alpha_D and lambda_D are detached (no gradient).
- ``focal`` (L_semF): -alpha (1 - p_t)^gamma log p_t, alpha = 0.25, gamma = 2, averaged over
  labelled pixels.
- ``cross_entropy``: plain pixel-wise CE (the semantic loss of Table 8's rows without L_semF).
- ``depth_gradient`` (the L_JG slot of Table 8; ``depth_gradient_loss``): a depth-gradient
  loss, mean |Sobel_x(d_hat) - Sobel_x(d)| + |Sobel_y(d_hat) - Sobel_y(d)| over pixels whose
  3x3 neighbourhood has valid depth (Sobel / 8: metres per pixel). The main paper's exact
  L_JG (its joint depth/semantic gradient term) could not be retrieved here (docs/model.md),
  so the term is named for what it is. ``joint_gradient``, its name before, is still
  accepted (``LOSS_ALIASES``) so older configs and checkpoints resolve. Optional
  semantic boundary term (``semantic_boundary_weight`` beta, default 0 = off): the per-pixel
  error is weighted by (1 + beta * b) with b = 1 where the GT label changes within the 3x3
  neighbourhood. Object boundaries are where depth discontinuities concentrate and where the
  depth gradient matters most for point clouds; using GT labels keeps it a fixed weight.
  The supplementary does not state the paper's exact semantic term, so it is off by default.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
import torch.nn.functional as F

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.labels import IGNORE_INDEX

FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
DEPTH_LOSSES = ("l2", "depth_attention", "depth_gradient")
SEMANTIC_LOSSES = ("cross_entropy", "focal")
LOSS_NAMES = DEPTH_LOSSES + SEMANTIC_LOSSES
#: Former term names still accepted in loss configurations: {old name: current name}.
LOSS_ALIASES = {"joint_gradient": "depth_gradient"}

# Supplementary Table 8, lower part: the four loss configurations of the ablation.
TABLE8_CONFIGS: dict[str, dict[str, float]] = {
    "l2": {"l2": 1.0, "cross_entropy": 1.0},
    "da": {"depth_attention": 1.0, "cross_entropy": 1.0},
    "da_semf": {"depth_attention": 1.0, "focal": 1.0},
    "da_semf_jg": {"depth_attention": 1.0, "focal": 1.0, "depth_gradient": 1.0},
}
DEFAULT_WEIGHTS = TABLE8_CONFIGS["da_semf_jg"]


def valid_depth_mask(depth_gt: torch.Tensor) -> torch.Tensor:
    """Bool mask of pixels with a finite depth > 0 m."""
    return torch.isfinite(depth_gt) & (depth_gt > 0)


def _valid_depth(depth_gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask of valid pixels, GT with invalid pixels set to 0 m), both (B, 1, H, W)."""
    mask = valid_depth_mask(depth_gt)
    return mask, torch.where(mask, depth_gt, torch.zeros_like(depth_gt))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ``mask``; 0 (graph-connected) when the mask is empty."""
    values = torch.where(mask, values, torch.zeros_like(values))
    return values.sum() / mask.sum().clamp(min=1)


def l2_loss(pred: torch.Tensor, depth_gt: torch.Tensor) -> torch.Tensor:
    """Mean squared error over valid pixels. pred, depth_gt: (B, 1, H, W) metres."""
    mask, gt = _valid_depth(depth_gt)
    return _masked_mean((pred - gt) ** 2, mask)


def depth_attention_weights(pred: torch.Tensor, depth_gt: torch.Tensor) -> torch.Tensor:
    """alpha_D + lambda_D per pixel, (B, 1, H, W), detached; 0 where depth is invalid."""
    return _depth_attention_weights(pred, *_valid_depth(depth_gt))


def _depth_attention_weights(pred: torch.Tensor, mask: torch.Tensor,
                             gt: torch.Tensor) -> torch.Tensor:
    """``depth_attention_weights`` from an already computed ``_valid_depth`` (mask, gt)."""
    with torch.no_grad():
        per_image_max = gt.flatten(1).amax(dim=1).clamp(min=1e-12)
        alpha = gt / per_image_max.view(-1, *([1] * (gt.dim() - 1)))
        pred = pred.detach().clamp(min=0)
        paper = (gt > 1) & (pred > 1)  # the paper's log d is positive only here
        log_gt = torch.where(paper, torch.log(gt.clamp(min=1)), torch.log1p(gt))
        log_pred = torch.where(paper, torch.log(pred.clamp(min=1)), torch.log1p(pred))
        high = torch.maximum(log_gt, log_pred)
        low = torch.minimum(log_gt, log_pred)
        lam = 1 - low / high.clamp(min=1e-12)
        return torch.where(mask, alpha + lam, torch.zeros_like(gt))


def depth_attention_loss(pred: torch.Tensor, depth_gt: torch.Tensor) -> torch.Tensor:
    """L_DA = mean over valid pixels of (alpha_D + lambda_D) * |d - d_hat|; (B,1,H,W) m."""
    mask, gt = _valid_depth(depth_gt)
    weights = _depth_attention_weights(pred, mask, gt)
    return _masked_mean(weights * (pred - gt).abs(), mask)


def _check_labels(logits: torch.Tensor,
                  labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check (B, H, W) int64 ``labels`` against (B, C, H, W) ``logits``.

    Returns (valid: labels != 255, safe: labels with ignored pixels set to class 0, usable
    as an index).
    """
    if labels.dtype != torch.int64:
        raise SynergyError(f"labels must be int64 class ids (255 = ignore), got {labels.dtype}")
    if labels.shape != (logits.shape[0], *logits.shape[2:]):
        raise SynergyError(f"labels shape {tuple(labels.shape)} does not match logits "
                           f"{tuple(logits.shape)}; expected (B, H, W)")
    valid = labels != IGNORE_INDEX
    if bool(((labels < 0) | (labels >= logits.shape[1]))[valid].any()):
        raise SynergyError(f"labels contain ids outside 0..{logits.shape[1] - 1} (and not the "
                           f"ignore id {IGNORE_INDEX}); map the dataset to the model's classes")
    return valid, torch.where(valid, labels, torch.zeros_like(labels))


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Pixel-wise cross entropy over labelled pixels. logits (B,C,H,W), labels (B,H,W)."""
    valid, safe = _check_labels(logits, labels)
    per_pixel = F.cross_entropy(logits, safe, reduction="none")
    return _masked_mean(per_pixel, valid)


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, alpha: float = FOCAL_ALPHA,
               gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """L_semF = mean over labelled pixels of -alpha (1 - p_t)^gamma log p_t."""
    valid, safe = _check_labels(logits, labels)
    log_pt = torch.log_softmax(logits, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    per_pixel = -alpha * (1 - log_pt.exp()) ** gamma * log_pt
    return _masked_mean(per_pixel, valid)


def sobel_gradients(depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, H, W) -> (gx, gy), Sobel / 8 (units per pixel), zero padding."""
    kernel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
                            dtype=depth.dtype, device=depth.device) / 8
    kernels = torch.stack((kernel_x, kernel_x.t())).unsqueeze(1)
    grads = F.conv2d(depth, kernels, padding=1)
    return grads[:, :1], grads[:, 1:]


def _erode3x3(mask: torch.Tensor) -> torch.Tensor:
    """True where the whole 3x3 neighbourhood is True (border pixels are False)."""
    as_float = (~mask).float()
    return F.max_pool2d(F.pad(as_float, (1, 1, 1, 1), value=1.0), 3, stride=1) == 0


def semantic_boundaries(labels: torch.Tensor) -> torch.Tensor:
    """(B, H, W) labels -> (B, 1, H, W) bool: a different valid label in the 3x3 window."""
    lab = labels.unsqueeze(1).float()
    padded = F.pad(lab, (1, 1, 1, 1), mode="replicate")
    high = F.max_pool2d(padded, 3, stride=1)
    low = -F.max_pool2d(-padded, 3, stride=1)
    ignored = F.max_pool2d(F.pad((lab == IGNORE_INDEX).float(), (1, 1, 1, 1)), 3, stride=1) > 0
    return (high != low) & ~ignored


def depth_gradient_loss(pred: torch.Tensor, depth_gt: torch.Tensor,
                        labels: Optional[torch.Tensor] = None,
                        semantic_boundary_weight: float = 0.0) -> torch.Tensor:
    """Sobel depth-gradient matching, the ``depth_gradient`` term (module docstring), metres.

    pred, depth_gt: (B, 1, H, W) metres; labels (B, H, W) only for the optional boundary
    weight ``semantic_boundary_weight`` (0 = off, the default).
    """
    valid, gt = _valid_depth(depth_gt)
    mask = _erode3x3(valid)
    pred_x, pred_y = sobel_gradients(pred)
    gt_x, gt_y = sobel_gradients(gt)
    error = (pred_x - gt_x).abs() + (pred_y - gt_y).abs()
    if semantic_boundary_weight and labels is not None:
        error = error * (1 + semantic_boundary_weight * semantic_boundaries(labels).to(
            error.dtype))
    return _masked_mean(error, mask)


def canonical_loss_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """``weights`` with former term names (``LOSS_ALIASES``) replaced by the current ones.

    Raises:
        SynergyError: when a term is given under both its old and its new name.
    """
    canonical: dict[str, float] = {}
    for name, weight in weights.items():
        current = LOSS_ALIASES.get(name, name)
        if current in canonical:
            raise SynergyError(f"loss term {current!r} is given twice (as {name!r}, its former "
                               f"name, and as {current!r}); keep only {current!r}")
        canonical[current] = weight
    return canonical


class SynergyLoss:
    """Weighted sum of the losses above; a configuration is a dict of weights.

    ``SynergyLoss({"depth_attention": 1, "focal": 1, "depth_gradient": 1})`` is the paper's
    full loss; ``TABLE8_CONFIGS`` holds the four ablation configurations. Depth terms are
    skipped when ``depth_gt`` is None, semantic terms when ``labels`` is None (weakly
    supervised outdoor training, supplementary Sec. 8).
    """

    def __init__(self, weights: Optional[Mapping[str, float]] = None,
                 semantic_boundary_weight: float = 0.0) -> None:
        weights = canonical_loss_weights(DEFAULT_WEIGHTS if weights is None else weights)
        unknown = sorted(set(weights) - set(LOSS_NAMES))
        if unknown:
            raise SynergyError(f"unknown loss names {unknown}; valid: {', '.join(LOSS_NAMES)}")
        bad = [k for k, v in weights.items() if not float(v) >= 0]
        if bad or not any(float(v) > 0 for v in weights.values()):
            raise SynergyError(f"loss weights must be >= 0 with at least one > 0, got {weights}")
        self.weights = {k: float(v) for k, v in weights.items() if float(v) > 0}
        self.semantic_boundary_weight = float(semantic_boundary_weight)

    def __call__(self, output, depth_gt: Optional[torch.Tensor] = None,
                 labels: Optional[torch.Tensor] = None
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        """Return (total loss tensor, {loss name: unweighted value, "total": value}).

        Args:
            output: a ``SynergyOutput`` (depth (B,1,H,W) m, semantic_logits (B,C,H,W)).
            depth_gt: (B, 1, H, W) metres, 0 or NaN = invalid; None skips depth terms.
            labels: (B, H, W) int64 class ids, 255 = ignore; None skips semantic terms.
        """
        pred, logits = output.depth, output.semantic_logits
        if depth_gt is not None and depth_gt.shape != pred.shape:
            raise SynergyError(f"depth target shape {tuple(depth_gt.shape)} != prediction "
                               f"{tuple(pred.shape)}; resize targets to the network input")
        total = pred.sum() * 0 + logits.sum() * 0
        parts: dict[str, float] = {}
        for name, weight in self.weights.items():
            if name in DEPTH_LOSSES and depth_gt is None:
                continue
            if name in SEMANTIC_LOSSES and labels is None:
                continue
            value = self._term(name, pred, logits, depth_gt, labels)
            parts[name] = float(value.detach())
            total = total + weight * value
        parts["total"] = float(total.detach())
        return total, parts

    def _term(self, name, pred, logits, depth_gt, labels) -> torch.Tensor:
        if name == "l2":
            return l2_loss(pred, depth_gt)
        if name == "depth_attention":
            return depth_attention_loss(pred, depth_gt)
        if name == "depth_gradient":
            return depth_gradient_loss(pred, depth_gt, labels, self.semantic_boundary_weight)
        if name == "cross_entropy":
            return cross_entropy_loss(logits, labels)
        return focal_loss(logits, labels)

    def loss(self, output, depth_gt: Optional[torch.Tensor] = None,
             labels: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Alias of calling the object (the contract's ``loss(output, depth_gt, labels)``)."""
        return self(output, depth_gt, labels)
