"""`synergy evaluate`: score depth (and semantic labels) against ground truth in a rosbag2.

Two modes over one streaming loop:

- **model mode** (``model`` set): every camera image (``image_topic``, Image or
  CompressedImage) goes through :func:`synergy_ros.runtime.load_predictor`'s Predictor;
- **prediction mode** (``pred_topic`` set): depth images already in the bag (e.g. the node's
  ``/synergy/depth`` recorded on the robot) are scored, optionally with their semantic masks
  (``pred_semantic_topic``).

Frames are paired with ground truth by ``header.stamp`` (:class:`synergy_ros.matching.StampMatcher`;
exact, or nearest within ``max_dt_s``); whatever does not pair is counted and reported. Ground
truth is a depth Image (``32FC1`` metres, ``16UC1``/``mono16`` millimetres; 0 / NaN invalid) or a
PointCloud2 in the camera's optical frame, projected through ``camera_info_topic`` (nearest
point per pixel). A prediction of another size is resized to the ground truth's size
(bilinear for depth, nearest for labels) before scoring, and pixels where the prediction is
invalid (NaN, <= 0) are left out of the depth metrics and reported as ``coverage``.

Memory is bounded: the bag is read message by message on a prefetch thread (a small queue),
decoded only when its frame is scored, and only per-frame scalars are kept. A bag that
breaks part-way (truncated, corrupt) still yields the results so far, written to every
requested output, with ``status`` saying how far it got.
"""
from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from synergy_ros import report
from synergy_ros.atomic import atomic_write_text
from synergy_ros.errors import SynergyError
from synergy_ros.matching import MatchedFrame, StampMatcher
from synergy_ros.ros.conversions import stamp_ns
from synergy_ros.scoring_io import depth_from_cloud, depth_from_image, labels_from_image, resize_to
from synergy_ros.streaming import OrderedPool, ReadError, default_workers, prefetch

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CLOUD = "sensor_msgs/msg/PointCloud2"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
INDOOR_RANGES = (4.0, 6.0, 8.0)
OUTDOOR_RANGES = (20.0, 40.0, 80.0)
RESIZE_NOTE = ("predictions of another size are resized to the ground truth's size "
               "(bilinear for depth, nearest neighbour for labels)")
#: Ground-truth depth bins (m) of the error-vs-range plot, per max depth.
_BIN_COUNT = 20
_CSV_COLUMNS = ("frame", "stamp_s", "gt_dt_ms", "coverage") + report.DEPTH_KEYS + (
    "pixel_acc",)


