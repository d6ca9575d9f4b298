"""What the obstacle cloud and the ground-plane fit add to the node's per-frame output work.

Writes ``benchmarks/results/navigation_cpu.md`` and ``.json`` with the machine they ran on.

    .venv/bin/python benchmarks/bench_navigation.py                 # ~1 min
    .venv/bin/python benchmarks/bench_navigation.py --iters 20 --out /tmp/b

What is timed: the node's one output builder, ``synergy_ros.ros.outputs.prediction_messages``
(exactly what the node's worker runs after inference), plus rclpy's ``serialize_message`` of
every message it yields (the serialisation part of publishing), for a 320x240 camera image of a
synthetic room whose depth and labels stand for the prediction (real floor, walls and objects,
so the plane fit and the obstacle selection do their real work), at the demo model's output
size (128x96) and at the camera's (320x240). Cases, interleaved frame by frame (shuffled) so
machine load hits them alike, medians over ``--iters`` frames:

* ``base``: depth, depth/camera_info, camera_info, semantic, semantic_color, points (the
  default outputs);
* ``+obstacles``: base + the obstacle cloud;
* ``+scale``: base + ground-plane scale correction (plane fit every ``scale_fit_interval``
  = 5 frames, the node's default; depth scaled on every frame);
* ``+scale/1``: the same with the plane fitted on every frame (``scale_fit_interval: 1``);
* ``+obstacles+scale``: obstacles and scale (the issue's cost row);
* ``+obstacles+ground+scale``: also the ground cloud.

The builder and the serialisation are timed apart: serialising (and publishing) one more
message is transport, which the node's overhead figure (node - model - relay, where the relay
publishes the same messages) does not count, so the added *overhead* is the builder's added
time. The added time is reported against the base builder time and against the node's whole
per-frame overhead measured in ``benchmarks/results/node_cpu.md`` (node - model - relay).
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from synergy_ros.core.atomic import atomic_write_text  # noqa: E402 (needs ROOT on sys.path)
from synergy_ros.core.labels import get_label_set, palette_lut  # noqa: E402
from synergy_ros.core.machine import machine_info, machine_summary  # noqa: E402
from synergy_ros.data.synthetic import build_scene, render_scene  # noqa: E402
from synergy_ros.ros.navigation import NavigationConfig, NavigationOutputs  # noqa: E402
from synergy_ros.ros.conversions import MessageBuffers  # noqa: E402
from synergy_ros.ros.outputs import prediction_messages, resize_area  # noqa: E402
from synergy_ros.runtime.prediction import Prediction  # noqa: E402

BASE = ("depth", "depth_info", "camera_info", "semantic", "semantic_color", "points")
#: The node's default scale_fit_interval.
FIT_INTERVAL = 5
#: case -> (outputs beyond BASE, scale_fit_interval or None for no scale correction)
CASES = {"base": ((), None), "+obstacles": (("obstacles",), None),
         "+scale": ((), FIT_INTERVAL), "+scale/1": ((), 1),
         "+obstacles+scale": (("obstacles",), FIT_INTERVAL),
         "+obstacles+ground+scale": (("obstacles", "ground"), FIT_INTERVAL)}
SEED = 7
CAMERA = (320, 240)
OUTPUTS = ((128, 96), (320, 240))
#: The node's per-frame overhead at 320x240 camera, 128x96 outputs (node_cpu.md, demo model).
NODE_CPU_JSON = ROOT / "benchmarks" / "results" / "node_cpu.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=500, help="timed frames per case")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    return parser.parse_args(argv)


def navigation(fit_interval: int | None) -> NavigationOutputs:
    """Roles of the synthetic label set; with a ``fit_interval`` scale correction for the
    scene's true camera height, the plane fitted every ``fit_interval``-th frame."""
    settings = {"ground_classes": ["default"], "ignore_classes": ["default"],
                "scale_correction": "off" if fit_interval is None else "ground_plane",
                "scale_fit_interval": fit_interval or 1,
                "camera_height": build_scene(SEED).camera_height, "scale_smoothing": 10,
                "min_scale": 0.5, "max_scale": 2.0, "max_ground_tilt": 30.0,
                "publish_obstacles": True, "publish_ground": False}
    return NavigationOutputs(NavigationConfig.from_settings(settings),
                             get_label_set("synthetic").class_names)


def node_overhead_ms() -> float | None:
    """The node's per-frame overhead (ms) at 320x240 -> 128x96 from node_cpu.json, if any."""
    try:
        rows = json.loads(NODE_CPU_JSON.read_text())["cases"]
    except (OSError, ValueError, KeyError):
        return None
    for row in rows:
        if (row.get("model"), row.get("camera"), row.get("outputs")) == (
                "demo", "320x240", "128x96"):
            value = row.get("overhead_ms")
            return float(value) if value is not None and math.isfinite(value) else None
    return None


