"""`synergy evaluate`: score depth (and semantic labels) against ground truth in a rosbag2.

Two modes over one streaming loop:

- **model mode** (``model`` set): every camera image (``image_topic``, Image or
  CompressedImage) goes through :func:`synergy_ros.runtime.load_predictor`'s Predictor;
- **prediction mode** (``pred_topic`` set): depth images already in the bag (e.g. the node's
  ``/synergy/depth`` recorded on the robot) are scored, optionally with their semantic masks
  (``pred_semantic_topic``).

Frames are paired with ground truth by ``header.stamp``
(:class:`synergy_ros.bags.matching.StampMatcher`;
exact, or nearest within ``max_dt_s``, in any stamp order, between messages recorded within
``match_window_s`` seconds of each other); whatever does not pair is counted and reported. Ground
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

import collections
import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from synergy_ros.bags import bagio
from synergy_ros.bags.matching import DEFAULT_WINDOW_NS, MatchedFrame, StampMatcher
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.ground_plane import (ScaleConfig, ScaleEstimator, ScaleState,
                                           ground_normal)
from synergy_ros.core.labels import get_label_set
from synergy_ros.core.obstacles import resolve_class_roles
from synergy_ros.evaluation.metrics import depth_metrics, median_scale
from synergy_ros.evaluation.scoring import (FrameScores, ScoringAccumulator, merge_range_tables,
                                            merged_semantic)
from synergy_ros.evaluation.streaming import OrderedPool, ReadError, default_workers, prefetch
from synergy_ros.evaluation.writers import ALIGNED_CSV_KEYS, EvaluationWriters
from synergy_ros.ros.conversions import (camera_info_to_intrinsics, compressed_to_rgb, image_to_rgb,
                                         stamp_ns)
from synergy_ros.ros.decoding import (depth_from_cloud, depth_from_image, labels_from_image,
                                      resize_to)
from synergy_ros.runtime import load_predictor

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CLOUD = "sensor_msgs/msg/PointCloud2"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
INDOOR_RANGES = (4.0, 6.0, 8.0)
OUTDOOR_RANGES = (20.0, 40.0, 80.0)
RESIZE_NOTE = ("predictions of another size are resized to the ground truth's size "
               "(bilinear for depth, nearest neighbour for labels)")
#: ``--align`` choices: none, or per-image median scaling (median(GT) / median(prediction)).
ALIGN_MODES = ("none", "median")
#: ``--scale-correction`` choices: off, or the ground-plane scale (needs --camera-height).
SCALE_CORRECTIONS = ("off", "ground_plane")


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
    match_window_s: float = DEFAULT_WINDOW_NS / 1e9
    workers: int = 0
    progress: bool = True
    align: str = "none"
    scale_correction: str = "off"
    camera_height: float | None = None
    camera_pitch: float = 0.0
    ground_classes: tuple[str, ...] | None = None

    @property
    def mode(self) -> str:
        """``model`` or ``prediction``."""
        return "model" if self.model else "prediction"

    @property
    def alignments(self) -> tuple[str, ...]:
        """The aligned variants scored beside the raw prediction (``median``, ``ground_plane``)."""
        return tuple(name for name, on in (("median", self.align == "median"),
                                           ("ground_plane", self.scale_correction
                                            == "ground_plane")) if on)


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------
def _decoded(messages: Iterable[Any]) -> Iterator[tuple[str, int, Any]]:
    """(topic, receive time ns, rclpy message) per bagio.BagMessage; SynergyError for the
    message if it is undecodable."""
    for message in messages:
        try:
            yield message.topic, message.log_time_ns, message.message
        except SynergyError as exc:
            yield message.topic, message.log_time_ns, exc


@dataclasses.dataclass
class _Job:
    """One matched frame on its way to a scoring thread (model outputs in metres / ids)."""

    index: int
    frame: MatchedFrame
    camera_info: Any = None
    rgb: np.ndarray | None = None
    prediction: Any = None  # model mode: the runtime Prediction (depth m, labels)
    scale_state: ScaleState | None = None  # --scale-correction ground_plane: after this frame


# ---------------------------------------------------------------------------------------------
# The evaluator
# ---------------------------------------------------------------------------------------------
class Evaluator:
    """Streams one bag through matching, prediction (model mode) and scoring.

    Constructing it checks the bag, the topics and the model; then call :meth:`run` and
    :meth:`write_outputs`. ``result`` is the JSON-ready dict of everything measured. The
    scoring accumulators live in :mod:`synergy_ros.evaluation.scoring`, the output files in
    :mod:`synergy_ros.evaluation.writers`; this class is the loop that feeds them.
    """

    def __init__(self, options: EvaluateOptions) -> None:
        """Check the options and the bag (raises SynergyError naming the problem)."""
        self.options = options
        self.topic_types = check_bag(options)
        self.predictor = None
        self.class_names: list[str] | None = None
        self.palette: list | None = None
        self._camera_info = None
        self._first_stamp_ns: int | None = None
        self.scores = FrameScores()
        self.messages_read = 0
        self.status = "complete"
        self.notes: list[str] = []
        self.seconds = 0.0
        self.predict_seconds = 0.0  # main thread, in Predictor.predict
        self.workers = options.workers or default_workers()
        self._setup_labels()
        self._setup_metrics()
        self.scale_estimator = self._scale_estimator()
        self.scale_statuses: collections.Counter = collections.Counter()
        self.applied_scales: list[float] = []
        anchor = "image" if options.model else "pred"
        optional = [name for name, topic in (("sem_gt", options.semantic_gt_topic),
                                             ("pred_sem", options.pred_semantic_topic)) if topic]
        self.matcher = StampMatcher(anchor, required=["gt"], optional=optional,
                                    max_dt_ns=int(round(options.max_dt_s * 1e9)),
                                    window_ns=int(round(options.match_window_s * 1e9)))
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
        self.writers = EvaluationWriters(options, self.expected_frames, self.notes)
        self.writers.palette = self.palette

    # -- setup ------------------------------------------------------------------------------
    def _setup_labels(self) -> None:
        options = self.options
        if options.model:
            self.predictor = load_predictor(options.model, backend=options.backend,
                                            device=options.device,
                                            precision=options.precision,
                                            num_threads=options.num_threads,
                                            engine_cache_dir=options.engine_cache_dir)
            self.class_names = list(self.predictor.meta.class_names)
            self.palette = list(self.predictor.meta.palette)
        elif options.label_set:
            label_set = get_label_set(options.label_set)
            self.class_names = list(label_set.class_names)
            self.palette = list(label_set.palette)
        elif options.num_classes:
            self.class_names = [f"class_{i}" for i in range(options.num_classes)]
            base = list(get_label_set("nyu40").palette)
            self.palette = [base[i % len(base)] for i in range(options.num_classes)]
        wants_semantic = bool(options.semantic_gt_topic
                              and (options.model or options.pred_semantic_topic))
        if wants_semantic and not self.class_names:
            raise SynergyError("semantic scoring needs the class list: pass --label-set "
                               "(synthetic, nyu40, cityscapes19, cityscapes21) or "
                               "--num-classes N")

    def _scale_estimator(self) -> ScaleEstimator | None:
        """The ground-plane scale estimator of ``--scale-correction ground_plane``, or None."""
        options = self.options
        if options.scale_correction != "ground_plane":
            return None
        roles = resolve_class_roles(self.class_names, options.ground_classes, ignored=())
        try:
            config = ScaleConfig(camera_height=float(options.camera_height),
                                 expected_normal=ground_normal(float(options.camera_pitch)))
        except ValueError as exc:
            raise SynergyError(f"--camera-height: {exc}") from None
        return ScaleEstimator(config, roles)

    def _setup_metrics(self) -> None:
        num_classes = (len(self.class_names) if self.options.semantic_gt_topic
                       and self.class_names else None)
        options = self.options
        self.accumulators = [ScoringAccumulator(options.ranges, options.min_depth,
                                                options.max_depth, num_classes,
                                                with_bins=bool(options.plots_dir))
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

        options = self.options
        topics = list(self.stream_of)
        camera_info_topic = options.camera_info_topic
        if camera_info_topic:
            topics.append(camera_info_topic)
        if options.output_bag:
            self.writers.open_output_bag(self.palette, len(self.class_names),
                                         self.class_names, options.ground_classes)
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
            messages = _decoded(bagio.iter_messages(options.bag, topics))
            for topic, log_ns, msg in prefetch(messages):
                self.messages_read += 1
                if isinstance(msg, SynergyError):  # one undecodable message: skip it
                    self.scores.add_bad(f"undecodable {topic} message")
                    continue
                if topic == camera_info_topic:
                    self._camera_info = msg
                    continue
                submit(self.matcher.push(self.stream_of[topic], stamp_ns(msg), msg, log_ns))
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
                self.writers.close_bag()
        return self.result

    def _prepare_job(self, frame: MatchedFrame, index: int) -> "_Job | None":
        """Main-thread part of a frame: decode the image and predict (model mode)."""
        job = _Job(index, frame, self._camera_info)
        if not self.options.model:
            return job

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
        if self.scale_estimator is not None:
            job.scale_state = self._update_scale(job)
        return job

    def _update_scale(self, job: "_Job") -> ScaleState:
        """Frame-order step of the ground-plane scale (main thread, after the prediction)."""
        estimator = self.scale_estimator
        if job.camera_info is None:
            self.scale_statuses["no_camera_info"] += 1
            state = estimator.state
        else:
            depth = job.prediction.depth
            height, width = depth.shape
            intrinsics = camera_info_to_intrinsics(job.camera_info).scaled(width, height)
            state = estimator.update(depth, job.prediction.labels, intrinsics,
                                     stamp_s=job.frame.stamp_ns / 1e9)
            self.scale_statuses[state.status] += 1
        self.applied_scales.append(state.scale)
        return state

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

    def _score_frame(self, job: "_Job", acc: ScoringAccumulator) -> dict:
        options = self.options
        frame = job.frame
        gt = self._decode_gt(frame.items["gt"], job.camera_info)
        messages = {}
        if options.model:
            pred_depth, pred_labels = job.prediction.depth, job.prediction.labels
            if self.writers.writes_bag:
                prediction = job.prediction
                if job.scale_state is not None and job.scale_state.confident:
                    # the depth the node publishes with scale_correction ground_plane
                    prediction = dataclasses.replace(
                        prediction, depth=prediction.depth * np.float32(job.scale_state.scale))
                messages = self.writers.prediction_messages(
                    prediction, job.rgb, frame.items["image"].header, job.camera_info)
        else:
            pred_depth = depth_from_image(frame.items["pred"])
            pred_labels = (labels_from_image(frame.items["pred_sem"])
                           if "pred_sem" in frame.items else None)
        depth = resize_to(np.asarray(pred_depth, dtype=np.float32), gt.shape, nearest=False)
        metrics, coverage = acc.score_depth(depth, gt)
        row = {"frame": job.index, "stamp_ns": frame.stamp_ns, "stamp_s": frame.stamp_ns / 1e9,
               "gt_dt_ms": frame.dt_ns("gt") / 1e6, "coverage": coverage, **metrics}
        if options.alignments:
            row.update(self._aligned_scores(job, depth, gt))
        labels_gt = labels = None
        if acc.confusion is not None and "sem_gt" in frame.items and pred_labels is not None:
            labels_gt = labels_from_image(frame.items["sem_gt"])
            labels = resize_to(np.asarray(pred_labels), labels_gt.shape, nearest=True)
            row["pixel_acc"] = acc.score_labels(labels, labels_gt)
        self.writers.sample(job.index, job.rgb, depth, gt, labels, labels_gt)
        return {"row": row, "messages": messages, "stamp_ns": frame.stamp_ns}

    def _aligned_scores(self, job: "_Job", depth: np.ndarray, gt: np.ndarray) -> dict:
        """This frame's metrics after each requested alignment, and its CSV columns.

        ``depth`` and ``gt`` (H, W) metres at the ground truth's size. The same pixels as the
        raw metrics (GT in range, prediction valid); the raw prediction times the median
        ratio of this image, or times the ground-plane scale the estimator held after it.
        """
        options = self.options
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(depth) & (depth > 0)
        scales = {}
        if "median" in options.alignments:
            scales["median"] = median_scale(depth, gt, options.min_depth, options.max_depth,
                                            valid)
        if job.scale_state is not None:
            scales["ground_plane"] = job.scale_state.scale
        variants, columns = {}, {}
        for name, scale in scales.items():
            if math.isfinite(scale):
                variants[name] = depth_metrics(depth * np.float32(scale), gt, options.min_depth,
                                               options.max_depth, mask=valid)
            else:
                variants[name] = dict.fromkeys(ALIGNED_CSV_KEYS, math.nan)
            columns[f"scale_{name}"] = scale
            columns.update({f"{key}_{name}": variants[name][key] for key in ALIGNED_CSV_KEYS})
        if job.scale_state is not None:
            columns["ground_plane_status"] = job.scale_state.status
        return {"aligned": variants, **columns}

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
        if "aligned" in row:
            self.scores.add_aligned(row["aligned"])
        self.writers.write_frame(row, result["messages"], result["stamp_ns"])

    def _decode_gt(self, msg, camera_info) -> np.ndarray:
        if self.topic_types[self.options.gt_topic] == CLOUD:
            if camera_info is None:
                raise ValueError("no camera_info yet to project the ground-truth cloud")

            return depth_from_cloud(msg, camera_info_to_intrinsics(camera_info))
        return depth_from_image(msg)

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
            "depth_ranges": ([{"range": label, **row} for label, row in merge_range_tables(
                acc.ranges.compute() for acc in self.accumulators).items()] if frames else []),
            "semantic": merged_semantic(self.accumulators, self.class_names) if frames else {},
            "notes": list(self.notes),
        }
        if options.alignments:
            result["depth_alignment"] = {"raw": self.scores.depth_means(),
                                         **self.scores.aligned_means()}
        if self.scale_estimator is not None:
            result["ground_plane"] = self._ground_plane_summary()
        if self.scores.bad_frames:
            result["notes"].append(f"{self.scores.bad_frames} frames skipped as malformed: "
                                   f"{self.scores.bad_reasons}")
        return result

    def _ground_plane_summary(self) -> dict:
        """What the ground-plane scale did over the run (JSON-ready)."""
        config = self.scale_estimator.config
        scales = np.asarray(self.applied_scales, dtype=np.float64)
        state = self.scale_estimator.state
        return {"camera_height": config.camera_height,
                "camera_pitch_deg": float(self.options.camera_pitch),
                "expected_normal": list(config.expected_normal),
                "ground_classes": list(self.scale_estimator.roles.ground),
                "scale_bounds": [config.min_scale, config.max_scale],
                "max_tilt_deg": config.max_tilt_deg,
                "smoothing_frames": config.smoothing_frames,
                "frames": int(scales.size),
                "frames_accepted": self.scale_statuses["ok"] + self.scale_statuses["relocked"],
                "status_counts": dict(self.scale_statuses),
                "scale_final": state.scale, "confident": state.confident,
                "scale_mean": float(scales.mean()) if scales.size else math.nan,
                "scale_min": float(scales.min()) if scales.size else math.nan,
                "scale_max": float(scales.max()) if scales.size else math.nan,
                "last_state": state.to_dict()}

    def write_outputs(self) -> dict[str, Path]:
        """Write the requested CSV, plots, JSON and markdown; returns what was written."""
        return self.writers.finish(lambda: self.result, self.scores, self.accumulators)


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------
def _message_count(bag: Path, topic: str) -> int | None:
    """Messages on ``topic`` according to the bag's index (None when it cannot tell)."""

    try:
        return bagio.bag_message_counts(bag).get(topic) or None
    except SynergyError:
        return None


