"""Benchmark synergy_node's own cost on CPU: overhead per frame, overload latency, cloud build.

Writes ``benchmarks/results/node_cpu.md`` and ``.json`` with the machine they ran on.

    .venv/bin/python benchmarks/bench_node.py
    .venv/bin/python benchmarks/bench_node.py --frames 3 --overload-seconds 3 --out /tmp/b

What is measured (real node, real rclpy over loopback DDS, a real resnet18 synergy model with
untrained weights: speed does not depend on weight values; the model runs at the camera size):

* overhead = (image callback -> last output published) - model latency (``predict``), per
  frame, with a subscriber on every output (depth, depth/camera_info, semantic,
  semantic_color, points) and camera_info, one frame at a time (no queueing). Target: <= 10 %
  of the model latency.
* overload: camera at 30 Hz for ``--overload-seconds``; p95 end-to-end latency vs the model's
  p50 latency (target <= 2x, no queue growth), frames dropped.
* build_pointcloud2 for 640x480 with rgb + labels (target <= 10 ms), plus the image codecs.

Set ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID of your own.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from synergy_ros.core.sizes import size_arg  # noqa: E402 (needs ROOT on sys.path)

SIZES = ((320, 240), (640, 480))  # width x height
OUTPUT_TOPICS = ("depth", "depth/camera_info", "semantic", "semantic_color", "points")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="timed frames per size")
    parser.add_argument("--overload-seconds", type=float, default=10.0)
    parser.add_argument("--overload-size", type=size_arg, default=(320, 240),
                        help="WIDTHxHEIGHT at 30 Hz")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--cloud-iters", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    return parser.parse_args(argv)


def percentile(values, q: float) -> float:
    """q-th percentile (0-100) of a non-empty sequence."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def timed(fn, iters: int) -> dict:
    """p50/p95/min in ms of ``fn()`` over ``iters`` runs after 2 warm-ups."""
    for _ in range(2):
        fn()
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return {"p50_ms": percentile(samples, 50), "p95_ms": percentile(samples, 95),
            "min_ms": min(samples), "iters": iters}


def bench_micro(iters: int) -> dict:
    """Cloud build and image conversions at 640x480."""
    from synergy_ros.core.geometry import PinholeIntrinsics
    from synergy_ros.ros.conversions import array_to_image, image_to_rgb
    from synergy_ros.ros.pointcloud import build_pointcloud2

    rng = np.random.default_rng(0)
    depth = rng.uniform(0.3, 8.0, (480, 640)).astype(np.float32)
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    labels = rng.integers(0, 40, (480, 640)).astype(np.uint8)
    k = PinholeIntrinsics.from_fov(1.2, 640, 480)
    rgb_msg, bgr_msg = array_to_image(rgb, "rgb8"), array_to_image(rgb[:, :, ::-1], "bgr8")
    return {
        "build_pointcloud2_640x480_rgb_label": timed(
            lambda: build_pointcloud2(depth, rgb, labels, k), iters),
        "build_pointcloud2_640x480_decimation2": timed(
            lambda: build_pointcloud2(depth, rgb, labels, k, decimation=2), iters),
        "image_to_rgb_rgb8_640x480": timed(lambda: image_to_rgb(rgb_msg), iters),
        "image_to_rgb_bgr8_640x480": timed(lambda: np.ascontiguousarray(image_to_rgb(bgr_msg)),
                                           iters),
        "array_to_image_32FC1_640x480": timed(lambda: array_to_image(depth, "32FC1"), iters),
    }


def _model(tmp: Path, width: int, height: int) -> Path:
    from synergy_ros.ros.testing import make_model_file

    return make_model_file(tmp / f"r18_{width}x{height}.pt", num_classes=40,
                           input_size=(height, width))


