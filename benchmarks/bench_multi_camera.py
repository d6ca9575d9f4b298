"""Benchmark one synergy_node serving several cameras against one node per camera (issue 14).

Writes ``benchmarks/results/multi_camera_cpu.md`` and ``.json`` with the machine and its load.

    .venv/bin/python benchmarks/bench_multi_camera.py                 # 3 cameras (~4 min)
    .venv/bin/python benchmarks/bench_multi_camera.py --counts 2,3,4 --seconds 15

Set ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID of your own.

For each camera count N and rate pattern (every camera at ``--rate`` Hz; and one camera at
``--fast`` Hz with the others at ``--slow`` Hz), two set-ups run one after the other (the
order alternates between patterns), each in its own processes (benchmarks/node_processes.py,
as ``synergy_node`` runs, the bundled model on onnxruntime, ``--threads`` inference threads,
reliable input, outputs at the model's resolution):

* **multi**: one node with ``cameras: [cam0, ...]`` (one model, batched inference);
* **single**: N nodes, one per camera, started together.

This process publishes the N cameras (``--size`` rgb8 frames, stamped with the send time; each
camera from its own rclpy context, i.e. its own DDS participant, as separate camera drivers
do) and
subscribes to every output of every camera. After every camera has produced output and a
warm-up, it counts each camera's ``points`` (the last output of a frame) for ``--seconds``:
output rate per camera, aggregate frames/s, rate spread (max/min - 1 over the cameras'
output/input ratios), latency (stamp -> points received) p50/p95, the nodes' summed resident
memory (VmRSS, sampled every 0.5 s, mean and max) and, from /diagnostics, the nodes' model
latency per call (inference p50) and the multi node's batch-size histogram.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from synergy_ros.core.sizes import size_arg  # noqa: E402 (needs ROOT on sys.path)

DEMO_MODEL = ROOT / "models" / "synergy_demo_r18.pt"
RUNNER = ROOT / "benchmarks" / "node_processes.py"
OUTPUTS = ("depth", "depth/camera_info", "semantic", "semantic_color", "points")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="3", help="comma list of camera counts")
    parser.add_argument("--rate", type=float, default=15.0, help="Hz per camera (even pattern)")
    parser.add_argument("--fast", type=float, default=30.0, help="Hz of camera 0 (uneven)")
    parser.add_argument("--slow", type=float, default=5.0, help="Hz of the others (uneven)")
    parser.add_argument("--patterns", default="even,uneven",
                        help="comma list: even (all at --rate), uneven (--fast, others --slow)")
    parser.add_argument("--size", type=size_arg, default=(320, 240), help="WIDTHxHEIGHT")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--threads", type=int, default=2, help="inference threads per node")
    parser.add_argument("--model", type=Path, default=DEMO_MODEL)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/synergy_bench_multi_cache"),
                        help="where the ONNX exports (static and dynamic batch) are cached")
    return parser.parse_args(argv)


def percentile(values, q: float) -> float:
    """q-th percentile (0-100), NaN when empty."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.percentile(values, q)) if values.size else float("nan")


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (0 when gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def machine() -> dict:
    """CPU model, cores, load average (1, 5, 15 min)."""
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "loadavg": list(os.getloadavg())}


