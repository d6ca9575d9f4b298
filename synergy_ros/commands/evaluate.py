"""`synergy evaluate`: depth / semantic metrics of a model or of recorded predictions on a bag."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "score depth and semantics against ground truth in a rosbag2 (model or prediction mode)"

EPILOG = """examples:
  model mode (run a model on the bag's images):
    synergy evaluate --bag run.mcap --image-topic /camera/image_raw \\
        --gt-topic /camera/depth_gt --semantic-gt-topic /camera/semantic_gt \\
        --model models/synergy_demo_r18.pt --json metrics.json --plots plots/
  raw vs median-aligned vs ground-plane scale, side by side (camera 1.2 m above the floor):
    synergy evaluate --bag run.mcap --image-topic /camera/image_raw \\
        --gt-topic /camera/depth_gt --camera-info-topic /camera/camera_info \\
        --model models/synergy_demo_r18.pt --align median \\
        --scale-correction ground_plane --camera-height 1.2
  prediction mode (score depth already recorded, e.g. the node's output):
    synergy evaluate --bag runs/demo/bag --pred-topic /synergy/depth \\
        --pred-semantic-topic /synergy/semantic --label-set synthetic \\
        --gt-topic /camera/depth_gt --semantic-gt-topic /camera/semantic_gt
"""


def _ranges(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ranges wants metres like 4,6,8, got {text!r}")
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"--ranges wants positive metres like 4,6,8, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"want class names like floor,floor mat, got {text!r}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `synergy evaluate` flags."""
    from synergy_ros.bags.matching import DEFAULT_WINDOW_NS
    from synergy_ros.runtime.base import BACKENDS, PRECISIONS  # no torch: names only

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    io = parser.add_argument_group("bag and topics")
    io.add_argument("--bag", required=True, type=Path,
                    help="rosbag2 folder (metadata.yaml), .mcap / .db3 file, or ROS 1 .bag")
    io.add_argument("--gt-topic", required=True,
                    help="depth ground truth: Image 32FC1 (m) / 16UC1 (mm), or PointCloud2 "
                         "in the camera optical frame (needs --camera-info-topic)")
    io.add_argument("--semantic-gt-topic", help="semantic ground truth: Image mono8/mono16 "
                                                "class ids (255 = ignore)")
    io.add_argument("--image-topic", help="model mode: camera Image or CompressedImage")
    io.add_argument("--pred-topic", help="prediction mode: recorded depth Image to score")
    io.add_argument("--pred-semantic-topic",
                    help="prediction mode: recorded class-id Image to score")
    io.add_argument("--camera-info-topic",
                    help="CameraInfo (projects PointCloud2 ground truth; clouds in --output-bag)")
    io.add_argument("--max-dt", type=float, default=0.0, metavar="S",
                    help="match stamps within S seconds (default 0: exact header.stamp)")
    io.add_argument("--match-window", type=float, default=DEFAULT_WINDOW_NS / 1e9, metavar="S",
                    help="pair messages the bag recorded at most S seconds apart, whatever "
                         "their stamps (default %(default)g; memory holds about 2 S of the topics' "
                         "messages, so lower it for large images at high rates, raise it "
                         "when the summary reports partners outside the window)")
    model = parser.add_argument_group("model mode")
    model.add_argument("--model", help=".pt, .onnx or .engine model file")
    model.add_argument("--backend", default="auto",
                       choices=("auto",) + BACKENDS,
                       help="inference backend (default auto: TensorRT on an NVIDIA GPU with "
                            "TensorRT, else onnxruntime, else torch)")
    model.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    model.add_argument("--precision", default="fp32", choices=PRECISIONS,
                       help="inference precision (default fp32; fp16: torch on CUDA, an fp16 "
                            "ONNX export or TensorRT FP16; int8: TensorRT only)")
    model.add_argument("--threads", type=int, default=None,
                       help="CPU threads for inference (default: the backend's, usually every "
                            "core). CPU-only: cores - 1 leaves a core for scoring, which then "
                            "overlaps inference instead of slowing it")
    model.add_argument("--engine-cache-dir", type=Path,
                       help="where ONNX exports / TensorRT engines are cached (default: beside "
                            "the model)")
    scoring = parser.add_argument_group("scoring")
    scoring.add_argument("--ranges", type=_ranges, default=None,
                         help="depth-range table upper bounds in metres (default 4,6,8; "
                              "--outdoor: 20,40,80); an 'all' row is always added")
    scoring.add_argument("--outdoor", action="store_true",
                         help="outdoor defaults: ranges 20,40,80 and --max-depth 80")
    scoring.add_argument("--min-depth", type=float, default=1e-3, help="metres (default 0.001)")
    scoring.add_argument("--max-depth", type=float, default=None,
                         help="metres; GT beyond is ignored (default 10, outdoor 80)")
    scoring.add_argument("--label-set", help="class names/palette for prediction mode: "
                                             "synthetic, nyu40, cityscapes19, cityscapes21")
    scoring.add_argument("--num-classes", type=int, help="prediction mode without a label set")
    scale = parser.add_argument_group("scale alignment (scored beside the raw prediction)")
    scale.add_argument("--align", choices=("none", "median"), default="none",
                       help="median: also score each image scaled by median(GT) / "
                            "median(prediction), the protocol for scale-ambiguous models")
    scale.add_argument("--scale-correction", choices=("off", "ground_plane"), default="off",
                       help="model mode, ground_plane: also score the depth scaled by "
                            "camera_height / (camera-to-plane distance of the predicted ground "
                            "pixels), smoothed over frames as the node would; needs "
                            "--camera-height and --camera-info-topic")
    scale.add_argument("--camera-height", type=float, metavar="M",
                       help="height of the camera's optical centre above the ground (metres)")
    scale.add_argument("--camera-pitch", type=float, default=0.0, metavar="DEG",
                       help="how far the camera looks down from level, degrees (the expected "
                            "ground normal of the plane fit; default 0)")
    scale.add_argument("--ground-classes", type=_names, metavar="A,B",
                       help="ground class names of the model's label set (default per label "
                            "set: synthetic floor; nyu40 floor, floor mat; cityscapes road, "
                            "sidewalk, terrain)")
    out = parser.add_argument_group("outputs")
    out.add_argument("--json", type=Path, metavar="OUT", help="write all results as JSON")
    out.add_argument("--csv", type=Path, metavar="OUT", help="write per-frame metrics as CSV")
    out.add_argument("--markdown", type=Path, metavar="OUT",
                     help="also write the markdown report (with images from --plots) here")
    out.add_argument("--plots", type=Path, metavar="DIR",
                     help="error plots (matplotlib, optional) and colourised PNG frames")
    out.add_argument("--samples", type=int, default=3, help="PNG frames to write (default 3)")
    out.add_argument("--output-bag", type=Path, metavar="DIR",
                     help="model mode: write predictions (depth, semantic, semantic_color, "
                          "points, camera_info, depth/camera_info) as a new MCAP bag")
    out.add_argument("--output-prefix", default="/synergy",
                     help="topic prefix in --output-bag (default /synergy)")
    out.add_argument("--max-frames", type=int, help="stop after N frames")
    out.add_argument("--workers", type=int, default=0,
                     help="scoring threads (default: CPU cores - 1, at most 4, at least 1)")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")


def options_from_args(args: argparse.Namespace):
    """Build :class:`synergy_ros.evaluation.evaluator.EvaluateOptions` from parsed flags."""
    from synergy_ros.evaluation.evaluator import INDOOR_RANGES, OUTDOOR_RANGES, EvaluateOptions

    ranges = args.ranges or (OUTDOOR_RANGES if args.outdoor else INDOOR_RANGES)
    max_depth = args.max_depth or (80.0 if args.outdoor else 10.0)
    return EvaluateOptions(
        bag=args.bag, gt_topic=args.gt_topic, pred_topic=args.pred_topic,
        pred_semantic_topic=args.pred_semantic_topic, image_topic=args.image_topic,
        semantic_gt_topic=args.semantic_gt_topic, camera_info_topic=args.camera_info_topic,
        model=args.model, backend=args.backend, device=args.device, precision=args.precision,
        num_threads=args.threads, engine_cache_dir=args.engine_cache_dir,
        max_dt_s=args.max_dt, match_window_s=args.match_window, ranges=tuple(ranges),
        min_depth=args.min_depth, max_depth=max_depth, label_set=args.label_set,
        num_classes=args.num_classes, json_path=args.json, csv_path=args.csv,
        markdown_path=args.markdown, plots_dir=args.plots, output_bag=args.output_bag,
        output_prefix=args.output_prefix, num_samples=args.samples, max_frames=args.max_frames,
        workers=args.workers, progress=not args.no_progress, align=args.align,
        scale_correction=args.scale_correction, camera_height=args.camera_height,
        camera_pitch=args.camera_pitch, ground_classes=args.ground_classes)


def run(args: argparse.Namespace) -> int:
    """Evaluate; print the markdown report; exit 1 when the bag broke part-way (partial results
    are still written), 130 when interrupted."""
    from synergy_ros.evaluation import report
    from synergy_ros.evaluation.evaluator import evaluate

    result, written = evaluate(options_from_args(args))
    print(report.result_markdown(result))
    for name, path in written.items():
        print(f"wrote {name.replace('plot:', 'plot ')}: {path}", file=sys.stderr)
    if result["frames"] == 0 and result["status"] == "complete":
        print(f"synergy evaluate: error: no frame could be scored ({result['matching_summary']})"
              "; check the topics, and pass --max-dt S when prediction and ground-truth stamps "
              "differ slightly (--match-window S when they were recorded far apart)",
              file=sys.stderr)
        return 1
    if result["status"] == "complete":
        return 0
    print(f"synergy evaluate: partial result: {result['status']}", file=sys.stderr)
    return 130 if result["status"].startswith("interrupted") else 1