def check_bag(options: EvaluateOptions) -> dict[str, str]:
    """Check the bag exists and holds the requested topics with usable types.

    Returns topic -> type. Raises SynergyError naming the problem (and listing the bag's
    topics when one is missing or has the wrong type).
    """

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
    if options.align not in ALIGN_MODES:
        raise SynergyError(f"--align must be one of {', '.join(ALIGN_MODES)}, got "
                           f"{options.align!r}")
    if options.scale_correction not in SCALE_CORRECTIONS:
        raise SynergyError(f"--scale-correction must be one of {', '.join(SCALE_CORRECTIONS)}, "
                           f"got {options.scale_correction!r}")
    if options.scale_correction == "ground_plane":
        if not options.model:
            raise SynergyError("--scale-correction ground_plane runs in model mode (it needs "
                               "the model's ground labels): give --model and --image-topic")
        if options.camera_height is None:
            raise SynergyError("--scale-correction ground_plane needs --camera-height H (metres "
                               "of the camera's optical centre above the ground)")
        if not options.camera_info_topic:
            raise SynergyError("--scale-correction ground_plane needs --camera-info-topic (the "
                               "intrinsics that back-project the ground pixels)")
        if not -89.0 <= options.camera_pitch <= 89.0:
            raise SynergyError(f"--camera-pitch must be within -89..89 degrees (down from "
                               f"level), got {options.camera_pitch:g}")
    elif (options.camera_height is not None or options.ground_classes is not None
          or options.camera_pitch):
        raise SynergyError("--camera-height, --camera-pitch and --ground-classes belong to "
                           "--scale-correction ground_plane; add it, or drop them")
    if options.max_dt_s < 0 or not options.ranges or min(options.ranges) <= 0:
        raise SynergyError("--max-dt must be >= 0 s and --ranges positive metres, e.g. 4,6,8")
    if not options.match_window_s > 0:
        raise SynergyError(f"--match-window must be > 0 s (seconds of recording within which "
                           f"partners are paired, default {DEFAULT_WINDOW_NS / 1e9:g}), got "
                           f"{options.match_window_s}")
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