def _start(harness, model_path: Path, threads: int):
    from rclpy.parameter import Parameter

    from synergy_ros.ros.node import SynergyNode

    overrides = {"model": str(model_path), "backend": "torch", "device": "cpu",
                 "num_threads": threads, "output_resolution": "model"}
    node = SynergyNode(context=harness.context, namespace=harness.namespace,
                       use_global_arguments=False,
                       parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    harness.add_node(node)
    return node


SUBSCRIBER_SCRIPT = """
import sys
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
rclpy.init()
node = rclpy.create_node("bench_subscribers", namespace=sys.argv[1])
qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
for topic, kind in (("depth", Image), ("depth/camera_info", CameraInfo), ("semantic", Image),
                    ("semantic_color", Image), ("points", PointCloud2)):
    node.create_subscription(kind, topic, lambda msg: None, qos)
try:
    rclpy.spin(node)
except (KeyboardInterrupt, ExternalShutdownException):
    pass
"""


class Subscribers:
    """Subscribers on every output: in this process (harness) or in another (like rviz)."""

    def __init__(self, harness, where: str) -> None:
        import subprocess

        self.process = None
        if where == "process":
            self.process = subprocess.Popen([sys.executable, "-c", SUBSCRIBER_SCRIPT,
                                             harness.namespace], env=dict(os.environ))
        else:
            from sensor_msgs.msg import CameraInfo, Image, PointCloud2

            types = {"depth": Image, "depth/camera_info": CameraInfo, "semantic": Image,
                     "semantic_color": Image, "points": PointCloud2}
            for topic in OUTPUT_TOPICS:
                harness.record(types[topic], topic)

    def close(self) -> None:
        """Stop the subscriber process."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


def _harness(tag: str):
    from synergy_ros.ros.testing import RosHarness

    namespace = f"/bench_node_{tag}_{os.getpid()}"
    harness = RosHarness(namespace)
    harness.namespace = namespace
    return harness


def bench_overhead(model_path: Path, width: int, height: int, frames: int,
                   threads: int, subscribers: str) -> dict:
    """One frame at a time: latency - model time, with every output subscribed."""
    from sensor_msgs.msg import CameraInfo, Image

    from synergy_ros.core.geometry import PinholeIntrinsics
    from synergy_ros.ros.conversions import intrinsics_to_camera_info
    from synergy_ros.ros.testing import camera_frame

    harness = _harness(f"{width}x{height}_{subscribers}")
    subs = Subscribers(harness, subscribers)
    try:
        node = _start(harness, model_path, threads)
        image_pub = harness.publisher(Image, "image")
        info_pub = harness.publisher(CameraInfo, "camera_info")
        k = PinholeIntrinsics.from_fov(1.2, width, height)
        rgb = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
        if not harness.wait_for(lambda: all(p.get_subscription_count() > 0
                                            for p in node._pubs.values()), 30.0):
            raise RuntimeError("the output subscribers did not appear")
        for i in range(frames + 2):  # 2 warm-up frames
            msg = camera_frame(rgb, 1_000 + i)
            info_pub.publish(intrinsics_to_camera_info(k, msg.header))
            before = node._output_rate.total
            image_pub.publish(msg)
            if not harness.wait_for(lambda: node._output_rate.total > before, 120.0):
                raise RuntimeError(f"no output for frame {i} at {width}x{height}")
            if i == 1:
                warm = len(node._latency.values())
        latency = node._latency.values()[warm:]
        model = node._inference.values()[warm:]
        overhead = [a - b for a, b in zip(latency, model)]
        return {"size": f"{width}x{height}", "subscribers": subscribers,
                "frames": len(latency),
                "model_p50_ms": percentile(model, 50),
                "latency_p50_ms": percentile(latency, 50),
                "overhead_p50_ms": percentile(overhead, 50),
                "overhead_p95_ms": percentile(overhead, 95),
                "overhead_pct_of_model": 100.0 * percentile(overhead, 50)
                / percentile(model, 50)}
    finally:
        subs.close()
        harness.close()


def bench_overload(model_path: Path, width: int, height: int, seconds: float,
                   threads: int) -> dict:
    """Camera at 30 Hz (reliable publisher) for ``seconds``: latency percentiles and drops."""
    from sensor_msgs.msg import Image

    from synergy_ros.ros.testing import camera_frame

    harness = _harness(f"overload_{width}x{height}")
    subs = Subscribers(harness, "process")
    try:
        node = _start(harness, model_path, threads)
        image_pub = harness.publisher(Image, "image")
        if not harness.wait_for(lambda: image_pub.get_subscription_count() > 0 and all(
                p.get_subscription_count() > 0 for p in node._pubs.values()), 30.0):
            raise RuntimeError("the node or the output subscribers did not appear")
        rgb = np.random.default_rng(2).integers(0, 256, (height, width, 3), dtype=np.uint8)
        msg = camera_frame(rgb, 0)
        start, sent = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1, sent
            image_pub.publish(msg)
            sent += 1
            time.sleep(max(0.0, start + sent / 30.0 - time.perf_counter()))
        harness.wait_for(node._worker.idle, 30.0)
        snap = node.snapshot()
        latency, model = node._latency.values(), node._inference.values()
        third = max(1, len(latency) // 3)
        return {"size": f"{width}x{height}", "rate_hz": 30, "seconds": seconds,
                "frames_sent": sent, "frames_received": snap.frames_received,
                "frames_processed": snap.frames_processed, "frames_dropped": snap.frames_dropped,
                "frames_skipped": snap.frames_skipped_no_subscribers,
                "model_p50_ms": percentile(model, 50), "model_p95_ms": percentile(model, 95),
                "latency_p50_ms": percentile(latency, 50),
                "latency_p95_ms": percentile(latency, 95),
                "p95_over_model_p50": percentile(latency, 95) / percentile(model, 50),
                "p95_over_model_p95": percentile(latency, 95) / percentile(model, 95),
                "latency_p50_first_third_ms": percentile(latency[:third], 50),
                "latency_p50_last_third_ms": percentile(latency[-third:], 50)}
    finally:
        subs.close()
        harness.close()


def to_markdown(result: dict) -> str:
    """The result as a markdown report."""
    load = result["load_average_1min"]
    lines = ["# synergy_node on CPU", "", f"Machine: {result['machine_summary']}; 1-min load "
             f"average {load['start']:.1f} at start, {load['end']:.1f} at end (shared machine: "
             "the model's tail latency varies with it)", "",
             f"Model: {result['model']}", "", "## Node overhead (one frame at a time)", "",
             "Subscribers on all five outputs, either in another process (as rviz or "
             "depth_image_proc would be) or in the node's own process (then receiving the "
             "multi-MB messages competes with the node for the GIL and the 2 CPUs).", "",
             "| camera = model size | subscribers | model p50 (ms) | end-to-end p50 (ms) | "
             "overhead p50 (ms) | overhead p95 (ms) | overhead / model | target |",
             "|---|---|---|---|---|---|---|---|"]
    for row in result["overhead"]:
        lines.append(f"| {row['size']} | {row['subscribers']} | {row['model_p50_ms']:.1f} | "
                     f"{row['latency_p50_ms']:.1f}"
                     f" | {row['overhead_p50_ms']:.1f} | {row['overhead_p95_ms']:.1f} | "
                     f"{row['overhead_pct_of_model']:.1f} % | <= 10 % |")
    o = result["overload"]
    lines += ["", f"## Overload: camera at 30 Hz for {o['seconds']:.0f} s ({o['size']}, "
              "subscribers in another process)", "",
              "| sent | received | processed | dropped | model p50 / p95 (ms) | e2e p50 (ms) | "
              "e2e p95 (ms) | e2e p95 / model p50, p95 | first-third p50 | last-third p50 | "
              "target |", "|---|---|---|---|---|---|---|---|---|---|---|",
              f"| {o['frames_sent']} | {o['frames_received']} | {o['frames_processed']} | "
              f"{o['frames_dropped']} | {o['model_p50_ms']:.1f} / {o['model_p95_ms']:.1f} | "
              f"{o['latency_p50_ms']:.1f} | {o['latency_p95_ms']:.1f} | "
              f"{o['p95_over_model_p50']:.2f}x, {o['p95_over_model_p95']:.2f}x | "
              f"{o['latency_p50_first_third_ms']:.1f} | {o['latency_p50_last_third_ms']:.1f} | "
              "p95 <= 2x, no growth |", "",
              "Model latency is measured inside the node during the overload (the executor "
              "thread receiving 30 Hz images shares the CPUs with inference).", "",
              "## Building blocks at 640x480", "",
              "| operation | p50 (ms) | p95 (ms) | min (ms) |", "|---|---|---|---|"]
    for name, row in result["micro"].items():
        lines.append(f"| {name} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | "
                     f"{row['min_ms']:.2f} |")
    lines += ["", "Target for build_pointcloud2_640x480_rgb_label: <= 10 ms.", "",
              f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run all benchmarks and write the result files."""
    args = parse_args(argv)
    import torch

    from synergy_ros.core.atomic import atomic_write_text
    from synergy_ros.core.machine import machine_info, machine_summary

    torch.set_num_threads(args.threads)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    result = {"machine": machine_info(), "machine_summary": machine_summary(),
              "model": "resnet18 synergy net (untrained weights), 40 classes, torch fp32, "
                       f"{args.threads} threads, model input = camera size",
              "command": "python benchmarks/bench_node.py " + " ".join(argv or sys.argv[1:])}
    load_start = os.getloadavg()[0]
    print("micro benchmarks ...", flush=True)
    result["micro"] = bench_micro(args.cloud_iters)
    ow, oh = args.overload_size
    with tempfile.TemporaryDirectory() as tmp:
        result["overhead"] = []
        for width, height in SIZES:
            model = _model(Path(tmp), width, height)
            for where in ("process", "inprocess"):
                print(f"overhead at {width}x{height}, subscribers {where} ...", flush=True)
                result["overhead"].append(bench_overhead(model, width, height, args.frames,
                                                         args.threads, where))
        print(f"overload at {ow}x{oh}, 30 Hz ...", flush=True)
        result["overload"] = bench_overload(_model(Path(tmp), ow, oh), ow, oh,
                                            args.overload_seconds, args.threads)
    result["load_average_1min"] = {"start": load_start, "end": os.getloadavg()[0]}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "node_cpu.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out / "node_cpu.md", to_markdown(result))
    print(to_markdown(result))
    summary = result["overhead"]
    print("summary: overhead " + ", ".join(f"{r['size']} {r['subscribers']} "
                                           f"{r['overhead_p50_ms']:.1f} ms "
                                           f"({r['overhead_pct_of_model']:.1f} %)"
                                           for r in summary)
          + f"; overload p95 {result['overload']['p95_over_model_p50']:.2f}x model; cloud "
          f"{result['micro']['build_pointcloud2_640x480_rgb_label']['p50_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