@dataclasses.dataclass
class EvaluateOptions:
    """Everything `synergy evaluate` needs (see ``synergy evaluate --help`` for each flag).

    Depths are metres, ``max_dt_s`` seconds; ``ranges`` are the upper bounds (m) of the
    depth-range table rows (an ``all`` row is always added).
    """

    bag: Path
    gt_topic: str
    pred_topic: str | None = None
    pred_semantic_topic: str | None = None
    image_topic: str | None = None
    semantic_gt_topic: str | None = None
    camera_info_topic: str | None = None
    model: str | None = None
    backend: str = "auto"
    device: str = "auto"
    precision: str = "fp32"
    num_threads: int | None = None
    engine_cache_dir: Path | None = None
    max_dt_s: float = 0.0
    ranges: tuple[float, ...] = INDOOR_RANGES
    min_depth: float = 1e-3
    max_depth: float = 10.0
    label_set: str | None = None
    num_classes: int | None = None
    json_path: Path | None = None
    csv_path: Path | None = None
    markdown_path: Path | None = None
    plots_dir: Path | None = None
    output_bag: Path | None = None
    output_prefix: str = "/synergy"
    num_samples: int = 3
    max_frames: int | None = None
    max_pending: int = 64
    workers: int = 0
    progress: bool = True

    @property
    def mode(self) -> str:
        """``model`` or ``prediction``."""
        return "model" if self.model else "prediction"


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------
def _decoded(messages: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    """(topic, rclpy message) per bagio.BagMessage; (topic, SynergyError) if undecodable."""
    for message in messages:
        try:
            yield message.topic, message.message
        except SynergyError as exc:
            yield message.topic, exc


# ---------------------------------------------------------------------------------------------
# Streaming accumulators
# ---------------------------------------------------------------------------------------------
class DepthErrorBins:
    """Mean abs-rel error and RMSE per ground-truth depth bin, accumulated over all pixels."""

    def __init__(self, max_depth: float, bins: int = _BIN_COUNT) -> None:
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
class _Scores:
    """Per-frame results in frame order (written by the ordered ``emit`` step only)."""

    depth_sums: dict = dataclasses.field(default_factory=dict)  # key -> (sum, frames)
    depth_frames: int = 0
    coverage_sum: float = 0.0
    times_s: list = dataclasses.field(default_factory=list)
    abs_rel: list = dataclasses.field(default_factory=list)
    rmse: list = dataclasses.field(default_factory=list)
    bad_frames: int = 0
    bad_reasons: dict = dataclasses.field(default_factory=dict)
    _lock: Any = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add_depth(self, metrics: dict, coverage: float, time_s: float) -> None:
        for key in report.DEPTH_KEYS:
            value = metrics.get(key)
            if value is not None and math.isfinite(value):  # NaN: no valid pixel
                total, count = self.depth_sums.get(key, (0.0, 0))
                self.depth_sums[key] = (total + float(value), count + 1)
        self.depth_frames += 1
        self.coverage_sum += coverage
        self.times_s.append(time_s)
        self.abs_rel.append(float(metrics.get("abs_rel", math.nan)))
        self.rmse.append(float(metrics.get("rmse", math.nan)))

    def add_bad(self, reason: str) -> None:  # called by the reading and the scoring threads
        with self._lock:
            self.bad_frames += 1
            self.bad_reasons[reason] = self.bad_reasons.get(reason, 0) + 1

    def depth_means(self) -> dict:
        if not self.depth_frames:
            return {}
        means = {key: total / count for key, (total, count) in self.depth_sums.items()}
        means["coverage"] = self.coverage_sum / self.depth_frames
        return means


class _Accumulator:
    """The running range table, confusion matrix and error bins of one scoring thread.

    Each thread owns one, so no locking is needed; :func:`merge_range_tables` and summed
    matrices combine them exactly at the end.
    """

    def __init__(self, options: EvaluateOptions, num_classes: int | None) -> None:
        from synergy_ros.metrics import DepthRangeEvaluator, SemanticConfusion

        self.ranges = DepthRangeEvaluator(list(options.ranges), min_depth=options.min_depth,
                                          max_depth=options.max_depth)
        self.confusion = SemanticConfusion(num_classes) if num_classes else None
        self.bins = DepthErrorBins(options.max_depth) if options.plots_dir else None
        self.seconds = 0.0  # time spent scoring


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


@dataclasses.dataclass
class _Job:
    """One matched frame on its way to a scoring thread (model outputs in metres / ids)."""

    index: int
    frame: MatchedFrame
    camera_info: Any = None
    rgb: np.ndarray | None = None
    prediction: Any = None  # model mode: the runtime Prediction (depth m, labels)


# ---------------------------------------------------------------------------------------------
# The evaluator
# ---------------------------------------------------------------------------------------------
class Evaluator:
    """Streams one bag through matching, prediction (model mode) and scoring.

    Constructing it checks the bag, the topics and the model; then call :meth:`run` and
    :meth:`write_outputs`. ``result`` is the JSON-ready dict of everything measured.
    """

    def __init__(self, options: EvaluateOptions) -> None:
        """Check the options and the bag (raises SynergyError naming the problem)."""
        self.options = options
        self.topic_types = check_bag(options)
        self.predictor = None
        self.class_names: list[str] | None = None
        self.palette: list | None = None
        self._camera_info = None
        self._writer = None
        self._output_palette: np.ndarray | None = None  # class colours of --output-bag
        self._warned_no_camera_info = False
        self._samples: list[tuple[int, str]] = []  # (frame index, PNG name)
        self._sample_every = 1
        self._first_stamp_ns: int | None = None
        self.scores = _Scores()
        self.messages_read = 0
        self.status = "complete"
        self.notes: list[str] = []
        self.seconds = 0.0
        self.predict_seconds = 0.0  # main thread, in Predictor.predict
        self.workers = options.workers or default_workers()
        self.csv = report.FrameCsv(options.csv_path, _CSV_COLUMNS) if options.csv_path else None
        self._setup_labels()
        self._setup_metrics()
        anchor = "image" if options.model else "pred"
        optional = [name for name, topic in (("sem_gt", options.semantic_gt_topic),
                                             ("pred_sem", options.pred_semantic_topic)) if topic]
        self.matcher = StampMatcher(anchor, required=["gt"], optional=optional,
                                    max_dt_ns=int(round(options.max_dt_s * 1e9)),
                                    max_pending=options.max_pending)
        self.stream_of = {options.gt_topic: "gt"}
        if options.model:
            self.stream_of[options.image_topic] = "image"
        else:
            self.stream_of[options.pred_topic] = "pred"
        if options.semantic_gt_topic:
            self.stream_of[options.semantic_gt_topic] = "sem_gt"
        if options.pred_semantic_topic:
            self.stream_of[options.pred_semantic_topic] = "pred_sem"
        anchor_topic = options.image_topic if options.model else options.pred_topic
        self.expected_frames = _message_count(options.bag, anchor_topic)
        if options.max_frames:
            self.expected_frames = min(self.expected_frames or options.max_frames,
                                       options.max_frames)
        if self.expected_frames and options.num_samples:  # spread the PNG frames over the bag
            self._sample_every = max(1, self.expected_frames // options.num_samples)

    # -- setup ------------------------------------------------------------------------------
    def _setup_labels(self) -> None:
        options = self.options
        if options.model:
            from synergy_ros.runtime import load_predictor

            self.predictor = load_predictor(options.model, backend=options.backend,
                                            device=options.device,
                                            precision=options.precision,
                                            num_threads=options.num_threads,
                                            engine_cache_dir=options.engine_cache_dir)
            self.class_names = list(self.predictor.meta.class_names)
            self.palette = list(self.predictor.meta.palette)
        elif options.label_set:
            from synergy_ros.labels import get_label_set

            label_set = get_label_set(options.label_set)
            self.class_names = list(label_set.class_names)
            self.palette = list(label_set.palette)
        elif options.num_classes:
            from synergy_ros.labels import get_label_set

            self.class_names = [f"class_{i}" for i in range(options.num_classes)]
            base = list(get_label_set("nyu40").palette)
            self.palette = [base[i % len(base)] for i in range(options.num_classes)]
        wants_semantic = bool(options.semantic_gt_topic
                              and (options.model or options.pred_semantic_topic))
        if wants_semantic and not self.class_names:
            raise SynergyError("semantic scoring needs the class list: pass --label-set "
                               "(synthetic, nyu40, cityscapes19, cityscapes21) or "
                               "--num-classes N")

    def _setup_metrics(self) -> None:
        num_classes = (len(self.class_names) if self.options.semantic_gt_topic
                       and self.class_names else None)
        self.accumulators = [_Accumulator(self.options, num_classes)
                             for _ in range(self.workers)]

    # -- main loop --------------------------------------------------------------------------
    def run(self) -> dict:
        """Score every frame of the bag; returns :attr:`result` (also on partial runs).

        The main thread reads, matches and (model mode) runs the model; decoding the ground
        truth, scoring, PNGs and the output-bag messages run on ``workers`` scoring threads
        that overlap with the next inference; CSV rows and the output bag are written in
        frame order.
        """
        from tqdm import tqdm

        from synergy_ros import bagio

        options = self.options
        topics = list(self.stream_of)
        camera_info_topic = options.camera_info_topic
        if camera_info_topic:
            topics.append(camera_info_topic)
        if options.output_bag:
            self._open_output_bag()
        started = time.monotonic()
        bar = tqdm(unit="frame", desc=f"evaluate {options.bag.name}", total=self.expected_frames,
                   disable=not options.progress, dynamic_ncols=True)
        scorer = OrderedPool(self._score_job, self._emit, workers=self.workers,
                             name="evaluate-scoring")
        submitted = 0

        def submit(frames: list[MatchedFrame]) -> None:
            nonlocal submitted
            for frame in frames:
                if options.max_frames and submitted >= options.max_frames:
                    return
                job = self._prepare_job(frame, submitted)
                if job is not None:
                    scorer.submit(job)
                    submitted += 1
                    bar.update(1)

        try:
            for topic, msg in prefetch(_decoded(bagio.iter_messages(options.bag, topics))):
                self.messages_read += 1
                if isinstance(msg, SynergyError):  # one undecodable message: skip it
                    self.scores.add_bad(f"undecodable {topic} message")
                    continue
                if topic == camera_info_topic:
                    self._camera_info = msg
                    continue
                submit(self.matcher.push(self.stream_of[topic], stamp_ns(msg), msg))
                if options.max_frames and submitted >= options.max_frames:
                    self.notes.append(f"stopped after --max-frames {options.max_frames}")
                    break
            submit(self.matcher.finish())
        except ReadError as exc:
            self.status = (f"{exc.cause} (results cover the frames read before that)")
            submit(self.matcher.finish())
        except KeyboardInterrupt:
            self.status = f"interrupted after {submitted} frames"
        finally:
            try:
                scorer.close()
            finally:
                bar.close()
                self.seconds = time.monotonic() - started
                if self._writer is not None:
                    self._writer.close()
        return self.result

    def _prepare_job(self, frame: MatchedFrame, index: int) -> "_Job | None":
        """Main-thread part of a frame: decode the image and predict (model mode)."""
        job = _Job(index, frame, self._camera_info)
        if not self.options.model:
            return job
        from synergy_ros.ros.conversions import compressed_to_rgb, image_to_rgb

        image_msg = frame.items["image"]
        try:
            if self.topic_types[self.options.image_topic] == COMPRESSED:
                job.rgb = compressed_to_rgb(image_msg)
            else:
                job.rgb = image_to_rgb(image_msg)
        except ValueError as exc:  # a malformed image: count it, keep going
            self.scores.add_bad(str(exc).split(":")[0][:80])
            return None
        start = time.perf_counter()
        job.prediction = self.predictor.predict(job.rgb)
        self.predict_seconds += time.perf_counter() - start
        return job

    def _score_job(self, job: "_Job", worker: int) -> dict:
        """Scoring-thread part of a frame: returns its CSV row and output-bag messages.

        A malformed message gives ``{"bad": reason}`` (counted, not fatal).
        """
        acc = self.accumulators[worker]
        start = time.perf_counter()
        try:
            return self._score_frame(job, acc)
        except ValueError as exc:
            return {"bad": str(exc).split(":")[0][:80]}
        finally:
            acc.seconds += time.perf_counter() - start

    def _score_frame(self, job: "_Job", acc: _Accumulator) -> dict:
        from synergy_ros.metrics import DEPTH_METRIC_KEYS

        options = self.options
        frame = job.frame
        gt = self._decode_gt(frame.items["gt"], job.camera_info)
        messages = {}
        if options.model:
            pred_depth, pred_labels = job.prediction.depth, job.prediction.labels
            if self._writer is not None:
                messages = self._prediction_messages(frame.items["image"], job)
        else:
            pred_depth = depth_from_image(frame.items["pred"])
            pred_labels = (labels_from_image(frame.items["pred_sem"])
                           if "pred_sem" in frame.items else None)
        depth = resize_to(np.asarray(pred_depth, dtype=np.float32), gt.shape, nearest=False)
        gt_valid = np.isfinite(gt)  # the decoders mark invalid ground truth with NaN
        with np.errstate(invalid="ignore"):
            pred_valid = np.isfinite(depth)
            pred_valid &= depth > 0
        covered = np.count_nonzero(gt_valid & pred_valid)
        coverage = covered / max(np.count_nonzero(gt_valid), 1)
        # the range evaluator's "all" row is this image's depth_metrics (same mask and clip)
        per_range = acc.ranges.update(depth, gt, mask=pred_valid)
        metrics = per_range.get("all") or dict.fromkeys(DEPTH_METRIC_KEYS, math.nan)
        if acc.bins is not None:
            in_range = pred_valid & (gt > options.min_depth) & (gt < options.max_depth)
            acc.bins.update(depth, gt, in_range)
        row = {"frame": job.index, "stamp_ns": frame.stamp_ns, "stamp_s": frame.stamp_ns / 1e9,
               "gt_dt_ms": frame.dt_ns("gt") / 1e6, "coverage": coverage, **metrics}
        labels_gt = labels = None
        if acc.confusion is not None and "sem_gt" in frame.items and pred_labels is not None:
            labels_gt = labels_from_image(frame.items["sem_gt"])
            labels = resize_to(np.asarray(pred_labels), labels_gt.shape, nearest=True)
            frame_matrix = acc.confusion.update(labels, labels_gt)  # this frame's (C x C)
            total = int(frame_matrix.sum())
            row["pixel_acc"] = float(np.trace(frame_matrix)) / total if total else math.nan
        self._maybe_sample(job.index, job.rgb, depth, gt, labels, labels_gt)
        return {"row": row, "messages": messages, "stamp_ns": frame.stamp_ns}

    def _emit(self, result: dict | None) -> None:
        """Frame-order step: CSV row, per-frame series, output-bag messages."""
        if result is None:
            return
        if "bad" in result:
            self.scores.add_bad(result["bad"])
            return
        row = result["row"]
        if self._first_stamp_ns is None:
            self._first_stamp_ns = row["stamp_ns"]
        self.scores.add_depth(row, row["coverage"], (row["stamp_ns"] - self._first_stamp_ns)
                              / 1e9)
        if self.csv is not None:
            self.csv.write(row)
        for topic, msg in result["messages"].items():
            self._writer.write(topic, msg, result["stamp_ns"])

    def _decode_gt(self, msg, camera_info) -> np.ndarray:
        if self.topic_types[self.options.gt_topic] == CLOUD:
            if camera_info is None:
                raise ValueError("no camera_info yet to project the ground-truth cloud")
            from synergy_ros.ros.conversions import camera_info_to_intrinsics

            return depth_from_cloud(msg, camera_info_to_intrinsics(camera_info))
        return depth_from_image(msg)

    # -- samples and output bag ---------------------------------------------------------------
    def _maybe_sample(self, index: int, rgb, depth, gt, labels, labels_gt) -> None:
        """Write the colourised PNG of frame ``index`` if it is one of the samples."""
        options = self.options
        if not options.plots_dir or index % self._sample_every:
            return
        if index // self._sample_every >= options.num_samples:
            return
        from synergy_ros.labels import colorize

        panels = []
        if rgb is not None:
            panels.append(("input", rgb))
        panels += [("prediction (m)", report.colorize_depth(depth, options.max_depth)),
                   ("ground truth (m)", report.colorize_depth(gt, options.max_depth)),
                   ("abs rel error 0-0.5", report.colorize_error(depth, gt))]
        if labels is not None:
            panels += [("labels", colorize(labels, self.palette)),
                       ("label ground truth", colorize(labels_gt, self.palette))]
        name = f"frame_{index:05d}.png"
        report.write_png(Path(options.plots_dir) / name,
                         report.panel_strip(panels, height=max(gt.shape[0], 120)))
        self._samples.append((index, name))  # list.append is atomic across threads

    def _open_output_bag(self) -> None:
        from synergy_ros.bagio import BagWriter
        from synergy_ros.labels import palette_lut

        self._output_palette = palette_lut(self.palette, len(self.class_names))
        self._writer = BagWriter(self.options.output_bag, storage="mcap").open()

    def _prediction_messages(self, image_msg, job: "_Job") -> dict:
        """The node's depth, semantic, semantic_color, camera_info (+ depth/) and points."""
        from synergy_ros.ros.conversions import camera_info_to_intrinsics
        from synergy_ros.ros.outputs import OUTPUT_TOPICS, prediction_messages

        prefix = self.options.output_prefix.rstrip("/")
        camera = None
        if job.camera_info is not None:
            camera = camera_info_to_intrinsics(job.camera_info)
        elif not self._warned_no_camera_info:  # a repeat from a second thread is harmless
            self._warned_no_camera_info = True
            self.notes.append("no camera_info seen before the images: the output bag has no "
                              "points or camera_info (give --camera-info-topic)")
        wanted = [key for key in OUTPUT_TOPICS if key != "attention"]
        messages = prediction_messages(job.prediction, job.rgb, camera, image_msg.header,
                                       self._output_palette, wanted)
        return {f"{prefix}/{OUTPUT_TOPICS[key]}": msg for key, msg in messages}

    # -- results ----------------------------------------------------------------------------
    @property
    def result(self) -> dict:
        """Everything measured, JSON-ready (see docs/evaluation.md for the keys)."""
        options = self.options
        stats = self.matcher.stats
        frames = self.scores.depth_frames
        result: dict[str, Any] = {
            "bag": str(options.bag), "mode": options.mode, "status": self.status,
            "model": options.model,
            "backend": getattr(self.predictor, "backend_name", None),
            "topics": {"image": options.image_topic, "prediction": options.pred_topic,
                       "prediction_semantic": options.pred_semantic_topic,
                       "ground_truth": options.gt_topic,
                       "semantic_ground_truth": options.semantic_gt_topic,
                       "camera_info": options.camera_info_topic},
            "frames": frames, "messages_read": self.messages_read,
            "seconds": self.seconds, "fps": frames / self.seconds if self.seconds else 0.0,
            "predict_seconds": self.predict_seconds,
            "scoring_seconds": sum(acc.seconds for acc in self.accumulators),
            "scoring_threads": self.workers,
            "max_dt_s": options.max_dt_s, "min_depth": options.min_depth,
            "max_depth": options.max_depth,
            "matching": stats.to_dict(),
            "matching_summary": stats.summary(self.matcher.anchor),
            "bad_frames": self.scores.bad_frames, "bad_frame_reasons": self.scores.bad_reasons,
            "resize_note": RESIZE_NOTE,
            "depth": self.scores.depth_means(),
            "depth_ranges": self._range_rows() if frames else [],
            "semantic": self._semantic() if frames else {},
            "notes": list(self.notes),
        }
        if self.scores.bad_frames:
            result["notes"].append(f"{self.scores.bad_frames} frames skipped as malformed: "
                                   f"{self.scores.bad_reasons}")
        return result

    def _range_rows(self) -> list[dict]:
        table = merge_range_tables(acc.ranges.compute() for acc in self.accumulators)
        return [{"range": label, **row} for label, row in table.items()]

    def _semantic(self) -> dict:
        from synergy_ros.metrics import SemanticConfusion

        if self.accumulators[0].confusion is None:
            return {}
        confusion = SemanticConfusion(len(self.class_names))
        confusion.matrix = sum(acc.confusion.matrix for acc in self.accumulators)
        scores = confusion.compute()
        semantic = {key: float(scores[key]) for key in ("pixel_acc", "mean_acc", "miou")
                    if key in scores}
        semantic["per_class_iou"] = dict(zip(self.class_names, scores["class_iou"]))
        semantic["classes_present"] = scores["classes_present"]
        return semantic

    def write_outputs(self) -> dict[str, Path]:
        """Write the requested CSV, plots, JSON and markdown; returns what was written."""
        options = self.options
        written: dict[str, Path] = {}
        if self.csv is not None:
            written["csv"] = self.csv.close()
        plots: dict[str, Path] = self._write_plots() if options.plots_dir else {}
        written.update(plots)
        result = self.result
        if options.json_path:
            atomic_write_text(options.json_path,
                              json.dumps(json_safe(result), indent=2, allow_nan=False) + "\n")
            written["json"] = options.json_path
        if options.markdown_path:
            base = Path(options.markdown_path).parent
            images = [(f"frame {index}", _relative(Path(options.plots_dir) / name, base))
                      for index, name in sorted(self._samples)]
            images += [(name.split(":", 1)[1].replace("_", " "), _relative(path, base))
                       for name, path in plots.items()]
            atomic_write_text(options.markdown_path, report.result_markdown(result, images))
            written["markdown"] = options.markdown_path
        if options.output_bag and self._writer is not None:
            written["output_bag"] = options.output_bag
        return written

    def _write_plots(self) -> dict[str, Path]:
        """Error-over-time and error-vs-range plots (matplotlib), or a note why not."""
        if not report.matplotlib_available():
            self.notes.append("matplotlib is not installed: error plots skipped "
                              "(pip install matplotlib); the PNG frames are written")
            return {}
        if not self.scores.depth_frames:
            return {}
        bins = DepthErrorBins(self.options.max_depth)
        for acc in self.accumulators:
            bins.add(acc.bins)
        abs_rel, rmse = bins.means()
        paths = report.write_plots(Path(self.options.plots_dir), self.scores.times_s,
                                   {"abs_rel": self.scores.abs_rel, "rmse (m)": self.scores.rmse},
                                   bins.edges, abs_rel, rmse)
        return {f"plot:{path.stem}": path for path in paths}


def json_safe(value):
    """Copy ``value`` with NaN / inf floats replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _relative(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return str(Path(path).resolve())


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------
def _message_count(bag: Path, topic: str) -> int | None:
    """Messages on ``topic`` according to the bag's index (None when it cannot tell)."""
    from synergy_ros import bagio

    try:
        return bagio.bag_message_counts(bag).get(topic) or None
    except SynergyError:
        return None


def check_bag(options: EvaluateOptions) -> dict[str, str]:
    """Check the bag exists and holds the requested topics with usable types.

    Returns topic -> type. Raises SynergyError naming the problem (and listing the bag's
    topics when one is missing or has the wrong type).
    """
    from synergy_ros import bagio

    if options.model and options.pred_topic:
        raise SynergyError("give either --model (with --image-topic) to run a model, or "
                           "--pred-topic to score recorded predictions, not both")
    if not options.model and not options.pred_topic:
        raise SynergyError("nothing to score: give --model M --image-topic T (model mode) or "
                           "--pred-topic T (prediction mode)")
    if options.model and not options.image_topic:
        raise SynergyError("model mode needs --image-topic (the camera images to run on)")
    if options.pred_semantic_topic and options.model:
        raise SynergyError("--pred-semantic-topic belongs to prediction mode; in model mode "
                           "the model predicts the labels")
    if options.output_bag and not options.model:
        raise SynergyError("--output-bag writes a model's predictions: it needs --model "
                           "(in prediction mode the predictions are already in the bag)")
    if options.max_dt_s < 0 or not options.ranges or min(options.ranges) <= 0:
        raise SynergyError("--max-dt must be >= 0 s and --ranges positive metres, e.g. 4,6,8")
    if not 0 < options.min_depth < options.max_depth:
        raise SynergyError(f"need 0 < --min-depth < --max-depth, got {options.min_depth} and "
                           f"{options.max_depth}")
    if not Path(options.bag).exists():
        raise SynergyError(f"bag not found: {options.bag} (give the rosbag2 folder holding "
                           "metadata.yaml, or its .mcap / .db3 file)")
    topic_types = bagio.bag_topics(options.bag)  # SynergyError for a bag it cannot open
    wanted = [
        ("--gt-topic", options.gt_topic, (IMAGE, CLOUD)),
        ("--image-topic", options.image_topic, (IMAGE, COMPRESSED)),
        ("--pred-topic", options.pred_topic, (IMAGE,)),
        ("--pred-semantic-topic", options.pred_semantic_topic, (IMAGE,)),
        ("--semantic-gt-topic", options.semantic_gt_topic, (IMAGE,)),
        ("--camera-info-topic", options.camera_info_topic, (CAMERA_INFO,)),
    ]
    for flag, topic, types in wanted:
        if not topic:
            continue
        if topic not in topic_types:
            raise SynergyError(f"{flag} {topic} is not in {options.bag}; its topics are: "
                               f"{bagio.topic_listing(topic_types)}")
        if topic_types[topic] not in types:
            raise SynergyError(f"{flag} {topic} has type {topic_types[topic]}, expected "
                               f"{' or '.join(types)}; the bag's topics are: "
                               f"{bagio.topic_listing(topic_types)}")
    if topic_types[options.gt_topic] == CLOUD and not options.camera_info_topic:
        raise SynergyError(f"--gt-topic {options.gt_topic} is a PointCloud2: give "
                           "--camera-info-topic so it can be projected into the image")
    return topic_types


def evaluate(options: EvaluateOptions) -> tuple[dict, dict[str, Path]]:
    """Run a whole evaluation: check, stream, write outputs. Returns (result, written)."""
    evaluator = Evaluator(options)
    evaluator.run()
    written = evaluator.write_outputs()
    return evaluator.result, written