class Bench:
    """The camera publishers and output recorders of this process (rclpy, own executor)."""

    def __init__(self, size: tuple[int, int]) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        rclpy.init()
        self.node = rclpy.create_node("bench_multi_camera")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.size = size
        rng = np.random.default_rng(0)
        self.frames = [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                       for _ in range(4)]
        self.lock = threading.Lock()
        self.arrivals: dict[str, list] = {}  # camera -> [(arrival wall s, stamp s)]
        self.diagnostics: dict[str, dict] = {}  # status name -> {key: value}
        self._entities: list = []
        self._drivers: list = []  # (rclpy context, node) per camera publisher
        from diagnostic_msgs.msg import DiagnosticArray

        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        from synergy_ros.ros.testing import spin_in_background

        self._thread = spin_in_background(self.executor)

    def _on_diag(self, msg) -> None:
        with self.lock:
            for status in msg.status:
                self.diagnostics[status.name] = {v.key: v.value for v in status.values}

    def wire(self, cameras: list[str], image_topic, output_topic) -> dict:
        """Publishers of each camera's image (``image_topic(name)``) and subscriptions to its
        outputs (``output_topic(name, output)``); returns {camera: image publisher}."""
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from synergy_ros.ros.qos import qos_profile

        types = {"depth": Image, "depth/camera_info": CameraInfo, "semantic": Image,
                 "semantic_color": Image, "points": PointCloud2}
        publishers = {}
        for name in cameras:
            image = image_topic(name)
            info = f"{image.rsplit('/', 1)[0]}/camera_info"  # beside the image
            driver = self._driver(name)
            publishers[name] = (driver.create_publisher(Image, image, qos_profile(True, 5)),
                                driver.create_publisher(CameraInfo, info,
                                                        qos_profile(True, 5)))
            self.arrivals[name] = []
            for output in OUTPUTS:
                callback = (lambda msg, n=name: self._on_points(n, msg)) if output == "points" \
                    else (lambda msg: None)
                self._entities.append(self.node.create_subscription(
                    types[output], output_topic(name, output), callback, qos_profile(True, 5)))
        return publishers

    def _driver(self, camera: str):
        """A node in its own rclpy context (its own DDS participant) that publishes one camera,
        as a camera driver process does. One participant publishing every camera overflows
        Fast DDS's shared-memory segment (512 KB per participant by default) with a burst of
        several 230 KB frames, and the first camera's frame of each burst then arrives a
        period late (measured: cam0 served 0.74, the others 0.97-0.99)."""
        import rclpy

        context = rclpy.Context()
        rclpy.init(context=context)
        node = rclpy.create_node(f"bench_camera_{camera}", context=context)
        self._drivers.append((context, node))
        return node

    def _on_points(self, camera: str, msg) -> None:
        now = time.time()
        with self.lock:
            self.arrivals[camera].append(
                (now, msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))

    def unwire(self) -> None:
        """Destroy this set-up's camera drivers and subscriptions."""
        for entity in self._entities:
            self.node.destroy_subscription(entity)
        self._entities = []
        for context, node in self._drivers:
            node.destroy_node()
            context.try_shutdown()
        self._drivers = []
        with self.lock:
            self.arrivals = {}
            self.diagnostics = {}

    def publish_for(self, publishers: dict, rates: dict, seconds: float,
                    until=None) -> dict:
        """Publish each camera's frames (and camera_info) at its rate for ``seconds`` (or until
        ``until()``); returns {camera: frames sent}."""
        from synergy_ros.core.geometry import PinholeIntrinsics
        from synergy_ros.ros.conversions import intrinsics_to_camera_info
        from synergy_ros.ros.testing import camera_frame

        k = PinholeIntrinsics.from_fov(1.2, *self.size)

        sent = {name: 0 for name in publishers}
        next_at = {name: time.monotonic() for name in publishers}
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if until is not None and until():
                break
            now = time.monotonic()
            for name, (pub, info_pub) in publishers.items():
                if now >= next_at[name]:
                    msg = camera_frame(self.frames[sent[name] % 4], int(time.time() * 1e9),
                                       frame_id=f"{name}_optical")
                    info_pub.publish(intrinsics_to_camera_info(k, msg.header))
                    pub.publish(msg)
                    sent[name] += 1
                    next_at[name] = max(next_at[name] + 1.0 / rates[name], now)
            time.sleep(0.002)
        return sent

    def close(self) -> None:
        """Stop spinning and shut rclpy down."""
        import rclpy

        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown()


