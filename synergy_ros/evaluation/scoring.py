"""Scoring accumulators of `synergy evaluate`: per-thread running tables, merged exactly.

Each scoring thread owns a :class:`ScoringAccumulator` (depth-range table, confusion matrix,
error bins), so no locking is needed while frames are scored; :func:`merge_range_tables` and
:func:`merged_semantic` combine them at the end. :class:`FrameScores` keeps the per-frame
series in frame order. :func:`score_depth` is the per-frame depth scoring core.
"""
from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any, Iterable, Sequence

import numpy as np

from synergy_ros.evaluation import report
from synergy_ros.evaluation.metrics import DEPTH_METRIC_KEYS, DepthRangeEvaluator, SemanticConfusion

#: Ground-truth depth bins of the error-vs-range plot (equal width over (0, max_depth]).
BIN_COUNT = 20


class DepthErrorBins:
    """Mean abs-rel error and RMSE per ground-truth depth bin, accumulated over all pixels."""

    def __init__(self, max_depth: float, bins: int = BIN_COUNT) -> None:
        """Bins of equal width over (0, max_depth] metres."""
        self.edges = np.linspace(0.0, max_depth, bins + 1)
        self.count = np.zeros(bins)
        self.abs_rel = np.zeros(bins)
        self.sq_err = np.zeros(bins)

    def update(self, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> None:
        """Add the (H, W) pixels where ``valid`` holds (metres, GT within (0, max_depth])."""
        g, p = gt[valid], pred[valid]
        bins = len(self.count)
        index = np.minimum((g * (bins / self.edges[-1])).astype(np.intp), bins - 1)
        error = p - g
        self.count += np.bincount(index, minlength=bins)
        self.abs_rel += np.bincount(index, np.abs(error) / g, minlength=bins)
        self.sq_err += np.bincount(index, error * error, minlength=bins)

    def add(self, other: "DepthErrorBins") -> None:
        """Add another accumulator's pixels (same bins)."""
        self.count += other.count
        self.abs_rel += other.abs_rel
        self.sq_err += other.sq_err

    def means(self) -> tuple[np.ndarray, np.ndarray]:
        """(abs_rel, rmse) per bin, NaN where a bin saw no pixel."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.abs_rel / self.count, np.sqrt(self.sq_err / self.count)


@dataclasses.dataclass
class FrameScores:
    """Per-frame results in frame order (written by the ordered ``emit`` step only).

    ``add_bad`` may be called from any thread; everything else from the emitting thread.
    """

    depth_sums: dict = dataclasses.field(default_factory=dict)  # key -> (sum, frames)
    depth_frames: int = 0
    coverage_sum: float = 0.0
    times_s: list = dataclasses.field(default_factory=list)
    abs_rel: list = dataclasses.field(default_factory=list)
    rmse: list = dataclasses.field(default_factory=list)
    bad_frames: int = 0
    bad_reasons: dict = dataclasses.field(default_factory=dict)
    aligned_sums: dict = dataclasses.field(default_factory=dict)  # alignment -> depth_sums
    _lock: Any = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add_depth(self, metrics: dict, coverage: float, time_s: float) -> None:
        """Add one frame's depth metrics, its coverage (0-1) and time since the first frame (s)."""
        _add_sums(self.depth_sums, metrics)
        self.depth_frames += 1
        self.coverage_sum += coverage
        self.times_s.append(time_s)
        self.abs_rel.append(float(metrics.get("abs_rel", math.nan)))
        self.rmse.append(float(metrics.get("rmse", math.nan)))

    def add_bad(self, reason: str) -> None:
        """Count a frame skipped as malformed under ``reason`` (any thread)."""
        with self._lock:
            self.bad_frames += 1
            self.bad_reasons[reason] = self.bad_reasons.get(reason, 0) + 1

    def add_aligned(self, aligned: dict) -> None:
        """Add one frame's depth metrics per alignment (``{"median": metrics, ...}``)."""
        for name, metrics in aligned.items():
            _add_sums(self.aligned_sums.setdefault(name, {}), metrics)

    def aligned_means(self) -> dict:
        """Mean depth metrics per alignment over the frames that had them."""
        return {name: {key: total / count for key, (total, count) in sums.items()}
                for name, sums in self.aligned_sums.items()}

    def depth_means(self) -> dict:
        """Mean of each depth metric over the frames that had it, plus mean ``coverage``."""
        if not self.depth_frames:
            return {}
        means = {key: total / count for key, (total, count) in self.depth_sums.items()}
        means["coverage"] = self.coverage_sum / self.depth_frames
        return means


def _add_sums(sums: dict, metrics: dict) -> None:
    """Add a frame's finite depth metrics to ``sums`` (key -> (sum, frames))."""
    for key in report.DEPTH_KEYS:
        value = metrics.get(key)
        if value is not None and math.isfinite(value):  # NaN: no valid pixel
            total, count = sums.get(key, (0.0, 0))
            sums[key] = (total + float(value), count + 1)


class ScoringAccumulator:
    """The running range table, confusion matrix and error bins of one scoring thread.

    Args:
        ranges: upper bounds (m) of the depth-range rows (an ``all`` row is added).
        min_depth, max_depth: ground truth outside (min_depth, max_depth) metres is not scored.
        num_classes: classes of the confusion matrix; None = no semantic scoring.
        with_bins: keep the error-vs-range bins (for the plots).
    """

    def __init__(self, ranges: Sequence[float], min_depth: float, max_depth: float,
                 num_classes: int | None, with_bins: bool) -> None:
        self.min_depth, self.max_depth = min_depth, max_depth
        self.ranges = DepthRangeEvaluator(list(ranges), min_depth=min_depth, max_depth=max_depth)
        self.confusion = SemanticConfusion(num_classes) if num_classes else None
        self.bins = DepthErrorBins(max_depth) if with_bins else None
        self.seconds = 0.0  # time spent scoring

    def score_depth(self, depth: np.ndarray, gt: np.ndarray) -> tuple[dict, float]:
        """Score one frame: (depth metrics of the frame, coverage in 0-1).

        ``depth`` and ``gt`` are (H, W) float32 metres of the same size; NaN or <= 0
        predictions are left out of the metrics and lower ``coverage`` (share of valid
        ground-truth pixels with a valid prediction). The metrics are the range table's
        ``all`` row for this image (NaN when no pixel is valid).
        """
        gt_valid = np.isfinite(gt)  # the decoders mark invalid ground truth with NaN
        with np.errstate(invalid="ignore"):
            pred_valid = np.isfinite(depth)
            pred_valid &= depth > 0
        covered = np.count_nonzero(gt_valid & pred_valid)
        coverage = covered / max(np.count_nonzero(gt_valid), 1)
        # the range evaluator's "all" row is this image's depth_metrics (same mask and clip)
        per_range = self.ranges.update(depth, gt, mask=pred_valid)
        metrics = per_range.get("all") or dict.fromkeys(DEPTH_METRIC_KEYS, math.nan)
        if self.bins is not None:
            in_range = pred_valid & (gt > self.min_depth) & (gt < self.max_depth)
            self.bins.update(depth, gt, in_range)
        return metrics, coverage

    def score_labels(self, labels: np.ndarray, labels_gt: np.ndarray) -> float:
        """Add one frame's (H, W) class ids to the confusion matrix; returns its pixel accuracy."""
        frame_matrix = self.confusion.update(labels, labels_gt)  # this frame's (C x C)
        total = int(frame_matrix.sum())
        return float(np.trace(frame_matrix)) / total if total else math.nan


def merge_range_tables(tables: Iterable[dict]) -> dict:
    """Combine ``DepthRangeEvaluator.compute()`` tables of disjoint image sets exactly.

    Each row's metrics are means over its ``images``; the merged mean weights them by
    ``images`` (rows with no image are skipped); ``images`` and ``skipped`` add up.
    """
    merged: dict[str, dict] = {}
    for table in tables:
        for label, row in table.items():
            into = merged.setdefault(label, {"sums": {}, "images": 0, "skipped": 0})
            into["images"] += row["images"]
            into["skipped"] += row["skipped"]
            for key, value in row.items():
                if key not in ("images", "skipped"):
                    weighted = value * row["images"] if row["images"] else 0.0
                    into["sums"][key] = into["sums"].get(key, 0.0) + weighted
    return {label: {**{key: (total / into["images"] if into["images"] else math.nan)
                       for key, total in into["sums"].items()},
                    "images": into["images"], "skipped": into["skipped"]}
            for label, into in merged.items()}


def merged_semantic(accumulators: Sequence[ScoringAccumulator], class_names: list) -> dict:
    """pixel_acc, mean_acc, miou, per_class_iou and classes_present over all accumulators."""
    if not accumulators or accumulators[0].confusion is None:
        return {}
    confusion = SemanticConfusion(len(class_names))
    confusion.matrix = sum(acc.confusion.matrix for acc in accumulators)
    scores = confusion.compute()
    semantic = {key: float(scores[key]) for key in ("pixel_acc", "mean_acc", "miou")
                if key in scores}
    semantic["per_class_iou"] = dict(zip(class_names, scores["class_iou"]))
    semantic["classes_present"] = scores["classes_present"]
    return semantic


def merged_bins(accumulators: Sequence[ScoringAccumulator], max_depth: float) -> DepthErrorBins:
    """The error bins of all accumulators added up."""
    bins = DepthErrorBins(max_depth)
    for acc in accumulators:
        if acc.bins is not None:
            bins.add(acc.bins)
    return bins
