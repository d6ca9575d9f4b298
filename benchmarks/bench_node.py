"""Benchmark synergy_node's own cost per frame beside fast and slow models, on this machine.

Writes ``benchmarks/results/node_cpu.md`` and ``.json`` with the machine they ran on.

    .venv/bin/python benchmarks/bench_node.py                       # everything (~6 min)
    .venv/bin/python benchmarks/bench_node.py --frames 5 --overload-seconds 3 --out /tmp/b

Set ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID of your own.

What is measured (real node processes, real rclpy over loopback DDS; see docs/node.md):

* **Round trips, interleaved.** For each case the node runs in its own process
  (benchmarks/node_processes.py, as ``synergy_node`` would, ``profile`` on) next to a
  **relay** process: the transport floor, a minimal rclpy node with the node's QoS that
  answers each image with prebuilt messages of the node's output sizes (depth,
  depth/camera_info, camera_info, semantic, semantic_color, points). This process sends one
  frame at a time, round-robin to the node and to the relay, and times publish -> the last of
  the six outputs received; between them it times the model alone (``predict`` on the same
  image, same threads). ``overhead = node - model - relay``, reported as a share of the model.
* **Models.** ``demo``: the bundled ``models/synergy_demo_r18.pt`` on onnxruntime (a
  GPU-speed stand-in on this CPU, ~13 ms); ``fixed5ms``: a FixedLatencyPredictor whose
  ``infer`` is a 5 ms wait returning the demo model's output (real pre/post-processing; a
  TensorRT engine's latency); ``r18``: an untrained ResNet-18 synergy net run by torch at the
  camera size (slow, ~80-270 ms: the old benchmark's rows).
* **Breakdown.** The node's per-stage spans (``profile`` parameter, from /diagnostics).
* **Overload.** The camera at 30 Hz for ``--overload-seconds`` with the demo model: p95
  latency (publish -> last output) over the model's p50, frames dropped, and the node's
  resident memory sampled every 0.5 s.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from synergy_ros.core.sizes import size_arg  # noqa: E402 (needs ROOT on sys.path)

DEMO_MODEL = ROOT / "models" / "synergy_demo_r18.pt"
OUTPUTS = ("depth", "depth/camera_info", "camera_info", "semantic", "semantic_color", "points")
RUNNER = ROOT / "benchmarks" / "node_processes.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=31, help="timed round trips per case")
    parser.add_argument("--slow-frames", type=int, default=8,
                        help="timed round trips per slow (r18) case")
    parser.add_argument("--overload-seconds", type=float, default=10.0)
    parser.add_argument("--overload-size", type=size_arg, default=(320, 240),
                        help="WIDTHxHEIGHT at 30 Hz")
    parser.add_argument("--threads", type=int, default=2, help="inference CPU threads")
    parser.add_argument("--cases", default="demo,fixed5ms,r18",
                        help="comma list of model kinds to run (demo, fixed5ms, r18)")
    parser.add_argument("--cloud-iters", type=int, default=50)
    parser.add_argument("--relay-gap-ms", type=float, default=1.0,
                        help="the relay's wait between its publishes (subtracted)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--render", type=Path, default=None, metavar="JSON",
                        help="only re-write the markdown report of an earlier run's "
                             "node_cpu.json into --out (no benchmarking; a '## Reading' "
                             "section already in --out/node_cpu.md is kept)")
    return parser.parse_args(argv)


def percentile(values, q: float) -> float:
    """q-th percentile (0-100) of a sequence (NaN when empty)."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.percentile(values, q)) if values.size else float("nan")


#: Where a committed report's hand-written part starts (kept by ``--render``).
READING_HEADING = "## Reading"


def paired_overhead(node_ms, relay_ms, model_ms, resamples: int = 2000,
                    seed: int = 0) -> tuple[float, float, float]:
    """Median over the interleaved rounds of node - relay - model (ms), and its 90 % bootstrap
    interval: the same three timings taken within one round share the machine's state, so
    their difference is steadier than a difference of three separate medians, and the
    interval says whether a target is decided by this run at all.

    Returns:
        (median, low, high) in ms; NaNs without rounds.
    """
    per_round = (np.asarray(node_ms, np.float64) - np.asarray(relay_ms, np.float64)
                 - np.asarray(model_ms, np.float64))
    if per_round.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(per_round, (resamples, per_round.size)), axis=1)
    low, high = np.percentile(medians, [5, 95])
    return float(np.median(per_round)), float(low), float(high)


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