def start_node(args, ns: str, camera_ns: str, name: str, cameras: list[str],
               cache: Path) -> subprocess.Popen:
    """A node process (benchmarks/node_processes.py) serving ``cameras`` (empty: one camera
    on ``<camera_ns>/image``)."""
    command = [sys.executable, str(RUNNER), "node", "--ns", ns, "--camera-ns", camera_ns,
               "--model", str(args.model), "--backend", "onnxruntime", "--threads",
               str(args.threads), "--cache-dir", str(cache), "--name", name]
    if cameras:
        command += ["--cameras", ",".join(cameras)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONUNBUFFERED="1")
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def stop(processes: list[subprocess.Popen]) -> None:
    """SIGINT each node process (as Ctrl-C), then wait; kill what does not stop."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_setup(args, bench: Bench, setup: str, cameras: list[str], rates: dict,
              cache: Path, tag: str) -> dict:
    """Run one set-up (``multi`` or ``single``) and return its measurements."""
    camera_ns = f"/bmc_{tag}_cam"
    if setup == "multi":
        names = [f"synergy_multi_{tag}"]
        processes = [start_node(args, f"/bmc_{tag}_multi", camera_ns, names[0], cameras, cache)]
        publishers = bench.wire(cameras, lambda n: f"{camera_ns}/{n}/image",
                                lambda n, o: f"/bmc_{tag}_multi/{n}/{o}")
    else:
        names = [f"synergy_{tag}_{name}" for name in cameras]
        processes = [start_node(args, f"/bmc_{tag}_{name}", f"{camera_ns}/{name}", node_name,
                                [], cache) for name, node_name in zip(cameras, names)]
        publishers = bench.wire(cameras, lambda n: f"{camera_ns}/{n}/image",
                                lambda n, o: f"/bmc_{tag}_{n}/{o}")
    try:
        def flowing() -> bool:
            with bench.lock:
                return all(bench.arrivals[name] for name in cameras)

        bench.publish_for(publishers, rates, 90.0, until=flowing)
        if not flowing():
            errors = [p.stderr.read()[-2000:] for p in processes if p.poll() is not None]
            raise RuntimeError(f"{setup}: no output from every camera in 90 s {errors}")
        bench.publish_for(publishers, rates, args.warmup)
        samples: list[float] = []
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.is_set():
                samples.append(sum(rss_mb(p.pid) for p in processes))
                stop_sampling.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        start = time.time()
        sampler.start()
        sent = bench.publish_for(publishers, rates, args.seconds)
        end = time.time()
        time.sleep(1.0)  # the frames in flight
        stop_sampling.set()
        sampler.join()
        with bench.lock:
            arrivals = {name: list(bench.arrivals[name]) for name in cameras}
            diagnostics = dict(bench.diagnostics)
    finally:
        stop(processes)
        bench.unwire()
    per_camera = {}
    latencies = []
    for name in cameras:
        window = [(arrival, stamp) for arrival, stamp in arrivals[name] if start <= stamp < end]
        lat = [(arrival - stamp) * 1e3 for arrival, stamp in window]
        latencies += lat
        per_camera[name] = {"input_hz": round(sent[name] / args.seconds, 2),
                            "output_hz": round(len(window) / args.seconds, 2),
                            "served": round(len(window) / max(sent[name], 1), 3),
                            "latency_p50_ms": round(percentile(lat, 50), 1),
                            "latency_p95_ms": round(percentile(lat, 95), 1)}
        node_view = diagnostics.get(f"{names[0]}: camera {name}") if setup == "multi" \
            else diagnostics.get(f"{names[cameras.index(name)]}: pipeline")
        if node_view:  # the node's own counts: where a camera's missing frames went
            per_camera[name]["node"] = {key: int(node_view[key]) for key in (
                "frames_received", "frames_processed", "frames_dropped", "bad_messages",
                "frames_skipped_no_subscribers")}
    served = [c["served"] for c in per_camera.values()]
    pipelines = [diagnostics.get(f"{name}: pipeline", {}) for name in names]
    inference = [float(p["inference_p50_ms"]) for p in pipelines if "inference_p50_ms" in p]
    return {"setup": setup, "processes": len(processes), "cameras": per_camera,
            "aggregate_output_fps": round(sum(c["output_hz"] for c in per_camera.values()), 2),
            "served_spread": round(max(served) / max(min(served), 1e-9) - 1.0, 3),
            "latency_p50_ms": round(percentile(latencies, 50), 1),
            "latency_p95_ms": round(percentile(latencies, 95), 1),
            "rss_mean_mb": round(float(np.mean(samples)), 1) if samples else None,
            "rss_max_mb": round(float(np.max(samples)), 1) if samples else None,
            "inference_p50_ms": [round(v, 1) for v in inference],
            "batch_sizes": pipelines[0].get("batch_sizes") if setup == "multi" else None}


def compare(multi: dict, single: dict) -> dict:
    """The issue's ratios: multi vs the single nodes' sum."""
    inference = multi["inference_p50_ms"][0] if multi["inference_p50_ms"] else float("nan")
    return {"aggregate_fps_ratio": round(multi["aggregate_output_fps"]
                                         / max(single["aggregate_output_fps"], 1e-9), 2),
            "rss_ratio": round((multi["rss_mean_mb"] or 0) / max(single["rss_mean_mb"] or 1,
                                                                 1e-9), 2),
            "multi_served_spread": multi["served_spread"],
            "multi_p95_over_batch_model_p50": round(multi["latency_p95_ms"] / inference, 2)}


def write_report(results: dict, out: Path) -> None:
    """benchmarks/results/multi_camera_cpu.{json,md}."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "multi_camera_cpu.json").write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    lines = [
        "# One node for several cameras vs one node per camera (CPU)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; load average before "
        f"{' / '.join(f'{v:.2f}' for v in m['loadavg'])}, after "
        f"{' / '.join(f'{v:.2f}' for v in results['loadavg_after'])} (1/5/15 min; the "
        "machine is shared with other jobs, so figures are noisy: compare within a row pair).",
        f"Model: {results['model']} on onnxruntime, {results['threads']} inference threads per "
        f"node, {results['size']} rgb8 input, outputs at the model's resolution, reliable "
        f"input QoS; {results['seconds']} s measured per set-up after {results['warmup']} s "
        "warm-up. Generated by benchmarks/bench_multi_camera.py.",
        "",
        "| cameras | rates (Hz) | set-up | processes | aggregate out (fps) | served per camera "
        "| spread | latency p50 / p95 (ms) | model per call p50 (ms) | RSS mean / max (MB) "
        "| batch sizes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in results["cases"]:
        for setup in ("multi", "single"):
            r = case[setup]
            served = ", ".join(f"{c['served']:.2f}" for c in r["cameras"].values())
            lines.append(
                f"| {case['count']} | {case['rates']} | {setup} | {r['processes']} | "
                f"{r['aggregate_output_fps']} | {served} | {r['served_spread']} | "
                f"{r['latency_p50_ms']} / {r['latency_p95_ms']} | "
                f"{', '.join(str(v) for v in r['inference_p50_ms'])} | "
                f"{r['rss_mean_mb']} / {r['rss_max_mb']} | {r['batch_sizes'] or '-'} |")
    lines += ["", "Ratios (multi vs the single nodes together; issue 14's targets in brackets):",
              "", "| cameras | rates (Hz) | aggregate fps (>= 1.2) | RSS (<= 0.5) | multi "
              "served spread (<= 0.2) | multi p95 / model per batch (<= 2) |",
              "|---|---|---|---|---|---|"]
    for case in results["cases"]:
        c = case["ratios"]
        lines.append(f"| {case['count']} | {case['rates']} | {c['aggregate_fps_ratio']} | "
                     f"{c['rss_ratio']} | {c['multi_served_spread']} | "
                     f"{c['multi_p95_over_batch_model_p50']} |")
    lines += ["", "\"served\" is output frames / input frames per camera; \"spread\" is "
              "max/min - 1 of those (fairness: the slow cameras of a 30/5/5 pattern should be "
              "served as fully as the fast one allows)."]
    (out / "multi_camera_cpu.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run every case and write the report."""
    args = parse_args(argv)
    from synergy_ros.runtime import load_predictor

    cache = args.cache_dir
    counts = [int(v) for v in args.counts.split(",") if v]
    for batch in sorted({1, *counts}):  # export once, before any timing
        load_predictor(args.model, backend="onnxruntime", device="cpu",
                       engine_cache_dir=cache, max_batch=batch).close()
    results = {"machine": machine(), "model": args.model.name, "threads": args.threads,
               "size": f"{args.size[0]}x{args.size[1]}", "seconds": args.seconds,
               "warmup": args.warmup, "cases": []}
    bench = Bench(args.size)
    order = 0
    try:
        for count in counts:
            cameras = [f"cam{i}" for i in range(count)]
            shapes = {"even": {name: args.rate for name in cameras},
                      "uneven": {name: args.fast if i == 0 else args.slow
                                 for i, name in enumerate(cameras)}}
            patterns = [shapes[pattern] for pattern in args.patterns.split(",")]
            for rates in patterns:
                case = {"count": count, "rates": "/".join(f"{r:g}" for r in rates.values())}
                setups = ("multi", "single") if order % 2 == 0 else ("single", "multi")
                for setup in setups:
                    tag = f"{count}_{order}_{setup}"
                    print(f"{setup}: {count} cameras at {case['rates']} Hz", flush=True)
                    case[setup] = run_setup(args, bench, setup, cameras, rates, cache, tag)
                    print(json.dumps(case[setup]), flush=True)
                case["ratios"] = compare(case["multi"], case["single"])
                print(json.dumps(case["ratios"]), flush=True)
                results["cases"].append(case)
                order += 1
    finally:
        bench.close()
    results["loadavg_after"] = list(os.getloadavg())
    write_report(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
