"""Depth and semantic evaluation metrics (the NYUv2 protocol of the paper's Tables 4-8).

Depth, per image (``depth_metrics``): valid pixels have GT in (min_depth, max_depth) and are
finite; predictions are clipped to [min_depth, max_depth]; then

    abs_rel = mean(|p - g| / g)          sq_rel = mean((p - g)^2 / g)
    rmse = sqrt(mean((p - g)^2))         rmse_log = sqrt(mean((ln p - ln g)^2))
    log10 = mean(|log10 p - log10 g|)    delta_k = mean(max(g/p, p/g) < 1.25^k)

Dataset figures are these per-image values averaged over images (``DepthRangeEvaluator``).
Per-pixel terms are float32 and their sums float64: results agree with the same formulas in
float64 to ~1e-6 relative (far below the 3 decimals the tables print), at half the cost.
The Eigen crop (rows 45:471, cols 41:601 of 480x640) is scaled to other image sizes by the
same fractions (truncated), e.g. rows 22:235, cols 20:300 on 240x320.
Semantic (``SemanticConfusion``): a streaming confusion matrix (bounded memory) giving pixel
accuracy, mean class accuracy and mIoU over the classes present in the ground truth.
"""
from __future__ import annotations

import json
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from synergy_ros.core.errors import SynergyError

DEPTH_METRIC_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10",
                     "delta1", "delta2", "delta3")
# Eigen et al.'s crop on 480x640 NYUv2 images: rows 45:471, cols 41:601.
EIGEN_CROP_480x640 = (45, 471, 41, 601)
Crop = Union[None, str, Sequence[int]]


def _to_numpy(array, name: str) -> np.ndarray:
    """One (H, W) floating-point image (float32 or float64 kept as is, others widened)."""
    if hasattr(array, "detach"):  # torch (any device, also float16 / bfloat16)
        array = array.detach().float().cpu().numpy()
    array = np.asarray(array)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise SynergyError(f"{name} must be one (H, W) image, got shape {array.shape}")
    if array.dtype in (np.float32, np.float64):
        return array
    return array.astype(np.float32 if array.dtype == np.float16 else np.float64)


def crop_box(crop: Crop, height: int, width: int) -> Optional[tuple[int, int, int, int]]:
    """Resolve a crop option to (top, bottom, left, right) pixel bounds for an HxW image.

    ``None``: no crop. ``"eigen"``: Eigen's NYUv2 crop, scaled from 480x640 to HxW.
    A 4-sequence: explicit (top, bottom, left, right), checked against the image size.
    """
    if crop is None:
        return None
    if isinstance(crop, str):
        if crop != "eigen":
            raise SynergyError(f"unknown crop {crop!r}; use 'eigen', None or "
                               f"(top, bottom, left, right)")
        top, bottom, left, right = EIGEN_CROP_480x640
        # Same fractions as Garg's KITTI crop code (0.09375, 0.98125, 0.0640625, 0.9390625),
        # truncated to integers as that code does; exact on 480x640.
        return (int(top / 480 * height), int(bottom / 480 * height),
                int(left / 640 * width), int(right / 640 * width))
    box = tuple(int(v) for v in crop)
    if len(box) != 4 or not (0 <= box[0] < box[1] <= height and 0 <= box[2] < box[3] <= width):
        raise SynergyError(f"crop {crop!r} is not (top, bottom, left, right) inside a "
                           f"{height}x{width} image")
    return box


# Per-pixel terms summed by ``_range_sums``, in this row order; ``_finish`` turns sums into
# the metrics. rmse / rmse_log / log10 come from the squared error, the squared and the
# absolute natural-log ratio L = ln(p / g) (log10 |p/g| = |L| / ln 10: one log per pixel);
# delta_k = max(g/p, p/g) < 1.25^k is |L| < k ln 1.25 (no second division). The last row is
# 1 per pixel, so its sum is the pixel count.
_TERMS = ("abs_rel", "sq_rel", "sq", "log_sq", "log_abs", "delta1", "delta2", "delta3",
          "pixels")
_LN10 = float(np.log(10.0))
_DELTA_LOG_LIMITS = tuple(np.float32(k * np.log(1.25)) for k in (1, 2, 3))
# Pixels per block in ``_range_sums``: the (9, block) float32 scratch stays in the CPU cache
# (a float32 matrix product over a whole 320x240 image is 4x slower than over these blocks),
# and each block's float32 sums (relative error ~1e-7 x sqrt(block)) are added in float64.
_BLOCK = 16384