def run_size(output: tuple[int, int], iters: int) -> dict:
    """Median ms per case for one output size (interleaved)."""
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    camera = render_scene(SEED, height=CAMERA[1], width=CAMERA[0])
    truth = render_scene(SEED, height=output[1], width=output[0])
    depth = np.where(truth.depth > 0, truth.depth * np.float32(0.8), np.float32(np.nan))
    # as the node's predictor: the network-size camera image rides with the prediction (the
    # clouds' colours), and each case has its own message buffers (MessageBuffers)
    prediction = Prediction(depth.astype(np.float32), truth.labels,
                            rgb=resize_area(camera.rgb, output[0], output[1]))
    labels = get_label_set("synthetic")
    palette = palette_lut(labels.palette, len(labels.class_names))
    header = Header(frame_id="camera_optical_frame")
    navs = {name: navigation(interval) for name, (_, interval) in CASES.items()}
    pools = {name: MessageBuffers() for name in CASES}
    times = {name: [] for name in CASES}  # builder + serialisation
    build_times = {name: [] for name in CASES}  # builder alone
    counts = {}
    order = list(CASES)
    shuffle = np.random.default_rng(0)
    for i in range(iters + 3):  # 3 warm-up frames
        header.stamp.sec = i
        shuffle.shuffle(order)  # no case always runs after the same one (cache effects)
        for name in order:
            extra = CASES[name][0]
            start = time.perf_counter()
            messages = dict(prediction_messages(
                prediction, camera.rgb, camera.intrinsics, header, palette, BASE + extra,
                max_range=20.0, navigation=navs[name], buffers=pools[name]))
            built = time.perf_counter()
            # serialise every message; no loop variable keeps one alive afterwards
            collections.deque(map(serialize_message, messages.values()), maxlen=0)
            end = time.perf_counter()
            if i >= 3:
                times[name].append((end - start) * 1e3)
                build_times[name].append((built - start) * 1e3)
            if "obstacles" in messages:
                counts[name] = int(messages["obstacles"].width)
            del messages  # published and dropped, as in the node: its buffers are free again
    state = navs["+obstacles+scale"].scale_state
    return {"outputs": f"{output[0]}x{output[1]}", "camera": f"{CAMERA[0]}x{CAMERA[1]}",
            "median_ms": {name: float(np.median(v)) for name, v in times.items()},
            "build_median_ms": {name: float(np.median(v)) for name, v in build_times.items()},
            "build_mean_ms": {name: float(np.mean(v)) for name, v in build_times.items()},
            "p95_ms": {name: float(np.percentile(v, 95)) for name, v in times.items()},
            "min_ms": {name: float(np.min(v)) for name, v in times.items()},
            "window_ms": {name: window_median(v) for name, v in times.items()},
            "build_window_ms": {name: window_median(v) for name, v in build_times.items()},
            "obstacle_points": counts.get("+obstacles+scale"),
            "scale": state.scale, "scale_status": state.status, "inliers": state.inliers}


def window_median(values: list, window: int = FIT_INTERVAL) -> float:
    """Median over consecutive ``window``-frame windows of their mean (ms per frame).

    A plane fitted every n-th frame makes the per-frame times bimodal: a plain median would
    hide the fit, a plain mean would take in the shared machine's load spikes.
    """
    usable = len(values) // window * window
    return float(np.median(np.asarray(values[:usable]).reshape(-1, window).mean(axis=1)))


def to_markdown(result: dict) -> str:
    """The results file."""
    lines = ["# Obstacle cloud and ground-plane scale: cost per frame on CPU", "",
             f"Machine: {result['machine_summary']}; 1-min load average "
             f"{result['load_start']:.1f} at start, {result['load_end']:.1f} at end (shared "
             "machine).", "",
             "The node's output builder (`prediction_messages`) and then `serialize_message` of "
             f"each message it built, camera {CAMERA[0]}x{CAMERA[1]}, synthetic room (seed "
             f"{SEED}) as the prediction (depth x0.8, so the scale fit has work), cases "
             "interleaved frame by frame in a shuffled order over "
             f"{result['iters']} frames; ms per frame = median over {FIT_INTERVAL}-frame "
             "windows of their mean (the plane is fitted every "
             f"{FIT_INTERVAL}th frame in the `+scale` cases, the node's default "
             "`scale_fit_interval`, and every frame in `+scale/1`). Added = case - base. "
             "Serialising a further message is transport (the node's overhead figure "
             "subtracts a relay publishing the same messages), so the added **overhead** is "
             "the builder's.", ""]
    overhead = result["node_overhead_ms"]
    header = ("| outputs | case | builder (ms) | builder + serialise (ms) | added builder (ms)"
              " | added incl. serialise (ms) |")
    if overhead:
        header += " added builder / node overhead |"
    lines += [header, "|---" * (header.count("|") - 1) + "|"]
    for row in result["rows"]:
        build, total = row["build_window_ms"], row["window_ms"]
        for name in CASES:
            cells = [row["outputs"], name, f"{build[name]:.3f}", f"{total[name]:.3f}",
                     "" if name == "base" else f"{build[name] - build['base']:+.3f}",
                     "" if name == "base" else f"{total[name] - total['base']:+.3f}"]
            if overhead:
                cells.append("" if name == "base" or row["outputs"] != "128x96"
                             else f"{(build[name] - build['base']) / overhead:+.0%}")
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Obstacle points per frame: " + ", ".join(
        f"{row['outputs']}: {row['obstacle_points']}" for row in result["rows"]) + "; scale "
        "state after the run: " + ", ".join(
            f"{row['outputs']}: {row['scale']:.4f} ({row['scale_status']}, {row['inliers']} "
            "inliers)" for row in result["rows"]) + " (true 1/0.8 = 1.25).", ""]
    if overhead:
        lines += [f"Node overhead: {overhead:.1f} ms per frame (node - model - relay, demo "
                  "model, 320x240 -> 128x96, `benchmarks/results/node_cpu.md`); the issue's "
                  "target is obstacle cloud + plane fit <= 10 % of it.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run and write the result files."""
    args = parse_args(argv)
    load_start = os.getloadavg()[0]
    rows = [run_size(output, args.iters) for output in OUTPUTS]
    info = machine_info()
    result = {"machine": info, "machine_summary": machine_summary(info),
              "load_start": load_start, "load_end": os.getloadavg()[0], "iters": args.iters,
              "node_overhead_ms": node_overhead_ms(), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "navigation_cpu.json", json.dumps(result, indent=2) + "\n")
    text = to_markdown(result)
    atomic_write_text(args.out / "navigation_cpu.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