# ---------------------------------------------------------------------------------------------
# The client: publishes frames, receives outputs raw (no deserialisation on this side)
# ---------------------------------------------------------------------------------------------
def _stamp_of(data: bytes) -> int:
    """header.stamp (ns) of a serialised message: CDR encapsulation (4 bytes), sec, nanosec."""
    sec, nanosec = struct.unpack_from("<iI", data, 4)
    return sec * 1_000_000_000 + nanosec


class Client:
    """Publishes camera frames to camera namespaces and times the outputs of output namespaces.

    ``round_trip(camera_ns, out_ns, stamp)`` sends one frame and returns the ms until all
    :data:`OUTPUTS` of ``out_ns`` arrived with that stamp (None on timeout).
    """

    def __init__(self, camera: tuple[int, int]) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"bench_client_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.camera = camera
        self.arrivals: dict[tuple[str, int], dict[str, float]] = {}
        self.cond = threading.Condition()
        self.publishers: dict[str, tuple] = {}
        self.diagnostics: dict[str, dict] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        from synergy_ros.ros.testing import spin_in_background

        self.thread = spin_in_background(self.executor)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    def watch(self, camera_ns: str, out_ns: str) -> None:
        """Publishers on ``camera_ns``'s image/camera_info; raw subscriptions on ``out_ns``."""
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from synergy_ros.ros.qos import qos_profile

        qos = qos_profile(True, 10)
        self.publishers[camera_ns] = (
            self.node.create_publisher(Image, f"{camera_ns}/image", qos),
            self.node.create_publisher(CameraInfo, f"{camera_ns}/camera_info", qos))
        types = {"depth/camera_info": CameraInfo, "camera_info": CameraInfo,
                 "points": PointCloud2}
        for topic in OUTPUTS:
            self.node.create_subscription(
                types.get(topic, Image), f"{out_ns}/{topic}",
                lambda data, key=(out_ns, topic): self._on_output(key, data),
                qos_profile(True, 10), raw=True)

    def _on_output(self, key: tuple[str, str], data: bytes) -> None:
        now = time.perf_counter()
        out_ns, topic = key
        with self.cond:
            self.arrivals.setdefault((out_ns, _stamp_of(data)), {})[topic] = now
            self.cond.notify_all()

    def ready(self, camera_ns: str, out_ns: str, timeout: float = 60.0) -> bool:
        """True once the target subscribes the camera and publishes every output."""
        deadline = time.monotonic() + timeout
        image_pub = self.publishers[camera_ns][0]
        while time.monotonic() < deadline:
            if image_pub.get_subscription_count() > 0 and all(
                    self.node.count_publishers(f"{out_ns}/{t}") > 0 for t in OUTPUTS):
                return True
            time.sleep(0.1)
        return False

    def frame(self, rgb: np.ndarray, stamp_ns: int):
        """The Image (and its CameraInfo) of ``rgb`` stamped ``stamp_ns``."""
        from synergy_ros.core.geometry import PinholeIntrinsics
        from synergy_ros.ros.conversions import intrinsics_to_camera_info
        from synergy_ros.ros.testing import camera_frame

        msg = camera_frame(rgb, stamp_ns)
        info = intrinsics_to_camera_info(PinholeIntrinsics.from_fov(1.2, *self.camera),
                                         msg.header)
        return msg, info

    def send(self, camera_ns: str, msg, info) -> float:
        """Publish camera_info then the image; returns the publish time (perf_counter)."""
        image_pub, info_pub = self.publishers[camera_ns]
        info_pub.publish(info)
        start = time.perf_counter()
        image_pub.publish(msg)
        return start

    def wait(self, out_ns: str, stamp_ns: int, timeout: float) -> float | None:
        """perf_counter time the last output of frame ``stamp_ns`` arrived, or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = self.arrivals.get((out_ns, stamp_ns), {})
                if len(got) == len(OUTPUTS):
                    return max(got.values())
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def round_trip(self, camera_ns: str, out_ns: str, rgb: np.ndarray, stamp_ns: int,
                   timeout: float = 5.0) -> float | None:
        """ms from publishing the frame to the last output (None on timeout)."""
        msg, info = self.frame(rgb, stamp_ns)
        start = self.send(camera_ns, msg, info)
        done = self.wait(out_ns, stamp_ns, timeout)
        return None if done is None else (done - start) * 1e3

    def close(self) -> None:
        """Stop spinning and shut the context down."""
        self.executor.shutdown(timeout_sec=5.0)
        self.thread.join(5.0)
        self.node.destroy_node()
        self.context.try_shutdown()


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------
def _start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=os.environ.get(
        "OMP_NUM_THREADS", "2"))
    return subprocess.Popen([sys.executable, str(RUNNER), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _model_predictor(kind: str, model: str, backend: str, threads: int, resolution: str,
                     cache_dir: str):
    from synergy_ros.ros.testing import FixedLatencyPredictor
    from synergy_ros.runtime import load_predictor

    if kind == "fixed5ms":
        inner = load_predictor(model, backend=backend, device="cpu", num_threads=threads,
                               engine_cache_dir=cache_dir)
        return FixedLatencyPredictor(inner, 0.005, output_resolution=resolution)
    return load_predictor(model, backend=backend, device="cpu", num_threads=threads,
                          output_resolution=resolution, engine_cache_dir=cache_dir,
                          thread_spinning=False)  # as the node runs it


def _profile(client: Client) -> dict:
    for name, values in client.diagnostics.items():
        if name.endswith("synergy_node: pipeline"):
            return {key[len("profile."):-len("_ms")]: [float(v) for v in value.split(" / ")]
                    for key, value in values.items() if key.startswith("profile.")}
    return {}


def bench_case(kind: str, camera: tuple[int, int], resolution: str, frames: int,
               threads: int, tmp: Path, tag: str, executor: str = "single",
               relay_gap_ms: float = 1.0) -> dict:
    """Interleaved round trips node / relay / model for one case.

    The relay waits ``relay_gap_ms`` between the publishes of one answer (back-to-back
    multi-MB publishes lose DDS fragments, recovered only by reliable retransmission after
    seconds; the node's building spaces its publishes by itself) and logs how long it waited
    per frame; that time is subtracted from its round trips.
    """
    if kind == "r18":
        from synergy_ros.ros.testing import make_model_file

        model = str(make_model_file(tmp / f"r18_{camera[0]}x{camera[1]}.pt", num_classes=40,
                                    input_size=(camera[1], camera[0])))
        backend, classes = "torch", 40
    else:
        model, backend, classes = str(DEMO_MODEL), "onnxruntime", 6
    cache = str(tmp / "cache")
    predictor = _model_predictor(kind, model, backend, threads, resolution, cache)
    out_h, out_w = predictor.input_size if resolution == "model" else (camera[1], camera[0])
    node_ns, relay_ns = f"/bn_{tag}", f"/br_{tag}"
    node_cam, relay_cam = f"/bn_cam_{tag}", f"/br_cam_{tag}"
    node = _start(["node", "--ns", node_ns, "--camera-ns", node_cam, "--model", model,
                   "--backend", backend, "--threads", str(threads), "--output-resolution",
                   resolution, "--cache-dir", cache, "--executor", executor]
                  + (["--stand-in-ms", "5"] if kind == "fixed5ms" else []))
    slept_log = tmp / f"relay_slept_{tag}.txt"
    relay = _start(["relay", "--ns", relay_ns, "--camera-ns", relay_cam, "--camera",
                    f"{camera[0]}x{camera[1]}", "--output", f"{out_w}x{out_h}", "--classes",
                    str(classes), "--gap-ms", str(relay_gap_ms), "--slept-log",
                    str(slept_log)])
    client = Client(camera)
    try:
        client.watch(node_cam, node_ns)
        client.watch(relay_cam, relay_ns)
        for process, what in ((node, "node"), (relay, "relay")):
            ns = node_ns if what == "node" else relay_ns
            cam = node_cam if what == "node" else relay_cam
            if not client.ready(cam, ns):
                _stop(process)
                raise RuntimeError(f"the {what} process did not come up: "
                                   f"{(process.stderr.read() or '')[-2000:]}")
        rgb = np.random.default_rng(1).integers(0, 256, (camera[1], camera[0], 3),
                                                dtype=np.uint8)
        node_ms, relay_ms, model_ms, relay_stamps = [], [], [], []
        for i in range(frames + 3):  # 3 warm-up rounds
            stamp = 1_000_000_000 + i * 1000
            a = client.round_trip(node_cam, node_ns, rgb, stamp)
            time.sleep(0.02)
            b = client.round_trip(relay_cam, relay_ns, rgb, stamp)
            time.sleep(0.02)
            start = time.perf_counter()
            predictor.predict(rgb)
            c = (time.perf_counter() - start) * 1e3
            time.sleep(0.02)
            if i >= 3 and a is not None and b is not None:
                node_ms.append(a)
                relay_ms.append(b)
                relay_stamps.append(stamp)
                model_ms.append(c)
        time.sleep(1.5)  # one diagnostics period: the profile covers every timed frame
        profile = _profile(client)
    finally:
        client.close()
        _stop(node)
        _stop(relay)
        predictor.close()
    slept = {}
    if slept_log.exists():
        for line in slept_log.read_text(encoding="ascii").splitlines():
            stamp, ms = line.split()
            slept[int(stamp)] = float(ms)
    relay_waits = [slept.get(stamp, 0.0) for stamp in relay_stamps]
    relay_ms = [value - wait for value, wait in zip(relay_ms, relay_waits)]
    node50, relay50, model50 = (percentile(v, 50) for v in (node_ms, relay_ms, model_ms))
    overhead = node50 - model50 - relay50
    return {"model": kind, "camera": f"{camera[0]}x{camera[1]}", "output_resolution":
            resolution, "outputs": f"{out_w}x{out_h}", "frames": len(node_ms),
            "model_p50_ms": model50, "node_p50_ms": node50, "relay_p50_ms": relay50,
            "node_p95_ms": percentile(node_ms, 95), "overhead_ms": overhead,
            "relay_gap_ms": relay_gap_ms, "relay_wait_p50_ms": percentile(relay_waits, 50),
            "overhead_pct_of_model": 100.0 * overhead / model50, "profile": profile,
            "node_ms": node_ms, "relay_ms": relay_ms, "model_ms": model_ms}


def bench_overload(camera: tuple[int, int], seconds: float, threads: int, tmp: Path) -> dict:
    """The demo model, camera at 30 Hz: latency percentiles, drops, node RSS over time."""
    cache = str(tmp / "cache")
    predictor = _model_predictor("demo", str(DEMO_MODEL), "onnxruntime", threads, "model", cache)
    model_ms = [timed(lambda: predictor.predict(rgb), 1)["p50_ms"] for rgb in
                [np.random.default_rng(i).integers(0, 256, (camera[1], camera[0], 3),
                                                   dtype=np.uint8) for i in range(20)]]
    predictor.close()
    node_ns, node_cam = "/bn_overload", "/bn_cam_overload"
    node = _start(["node", "--ns", node_ns, "--camera-ns", node_cam, "--model", str(DEMO_MODEL),
                   "--backend", "onnxruntime", "--threads", str(threads), "--output-resolution",
                   "model", "--cache-dir", cache])
    client = Client(camera)
    try:
        client.watch(node_cam, node_ns)
        if not client.ready(node_cam, node_ns):
            raise RuntimeError(f"the node did not come up: {(node.stderr.read() or '')[-2000:]}")
        rgb = np.random.default_rng(2).integers(0, 256, (camera[1], camera[0], 3),
                                                dtype=np.uint8)
        client.round_trip(node_cam, node_ns, rgb, 1)  # warm up
        rss = [(0.0, _rss_mb(node.pid))]
        sent: dict[int, float] = {}
        start = time.perf_counter()
        next_rss = 0.5
        while time.perf_counter() - start < seconds:
            stamp = 2_000_000_000 + len(sent)
            msg, info = client.frame(rgb, stamp)
            sent[stamp] = client.send(node_cam, msg, info)
            elapsed = time.perf_counter() - start
            if elapsed >= next_rss:
                rss.append((elapsed, _rss_mb(node.pid)))
                next_rss += 0.5
            time.sleep(max(0.0, start + len(sent) / 30.0 - time.perf_counter()))
        time.sleep(2.0)
        rss.append((time.perf_counter() - start, _rss_mb(node.pid)))
        with client.cond:
            done = {stamp: max(got.values()) for (ns, stamp), got in client.arrivals.items()
                    if ns == node_ns and stamp in sent and len(got) == len(OUTPUTS)}
        latency = [(done[s] - sent[s]) * 1e3 for s in sorted(done)]
        profile = _profile(client)
    finally:
        client.close()
        _stop(node)
    third = max(1, len(latency) // 3)
    model50 = percentile(model_ms, 50)
    values = [mb for _, mb in rss]
    return {"camera": f"{camera[0]}x{camera[1]}", "rate_hz": 30, "seconds": seconds,
            "frames_sent": len(sent), "frames_answered": len(latency),
            "model_p50_ms": model50, "latency_p50_ms": percentile(latency, 50),
            "latency_p95_ms": percentile(latency, 95),
            "p95_over_model_p50": percentile(latency, 95) / model50,
            "latency_p50_first_third_ms": percentile(latency[:third], 50),
            "latency_p50_last_third_ms": percentile(latency[-third:], 50),
            "rss_mb_start": values[1] if len(values) > 1 else values[0],
            "rss_mb_end": values[-1], "rss_mb_max": max(values), "rss_samples": rss,
            "profile": profile}


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def _breakdown_table(profile: dict) -> list[str]:
    lines = ["| stage | p50 (ms) | p95 (ms) |", "|---|---|---|"]
    for stage, (p50, p95) in profile.items():
        lines.append(f"| {stage} | {p50:.3f} | {p95:.3f} |")
    return lines


def to_markdown(result: dict) -> str:
    """The result as a markdown report."""
    load = result["load_average_1min"]
    lines = ["# synergy_node on CPU: its own cost per frame", "",
             f"Machine: {result['machine_summary']}; 1-min load average {load['start']:.1f} at "
             f"start, {load['end']:.1f} at end (shared machine).", "",
             "Round trips (publish -> last of the six outputs received), one frame at a time, "
             "interleaved node / relay / model alone; medians of "
             f"{result['frames']} frames per case. overhead = node - model - relay (the "
             "relay is the transport floor: rclpy + DDS for the same messages, no work). The "
             f"relay waits {result.get('relay_gap_ms', 0):g} ms between the publishes of one "
             "answer (back to back, multi-MB messages lose DDS fragments that reliable "
             "retransmission recovers only after seconds; the node's building spaces its own "
             "publishes) and logs the time it waited, which is subtracted from its round "
             "trips. **paired**: the median over rounds of node - relay - model within each "
             "round, with its 90 % bootstrap interval (where the interval straddles a target, "
             "this run does not decide it).", "",
             "| model | camera | outputs | model (ms) | node (ms) | relay (ms) | overhead (ms)"
             " | overhead / model | paired (ms, 90 % interval) | paired / model | target |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["cases"]:
        target = ("<= 10 %" if row["model"] != "r18" and row["camera"] == "320x240" else
                  "<= 15 %" if row["model"] != "r18" and row["output_resolution"] == "input"
                  else "")
        floor_ok = row["relay_p50_ms"] < row["node_p50_ms"] - row["model_p50_ms"] + 1.0
        overhead = (f"{row['overhead_ms']:.1f} | {row['overhead_pct_of_model']:.0f} %"
                    if floor_ok else "n/a (relay slower than node) | n/a")
        paired, low, high = paired_overhead(row["node_ms"], row["relay_ms"], row["model_ms"])
        model = row["model_p50_ms"]
        share, share_low, share_high = (100 * v / model for v in (paired, low, high))
        lines.append(f"| {row['model']} | {row['camera']} | {row['outputs']} "
                     f"({row['output_resolution']}) | {row['model_p50_ms']:.1f} | "
                     f"{row['node_p50_ms']:.1f} | {row['relay_p50_ms']:.1f} | "
                     f"{overhead} | {paired:.1f} ({low:.1f} to {high:.1f}) | "
                     f"{share:.0f} % ({share_low:.0f} to {share_high:.0f} %) | {target} |")
    lines += ["", "Models: demo = bundled synergy_demo_r18.pt on onnxruntime (GPU-speed "
              "stand-in); fixed5ms = FixedLatencyPredictor, infer = 5 ms wait returning the "
              "demo model's output (real pre/post); r18 = untrained ResNet-18 on torch at the "
              "camera size (slow).", "",
              "n/a: the relay, which publishes its prebuilt multi-MB messages back to back, "
              "was slower than the node (FastDDS drops fragments of such bursts and recovers "
              "them by reliable retransmission; the node's builds space its publishes), so it "
              "is no floor there; the node's breakdown below shows its own cost instead.", ""]
    for row in result["cases"]:
        if row["profile"]:
            lines += [f"## Breakdown: {row['model']}, camera {row['camera']}, outputs "
                      f"{row['outputs']}", "", "From the node's `profile` spans (/diagnostics)"
                      ", image callback to last publish; deserialisation and the executor's "
                      "dispatch come before the callback and are in node - relay.", ""]
            lines += _breakdown_table(row["profile"]) + [""]
    o = result.get("overload")
    if o:
        lines += [f"## Overload: camera at 30 Hz for {o['seconds']:.0f} s ({o['camera']}, demo "
                  "model, outputs at model resolution)", "",
                  "| sent | answered | model p50 (ms) | e2e p50 (ms) | e2e p95 (ms) | p95 / model "
                  "p50 | first-third p50 | last-third p50 | RSS start / end / max (MB) | "
                  "target |", "|---|---|---|---|---|---|---|---|---|---|",
                  f"| {o['frames_sent']} | {o['frames_answered']} | {o['model_p50_ms']:.1f} | "
                  f"{o['latency_p50_ms']:.1f} | {o['latency_p95_ms']:.1f} | "
                  f"{o['p95_over_model_p50']:.2f}x | {o['latency_p50_first_third_ms']:.1f} | "
                  f"{o['latency_p50_last_third_ms']:.1f} | {o['rss_mb_start']:.0f} / "
                  f"{o['rss_mb_end']:.0f} / {o['rss_mb_max']:.0f} | p95 <= 1.5x, RSS flat |",
                  ""]
    lines += ["## Building blocks at 640x480", "", "| operation | p50 (ms) | p95 (ms) | min (ms) |",
              "|---|---|---|---|"]
    for name, row in result["micro"].items():
        lines.append(f"| {name} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | "
                     f"{row['min_ms']:.2f} |")
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run all benchmarks and write the result files."""
    from tqdm import tqdm

    from synergy_ros.core.atomic import atomic_write_text
    from synergy_ros.core.machine import machine_info, machine_summary

    args = parse_args(argv)
    if args.render is not None:
        report = to_markdown(json.loads(args.render.read_text(encoding="utf-8")))
        target = args.out / "node_cpu.md"
        if target.exists():  # the same run's hand-written reading stays
            earlier = target.read_text(encoding="utf-8")
            if READING_HEADING in earlier:
                report = (report.rstrip("\n") + "\n\n"
                          + earlier[earlier.index(READING_HEADING):])
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, report)
        print(report)
        return 0
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    kinds = [k.strip() for k in args.cases.split(",") if k.strip()]
    result = {"machine": machine_info(), "machine_summary": machine_summary(),
              "frames": args.frames, "relay_gap_ms": args.relay_gap_ms,
              "command": "python benchmarks/bench_node.py " + " ".join(argv or sys.argv[1:])}
    load_start = os.getloadavg()[0]
    result["micro"] = bench_micro(args.cloud_iters)
    plan = []
    for kind in kinds:
        for camera in ((320, 240), (640, 480)):
            for resolution in (("model",) if kind == "r18" else ("model", "input")):
                plan.append((kind, camera, resolution))
    result["cases"] = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (kind, camera, resolution) in enumerate(tqdm(plan, desc="bench_node")):
            frames = args.slow_frames if kind == "r18" else args.frames
            row = bench_case(kind, camera, resolution, frames, args.threads, Path(tmp),
                             f"{index}_{os.getpid()}", relay_gap_ms=args.relay_gap_ms)
            result["cases"].append(row)
            tqdm.write(f"{kind} {row['camera']} -> {row['outputs']}: model "
                       f"{row['model_p50_ms']:.1f} ms, node {row['node_p50_ms']:.1f}, relay "
                       f"{row['relay_p50_ms']:.1f}, overhead {row['overhead_ms']:.1f} ms "
                       f"({row['overhead_pct_of_model']:.0f} %)")
        if args.overload_seconds > 0:
            result["overload"] = bench_overload(args.overload_size, args.overload_seconds,
                                                args.threads, Path(tmp))
    result["load_average_1min"] = {"start": load_start, "end": os.getloadavg()[0]}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "node_cpu.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out / "node_cpu.md", to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