def _finish(sums: np.ndarray) -> dict[str, float]:
    """Metrics of one image from its (9,) ``_TERMS`` sums (pixel count > 0)."""
    mean = sums / sums[-1]
    return {
        "abs_rel": float(mean[0]),
        "sq_rel": float(mean[1]),
        "rmse": float(np.sqrt(mean[2])),
        "rmse_log": float(np.sqrt(mean[3])),
        "log10": float(mean[4] / _LN10),
        "delta1": float(mean[5]),
        "delta2": float(mean[6]),
        "delta3": float(mean[7]),
    }


def _fill_terms(terms: np.ndarray, pred: np.ndarray, gt: np.ndarray) -> None:
    """Write the ``_TERMS`` of matched 1-D float32 pixels (metres, > 0) into ``terms`` (9, N)."""
    diff = np.subtract(pred, gt, out=terms[2])
    np.abs(diff, out=terms[0])
    np.divide(terms[0], gt, out=terms[0])
    np.multiply(diff, diff, out=terms[2])
    np.divide(terms[2], gt, out=terms[1])
    log_ratio = np.divide(pred, gt, out=terms[4])
    np.log(log_ratio, out=log_ratio)
    np.multiply(log_ratio, log_ratio, out=terms[3])
    np.abs(log_ratio, out=log_ratio)
    for row, limit in zip((5, 6, 7), _DELTA_LOG_LIMITS):
        np.less(log_ratio, limit, out=terms[row])
    terms[8] = 1.0


class _Scratch:
    """Reusable float32 work buffers of ``_range_sums`` (one per evaluator / thread)."""

    def __init__(self) -> None:
        self.terms = np.empty((len(_TERMS), 0), dtype=np.float32)
        self.member = np.empty((0, 0), dtype=np.float32)

    def get(self, rows: int, block: int) -> tuple[np.ndarray, np.ndarray]:
        """(9, >= block) term buffer and (rows, >= block) range-membership buffer.

        The membership buffer starts as ones; ``_range_sums`` overwrites every row but the
        last, so the last ("all") row stays ones.
        """
        if self.terms.shape[1] < block:
            self.terms = np.empty((len(_TERMS), block), dtype=np.float32)
        if self.member.shape[0] != rows or self.member.shape[1] < block:
            self.member = np.ones((rows, max(block, self.member.shape[1])), dtype=np.float32)
        return self.terms, self.member


def _range_sums(pred: np.ndarray, gt: np.ndarray, limits: Sequence[float],
                scratch: Optional[_Scratch] = None) -> np.ndarray:
    """``_TERMS`` sums of matched 1-D float32 (clipped) predictions and GT (metres, > 0, as
    ``_prepare`` returns them) per range.

    ``limits``: finite upper GT limits (metres). Returns (len(limits) + 1, 9) float64: row
    i sums the pixels with GT <= limits[i], the last row all pixels (last column: pixel
    count). Each pixel's terms are computed once, in float32, block by block; a matrix
    product with the block's 0/1 range membership adds them to every range containing it.
    """
    sums = np.zeros((len(limits) + 1, len(_TERMS)))
    block = max(min(_BLOCK, gt.size), 1)
    terms, member = (scratch or _Scratch()).get(len(limits) + 1, block)
    for start in range(0, gt.size, block):
        stop = min(start + block, gt.size)
        size = stop - start
        _fill_terms(terms[:, :size], pred[start:stop], gt[start:stop])
        for row, limit in enumerate(limits):
            np.less_equal(gt[start:stop], limit, out=member[row, :size])
        sums += member[:, :size] @ terms[:, :size].T
    return sums


