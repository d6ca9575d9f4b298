"""What `synergy evaluate` writes: per-frame CSV, sample PNGs, plots, JSON, markdown, output bag.

:class:`EvaluationWriters` owns every output file of one evaluation. The scoring threads call
:meth:`~EvaluationWriters.sample` and :meth:`~EvaluationWriters.prediction_messages`; the
frame-order step calls :meth:`~EvaluationWriters.write_frame`; :meth:`~EvaluationWriters.finish`
writes the summary files once the run is over. Every file goes through ``core.atomic``
(the CSV and the bag are written to their final names only when complete).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from synergy_ros.bags.bagio import BagWriter
from synergy_ros.core.atomic import atomic_write_text
from synergy_ros.core.labels import colorize, palette_lut
from synergy_ros.evaluation import report
from synergy_ros.evaluation.scoring import FrameScores, ScoringAccumulator, merged_bins
from synergy_ros.ros.conversions import camera_info_to_intrinsics
from synergy_ros.ros.navigation import NavigationConfig, NavigationOutputs
from synergy_ros.ros.outputs import OUTPUT_TOPICS, prediction_messages

#: Columns of the per-frame CSV.
CSV_COLUMNS = ("frame", "stamp_s", "gt_dt_ms", "coverage") + report.DEPTH_KEYS + ("pixel_acc",)
#: Depth metrics kept per alignment in the per-frame CSV (``<key>_<alignment>``).
ALIGNED_CSV_KEYS = ("abs_rel", "rmse", "delta1")


def aligned_csv_columns(alignments: Sequence[str]) -> tuple[str, ...]:
    """Per-frame CSV columns of the ``--align`` / ``--scale-correction`` variants."""
    columns: tuple[str, ...] = ()
    for name in alignments:
        columns += (f"scale_{name}",) + tuple(f"{key}_{name}" for key in ALIGNED_CSV_KEYS)
    if "ground_plane" in alignments:
        columns += ("ground_plane_status",)
    return columns


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


class EvaluationWriters:
    """The output files of one evaluation (each optional, as the options ask).

    Args:
        options: the evaluation's ``EvaluateOptions`` (paths, ``max_depth``, ``num_samples``,
            ``output_prefix``).
        expected_frames: frames the run will score, if known (spreads the sample PNGs).
        notes: the evaluation's list of notes; writers append what the user should know.
    """

    def __init__(self, options: Any, expected_frames: int | None, notes: list[str]) -> None:
        self.options = options
        self.notes = notes
        columns = CSV_COLUMNS + aligned_csv_columns(options.alignments)
        self.csv = report.FrameCsv(options.csv_path, columns) if options.csv_path else None
        self.samples: list[tuple[int, str]] = []  # (frame index, PNG name)
        self.sample_every = 1
        if expected_frames and options.num_samples:  # spread the PNG frames over the bag
            self.sample_every = max(1, expected_frames // options.num_samples)
        self.palette: list | None = None
        self._bag: BagWriter | None = None
        self._bag_palette: np.ndarray | None = None  # class colours of --output-bag
        self._bag_navigation: NavigationOutputs | None = None  # obstacles / ground roles
        self._warned_no_camera_info = False

    # -- set-up --------------------------------------------------------------------------------
    def open_output_bag(self, palette: list, num_classes: int, class_names: Sequence[str] = (),
                        ground_classes: Sequence[str] | None = None) -> None:
        """Start the ``--output-bag`` (MCAP) with the model's class colours.

        With class names whose ground / ignored roles resolve (the label set's defaults, or
        ``ground_classes``), the bag also gets the node's ``obstacles`` and ``ground`` clouds;
        otherwise a note says why not.
        """
        self._bag_palette = palette_lut(palette, num_classes)
        self._bag_navigation = None
        if class_names:
            ground = tuple(ground_classes) if ground_classes else None
            navigation = NavigationOutputs(NavigationConfig(ground, None, None, False),
                                           class_names)
            if navigation.roles is None and ground:
                # given ground classes of a model outside the built-in label sets (or one of
                # their ignored classes): no ignored class, as the scale estimator does
                navigation = NavigationOutputs(NavigationConfig(ground, (), None, False),
                                               class_names)
            if navigation.roles is not None:
                self._bag_navigation = navigation
            else:
                self.notes.append("the output bag has no obstacles / ground clouds: "
                                  f"{navigation.unavailable}")
        self._bag = BagWriter(self.options.output_bag, storage="mcap").open()

    @property
    def writes_bag(self) -> bool:
        """True when an output bag is open."""
        return self._bag is not None

    # -- scoring threads -----------------------------------------------------------------------
    def sample(self, index: int, rgb, depth, gt, labels, labels_gt) -> None:
        """Write the colourised PNG of frame ``index`` if it is one of the samples.

        ``depth``/``gt`` (H, W) metres, ``labels``/``labels_gt`` (H, W) class ids or None,
        ``rgb`` (H, W, 3) uint8 or None (prediction mode has no camera image).
        """
        options = self.options
        if not options.plots_dir or index % self.sample_every:
            return
        if index // self.sample_every >= options.num_samples:
            return
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
        self.samples.append((index, name))  # list.append is atomic across threads

    def prediction_messages(self, prediction, rgb: np.ndarray, header, camera_info) -> dict:
        """The node's depth, semantic, semantic_color, camera_info (+ depth/camera_info),
        points, obstacles and ground messages for one frame, keyed by their
        ``--output-prefix`` topic (the clouds need camera_info; obstacles / ground also class
        roles, see :meth:`open_output_bag`)."""
        prefix = self.options.output_prefix.rstrip("/")
        camera = None
        if camera_info is not None:
            camera = camera_info_to_intrinsics(camera_info)
        elif not self._warned_no_camera_info:  # a repeat from a second thread is harmless
            self._warned_no_camera_info = True
            self.notes.append("no camera_info seen before the images: the output bag has no "
                              "points or camera_info (give --camera-info-topic)")
        wanted = [key for key in OUTPUT_TOPICS if key != "attention"]
        messages = prediction_messages(prediction, rgb, camera, header, self._bag_palette, wanted,
                                       navigation=self._bag_navigation)
        return {f"{prefix}/{OUTPUT_TOPICS[key]}": msg for key, msg in messages}

    # -- frame order ---------------------------------------------------------------------------
    def write_frame(self, row: dict, messages: dict, stamp_ns: int) -> None:
        """The frame's CSV row and output-bag messages (called in frame order)."""
        if self.csv is not None:
            self.csv.write(row)
        for topic, msg in messages.items():
            self._bag.write(topic, msg, stamp_ns)

    def close_bag(self) -> None:
        """Finish the output bag (also after an error or Ctrl-C)."""
        if self._bag is not None:
            self._bag.close()

    # -- summary ---------------------------------------------------------------------------------
    def finish(self, result_of, scores: FrameScores,
               accumulators: Sequence[ScoringAccumulator]) -> dict[str, Path]:
        """Write CSV, plots, JSON and markdown; returns what was written.

        ``result_of()`` returns the evaluation's result dict; it is called after the plots, so
        notes they add are in it.
        """
        options = self.options
        written: dict[str, Path] = {}
        if self.csv is not None:
            written["csv"] = self.csv.close()
        plots = self._write_plots(scores, accumulators) if options.plots_dir else {}
        written.update(plots)
        result = result_of()
        if options.json_path:
            atomic_write_text(options.json_path,
                              json.dumps(json_safe(result), indent=2, allow_nan=False) + "\n")
            written["json"] = options.json_path
        if options.markdown_path:
            base = Path(options.markdown_path).parent
            images = [(f"frame {index}", _relative(Path(options.plots_dir) / name, base))
                      for index, name in sorted(self.samples)]
            images += [(name.split(":", 1)[1].replace("_", " "), _relative(path, base))
                       for name, path in plots.items()]
            atomic_write_text(options.markdown_path, report.result_markdown(result, images))
            written["markdown"] = options.markdown_path
        if options.output_bag and self._bag is not None:
            written["output_bag"] = options.output_bag
        return written

    def _write_plots(self, scores: FrameScores,
                     accumulators: Sequence[ScoringAccumulator]) -> dict[str, Path]:
        """Error-over-time and error-vs-range plots (matplotlib), or a note why not.

        Frames are decided in completion order, which need not be stamp order (the matcher
        accepts any order), so the time series is sorted by time first.
        """
        if not report.matplotlib_available():
            self.notes.append("matplotlib is not installed: error plots skipped "
                              "(pip install matplotlib); the PNG frames are written")
            return {}
        if not scores.depth_frames:
            return {}
        abs_rel, rmse = merged_bins(accumulators, self.options.max_depth).means()
        order = np.argsort(np.asarray(scores.times_s), kind="stable")
        times = [scores.times_s[i] for i in order]
        series = {"abs_rel": [scores.abs_rel[i] for i in order],
                  "rmse (m)": [scores.rmse[i] for i in order]}
        paths = report.write_plots(Path(self.options.plots_dir), times, series,
                                   merged_bins(accumulators, self.options.max_depth).edges,
                                   abs_rel, rmse)
        return {f"plot:{path.stem}": path for path in paths}
