"""The processes of the node benchmark: the synergy node itself, and the transport-floor relay.

    python benchmarks/node_processes.py node --ns /bn --camera-ns /cam --model M \
        --backend onnxruntime [--stand-in-ms 5] [--output-resolution model] [--threads 2]
        [--cameras front,left,right] [--name synergy_node]
    python benchmarks/node_processes.py relay --ns /br --camera-ns /cam2 --camera 320x240 \
        --output 128x96 --classes 6

Both read ``<camera-ns>/image`` and ``<camera-ns>/camera_info`` and publish their outputs in
``--ns``, as the launch file sets the node up (image remapped, camera_info read beside it).

``node`` runs a SynergyNode as ``synergy_node`` does (rclpy.init, spin, Ctrl-C), with the
``profile`` parameter on so /diagnostics carries the per-stage breakdown, and reliable input
QoS (a lost 640x480 frame - FastDDS fragments images over its 512 KiB shared-memory segment
and best effort drops a frame when a fragment is lost - would stall a one-at-a-time round
trip; the relay uses the same); with
``--stand-in-ms`` the model is a FixedLatencyPredictor around the given model.

``relay`` is the transport floor: a minimal rclpy node with the node's input and output QoS
that answers every image with messages of the node's output sizes, built once beforehand
(depth 32FC1, depth/camera_info, camera_info, semantic mono8, semantic_color rgb8 and an
organized xyz+rgb+label cloud), only restamped. Its round trip is what rclpy and DDS cost
for the same traffic with no work in between.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from synergy_ros.core.sizes import size_arg  # noqa: E402 (needs ROOT on sys.path)


def run_node(args: argparse.Namespace) -> None:
    """Spin a SynergyNode until Ctrl-C."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.parameter import Parameter

    from synergy_ros.ros.node import SynergyNode
    from synergy_ros.ros.testing import FixedLatencyPredictor
    from synergy_ros.runtime import load_predictor

    overrides = {"model": args.model, "backend": args.backend, "device": "cpu",
                 "num_threads": args.threads, "output_resolution": args.output_resolution,
                 "profile": True, "engine_cache_dir": args.cache_dir,
                 "qos_reliability": "reliable"}
    predictor = None
    if args.stand_in_ms:
        inner = load_predictor(args.model, backend=args.backend, device="cpu",
                               num_threads=args.threads, engine_cache_dir=args.cache_dir)
        predictor = FixedLatencyPredictor(inner, args.stand_in_ms / 1e3,
                                          output_resolution=args.output_resolution)
    cameras = [name for name in args.cameras.split(",") if name]
    if cameras:  # one node for several cameras: NAME/image <- <camera-ns>/NAME/image
        overrides["cameras"] = cameras
        remaps = [f"{name}/image:={args.camera_ns}/{name}/image" for name in cameras]
    else:
        remaps = [f"image:={args.camera_ns}/image"]
    ros_args = ["--ros-args", "-r", f"__ns:={args.ns}", "-r", f"__node:={args.name}"]
    for remap in remaps:
        ros_args += ["-r", remap]
    rclpy.init(args=ros_args)
    node = SynergyNode(predictor=predictor,
                       parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    if args.executor == "events":
        from rclpy.experimental import EventsExecutor

        executor = EventsExecutor()
    else:
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def relay_messages(camera: tuple[int, int], output: tuple[int, int], classes: int) -> dict:
    """Output key -> a message of the node's output size (built once)."""
    from synergy_ros.core.geometry import PinholeIntrinsics
    from synergy_ros.core.labels import palette_lut
    from synergy_ros.ros.outputs import prediction_messages
    from synergy_ros.runtime.prediction import Prediction

    width, height = output
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 9.0, (height, width)).astype(np.float32)
    labels = rng.integers(0, classes, (height, width)).astype(np.uint8)
    rgb = rng.integers(0, 256, (camera[1], camera[0], 3), dtype=np.uint8)
    palette = palette_lut(rng.integers(0, 256, (classes, 3)).tolist(), classes)
    camera_k = PinholeIntrinsics.from_fov(1.2, camera[0], camera[1])
    wanted = ("depth", "depth_info", "camera_info", "semantic", "semantic_color", "points")
    return dict(prediction_messages(Prediction(depth, labels), rgb, camera_k, None, palette,
                                    wanted))


def run_relay(args: argparse.Namespace) -> None:
    """Answer each image with the prebuilt output messages, restamped."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import CameraInfo, Image

    from synergy_ros.ros.outputs import OUTPUT_TOPICS
    from synergy_ros.ros.qos import qos_profile

    rclpy.init()
    node = rclpy.create_node("relay", namespace=args.ns)
    messages = relay_messages(args.camera, args.output, args.classes)
    out_qos = qos_profile(True, 2)  # the node's output QoS defaults
    topics = dict(OUTPUT_TOPICS, camera_info="camera_info")
    publishers = {key: node.create_publisher(type(msg), topics[key], out_qos)
                  for key, msg in messages.items()}

    gap_s = args.gap_ms / 1e3
    slept_log = open(args.slept_log, "a", encoding="ascii") if args.slept_log else None

    def answer(image: Image) -> None:
        slept = 0.0
        for index, (key, msg) in enumerate(messages.items()):
            if index and gap_s > 0:  # space the publishes as the node's building does
                start = time.perf_counter()
                time.sleep(gap_s)
                slept += time.perf_counter() - start
            msg.header = image.header
            publishers[key].publish(msg)
        if slept_log is not None:  # the client subtracts the waits from the round trip
            stamp = image.header.stamp.sec * 1_000_000_000 + image.header.stamp.nanosec
            slept_log.write(f"{stamp} {slept * 1e3:.4f}\n")
            slept_log.flush()

    node.create_subscription(Image, f"{args.camera_ns}/image", answer, qos_profile(True, 5))
    node.create_subscription(CameraInfo, f"{args.camera_ns}/camera_info", lambda msg: None,
                             qos_profile(True, 5))
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    """Parse the role and run it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    node = roles.add_parser("node")
    node.add_argument("--ns", required=True)
    node.add_argument("--camera-ns", required=True)
    node.add_argument("--model", required=True)
    node.add_argument("--backend", default="onnxruntime")
    node.add_argument("--threads", type=int, default=2)
    node.add_argument("--output-resolution", default="model", choices=("model", "input"))
    node.add_argument("--stand-in-ms", type=float, default=0.0)
    node.add_argument("--cache-dir", default="")
    node.add_argument("--executor", default="single", choices=("single", "events"))
    node.add_argument("--cameras", default="",
                      help="comma list: one node serving these cameras (<camera-ns>/NAME/image)")
    node.add_argument("--name", default="synergy_node", help="node name (diagnostics status)")
    relay = roles.add_parser("relay")
    relay.add_argument("--ns", required=True)
    relay.add_argument("--camera-ns", required=True)
    relay.add_argument("--camera", type=size_arg, required=True, help="WIDTHxHEIGHT")
    relay.add_argument("--output", type=size_arg, required=True, help="WIDTHxHEIGHT")
    relay.add_argument("--classes", type=int, default=6)
    relay.add_argument("--gap-ms", type=float, default=0.0,
                       help="wait between the publishes of one answer (multi-MB bursts)")
    relay.add_argument("--slept-log", default="",
                       help="append '<stamp ns> <ms slept>' per answer to this file")
    args = parser.parse_args(argv)
    (run_node if args.role == "node" else run_relay)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