def _prepare(pred, gt, min_depth: float, max_depth: float, crop: Crop,
             mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """The valid pixels as matched 1-D float32 arrays (clipped prediction, GT), metres.

    Valid: GT in (min_depth, max_depth) (NaN and +-inf fail) and ``mask`` (H, W) bool where
    given (e.g. where the prediction exists). Predictions are clipped to [min_depth,
    max_depth], NaN becoming min_depth.
    """
    if not 0 < min_depth < max_depth:
        raise SynergyError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
    pred = _to_numpy(pred, "pred")
    gt = _to_numpy(gt, "gt")
    if pred.shape != gt.shape:
        raise SynergyError(f"prediction {pred.shape} and ground truth {gt.shape} differ in "
                           f"size; resize the prediction to the ground truth first")
    if mask is not None and mask.shape != gt.shape:
        raise SynergyError(f"mask {mask.shape} and ground truth {gt.shape} differ in size")
    box = crop_box(crop, *gt.shape)
    if box is not None:
        pred = pred[box[0]:box[1], box[2]:box[3]]
        gt = gt[box[0]:box[1], box[2]:box[3]]
        mask = None if mask is None else mask[box[0]:box[1], box[2]:box[3]]
    with np.errstate(invalid="ignore"):
        valid = np.greater(gt, min_depth)  # NaN compares False; +-inf fail a bound
        valid &= gt < max_depth
    if mask is not None:
        valid &= mask
    gt = gt[valid].astype(np.float32, copy=False)
    pred = pred[valid].astype(np.float32, copy=False)
    np.fmax(pred, np.float32(min_depth), out=pred)  # fmax: NaN -> min_depth
    np.fmin(pred, np.float32(max_depth), out=pred)
    return pred, gt


def depth_metrics(pred, gt, min_depth: float = 1e-3, max_depth: float = 10.0,
                  crop: Crop = None, mask: Optional[np.ndarray] = None) -> dict[str, float]:
    """Depth metrics of one (H, W) prediction against GT, both metres (numpy or torch).

    ``mask`` (H, W) bool limits the pixels further (e.g. to where the prediction is valid).
    Returns the keys of ``DEPTH_METRIC_KEYS``; all NaN when no pixel is valid.
    """
    clipped, gt = _prepare(pred, gt, min_depth, max_depth, crop, mask)
    if not gt.size:
        return {key: float("nan") for key in DEPTH_METRIC_KEYS}
    return _finish(_range_sums(clipped, gt, ())[0])


def median_scale(pred: np.ndarray, gt: np.ndarray, min_depth: float = 1e-3,
                 max_depth: float = 10.0, mask: Optional[np.ndarray] = None) -> float:
    """Per-image median scaling of scale-ambiguous depth: median(GT) / median(prediction).

    The standard protocol for monocular models without metric scale (Zhou et al. 2017,
    Monodepth2): both medians over the pixels with GT in (min_depth, max_depth), a valid
    (finite, > 0) prediction and ``mask`` where given; the prediction is multiplied by the
    result before scoring. Both (H, W) metres; NaN when no pixel qualifies.
    """
    pred = np.asarray(pred, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        valid = (gt > min_depth) & (gt < max_depth) & np.isfinite(pred) & (pred > 0)
    if mask is not None:
        valid &= mask
    if not valid.any():
        return float("nan")
    return float(np.median(gt[valid])) / float(np.median(pred[valid]))


def _range_label(limit: Optional[float]) -> str:
    return "all" if limit is None else f"<={limit:g}m"


class DepthRangeEvaluator:
    """Per-image depth metrics averaged over images, for GT <= each range and for all.

    ``ranges`` are upper GT limits in metres (paper indoor: 4, 6, 8; outdoors e.g. 20, 40, 80);
    ``"all"`` (GT in (min_depth, max_depth)) is always added. An image with no valid pixel in
    a range is skipped for that range and counted in ``skipped``.
    """

    def __init__(self, ranges: Iterable[float] = (4.0, 6.0, 8.0), min_depth: float = 1e-3,
                 max_depth: float = 10.0, crop: Crop = None) -> None:
        limits = sorted(float(r) for r in ranges)
        if any(r <= min_depth for r in limits):
            raise SynergyError(f"depth ranges {limits} must be > min_depth {min_depth}")
        self.limits: list[Optional[float]] = [*limits, None]
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.crop = crop
        self._scratch = _Scratch()
        self.reset()

    def reset(self) -> None:
        """Forget all accumulated images."""
        self._sums = {lim: dict.fromkeys(DEPTH_METRIC_KEYS, 0.0) for lim in self.limits}
        self._images = dict.fromkeys(self.limits, 0)
        self._skipped = dict.fromkeys(self.limits, 0)

    def update(self, pred, gt, mask: Optional[np.ndarray] = None
               ) -> dict[str, dict[str, float]]:
        """Add one image ((H, W) metres); returns its metrics per range label.

        ``mask`` (H, W) bool, optional: score only these pixels (e.g. where the prediction
        exists), on top of the GT range test. Not thread-safe (reuses work buffers): one
        evaluator per thread.
        """
        clipped, gt = _prepare(pred, gt, self.min_depth, self.max_depth, self.crop, mask)
        sums = _range_sums(clipped, gt, self.limits[:-1], self._scratch)
        result = {}
        for row, limit in enumerate(self.limits):
            if not sums[row, -1]:
                self._skipped[limit] += 1
                continue
            values = _finish(sums[row])
            for key, value in values.items():
                self._sums[limit][key] += value
            self._images[limit] += 1
            result[_range_label(limit)] = values
        return result

    def compute(self) -> dict[str, dict[str, float]]:
        """{range label: {metric: mean over images, "images": n, "skipped": k}}."""
        table = {}
        for limit in self.limits:
            count = self._images[limit]
            row = {key: (self._sums[limit][key] / count if count else float("nan"))
                   for key in DEPTH_METRIC_KEYS}
            row["images"] = count
            row["skipped"] = self._skipped[limit]
            table[_range_label(limit)] = row
        return table

    def to_dict(self) -> dict:
        """JSON-serialisable result with the evaluation settings (NaN becomes null)."""
        rows = {label: {k: (None if isinstance(v, float) and np.isnan(v) else v)
                        for k, v in row.items()} for label, row in self.compute().items()}
        return {"min_depth": self.min_depth, "max_depth": self.max_depth,
                "crop": self.crop if not isinstance(self.crop, tuple) else list(self.crop),
                "ranges": rows}

    def to_json(self) -> str:
        """``to_dict`` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        """A table laid out like the paper's Tables 4-7 (lower is better | higher is better)."""
        header = ("| Depth range | rel | sq rel | log10 | rms | rms (log) | δ<1.25 | δ<1.25² "
                  "| δ<1.25³ | images | skipped |")
        lines = [header, "|" + "---|" * 11]
        order = ("abs_rel", "sq_rel", "log10", "rmse", "rmse_log", "delta1", "delta2", "delta3")
        for label, row in self.compute().items():
            cells = ["n/a" if np.isnan(row[k]) else f"{row[k]:.3f}" for k in order]
            lines.append(f"| {label} | " + " | ".join(cells)
                         + f" | {row['images']} | {row['skipped']} |")
        return "\n".join(lines) + "\n"


class SemanticConfusion:
    """Streaming confusion matrix (rows: GT class, columns: predicted class), int64 counts."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise SynergyError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Zero the matrix."""
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred, gt) -> np.ndarray:
        """Add a prediction / GT pair of class-id arrays of the same shape (any ndim).

        Returns this pair's own (C, C) int64 counts (rows GT, columns prediction).
        """
        pred = np.asarray(pred.detach().cpu() if hasattr(pred, "detach") else pred)
        gt = np.asarray(gt.detach().cpu() if hasattr(gt, "detach") else gt)
        if pred.shape != gt.shape:
            raise SynergyError(f"semantic prediction {pred.shape} and GT {gt.shape} differ")
        classes = self.num_classes
        gt, pred = gt.ravel(), pred.ravel()
        ignored = gt == self.ignore_index
        keep = None if not ignored.any() else ~ignored
        where = True if keep is None else keep
        for name, ids in (("GT", gt), ("prediction", pred)):
            # initial=0: min(0, ids) < 0 iff an id is negative, max(0, ids) >= C iff one is >= C
            low = ids.min(initial=0, where=where)
            high = ids.max(initial=0, where=where)
            if low < 0 or high >= classes:
                raise SynergyError(f"{name} class ids span {low}..{high}, outside "
                                   f"0..{classes - 1} (ignore id {self.ignore_index})")
        index = gt.astype(np.intp) * classes
        index += pred
        if keep is not None:
            index[ignored] = classes * classes  # one extra bin, dropped below
        counts = np.bincount(index, minlength=classes * classes + 1)[:classes * classes]
        counts = counts.reshape(classes, classes)
        self.matrix += counts
        return counts

    def compute(self) -> dict:
        """pixel_acc, mean_acc, miou (over GT-present classes), per-class lists, counts."""
        matrix = self.matrix.astype(np.float64)
        gt_count = matrix.sum(axis=1)
        true_pos = np.diag(matrix)
        union = gt_count + matrix.sum(axis=0) - true_pos
        present = gt_count > 0
        total = matrix.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            class_acc = np.where(present, true_pos / gt_count, np.nan)
            iou = np.where(present, true_pos / union, np.nan)
        return {
            "pixel_acc": float(true_pos.sum() / total) if total else float("nan"),
            "mean_acc": float(np.nanmean(class_acc)) if present.any() else float("nan"),
            "miou": float(np.nanmean(iou)) if present.any() else float("nan"),
            "class_acc": [None if np.isnan(v) else float(v) for v in class_acc],
            "class_iou": [None if np.isnan(v) else float(v) for v in iou],
            "classes_present": int(present.sum()),
            "pixels": int(total),
        }
