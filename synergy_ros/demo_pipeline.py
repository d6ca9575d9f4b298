"""`synergy demo`: synthetic bag -> the real synergy node over DDS -> recorded bag -> metrics.

The steps, all on this machine's CPU with DDS on loopback:

1. write a synthetic scene bag (:func:`synergy_ros.data.synthetic.write_synthetic_bag`:
   ``/camera/image_raw`` rgb8, ``/camera/camera_info``, ``/camera/depth_gt`` 32FC1,
   ``/camera/semantic_gt`` mono8) to ``<output>/input_bag``;
2. start the real node as users run it, ``synergy_node`` in a subprocess (its own process: a
   crash or a GIL-heavy model cannot stall the player, and its log goes to
   ``<output>/node.log``), in namespace ``/synergy`` with ``image`` remapped to the camera
   topic (camera_info is read beside it) and reliable input QoS;
3. play the bag with :class:`synergy_ros.bags.player.Player` (reliable QoS) in lockstep: a frame's
   image is published only once the node has answered the previous one on all six outputs
   (so the node never has to drop a frame), while a recorder on the same rclpy node
   subscribes to the four input and six output topics and writes them, as received, to
   ``<output>/bag`` (MCAP, receive time as bag time, like ``ros2 bag record``);
4. evaluate that bag in prediction mode (:mod:`synergy_ros.evaluation.evaluator`) into
``metrics.json``,
   ``report.md``, PNGs (including ``demo_strip.png``: input | depth | semantic | cloud) and
   ``cloud.ply``;
5. print where everything is and how to look at it.

Every output must carry its input image's stamp; frames in and out are counted and any drop
is reported (and makes the demo fail).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from synergy_ros.bags import bagio
from synergy_ros.bags.bagio import BagWriter
from synergy_ros.bags.player import Player, ReplayOptions
from synergy_ros.core.atomic import atomic_write_text
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.labels import get_label_set
from synergy_ros.data.synthetic import write_synthetic_bag
from synergy_ros.evaluation import report
from synergy_ros.evaluation.evaluator import EvaluateOptions, Evaluator
from synergy_ros.evaluation.writers import json_safe
from synergy_ros.network.untrained import save_untrained_model
from synergy_ros.ros.conversions import image_to_rgb, stamp_ns
from synergy_ros.ros.decoding import depth_from_image
from synergy_ros.ros.message_types import message_class
from synergy_ros.ros.pointcloud import pointcloud2_to_array, unpack_rgb, write_ply
from synergy_ros.ros.qos import qos_profile

NAMESPACE = "/synergy"
INPUT_TOPICS = {"/camera/image_raw": "sensor_msgs/msg/Image",
                "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
                "/camera/depth_gt": "sensor_msgs/msg/Image",
                "/camera/semantic_gt": "sensor_msgs/msg/Image"}
RECORDED_OUTPUTS = {f"{NAMESPACE}/depth": "sensor_msgs/msg/Image",
                    f"{NAMESPACE}/depth/camera_info": "sensor_msgs/msg/CameraInfo",
                    f"{NAMESPACE}/camera_info": "sensor_msgs/msg/CameraInfo",
                    f"{NAMESPACE}/semantic": "sensor_msgs/msg/Image",
                    f"{NAMESPACE}/semantic_color": "sensor_msgs/msg/Image",
                    f"{NAMESPACE}/points": "sensor_msgs/msg/PointCloud2"}
IMAGE_TOPIC = "/camera/image_raw"
BUNDLED_MODEL = "synergy_demo_r18.pt"
#: Marker file: a folder holding it was written by `synergy demo` and may be replaced.
MARKER = "demo.json"
_DEMO_PRODUCTS = ("bag", "input_bag", "images", "metrics.json", "report.md", "frames.csv",
                  "cloud.ply", "node.log", MARKER)


@dataclasses.dataclass
class DemoOptions:
    """Demo settings: output folder, frames, image size (pixels), model file, timeouts (s)."""

    output: Path = Path("runs/demo")
    frames: int = 20
    height: int = 240
    width: int = 320
    model: Path | None = None
    seed: int = 0
    fps: float = 10.0
    node_start_timeout_s: float = 180.0
    frame_timeout_s: float = 60.0
    progress: bool = True


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
def package_paths(*parts: str) -> list[Path]:
    """``parts`` under the source tree and, when installed as a ROS package, its share."""
    paths = [Path(__file__).resolve().parents[1].joinpath(*parts)]
    try:
        from ament_index_python.packages import get_package_share_directory

        paths.append(Path(get_package_share_directory("synergy_ros")).joinpath(*parts))
    except Exception:  # noqa: BLE001 - not installed as a ROS package
        pass
    return paths


def model_search_paths() -> list[Path]:
    """Where the bundled demo model is looked for: ./models, the source tree, the ROS share."""
    candidates = [Path.cwd() / "models" / BUNDLED_MODEL, *package_paths("models", BUNDLED_MODEL)]
    return list(dict.fromkeys(candidates))  # the source tree is often the working directory


def rviz_config() -> str:
    """Path of ``config/synergy.rviz`` (source tree or installed share), for the hint."""
    found = next((path for path in package_paths("config", "synergy.rviz") if path.is_file()),
                 None)
    return str(found) if found else "config/synergy.rviz"


def find_bundled_model() -> Path | None:
    """The bundled ``synergy_demo_r18.pt`` if one of :func:`model_search_paths` has it."""
    return next((path for path in model_search_paths() if path.is_file()), None)


def build_untrained_model(path: str | Path, input_size: tuple[int, int] = (96, 128),
                          seed: int = 0) -> Path:
    """Write a real but *untrained* (seeded random weights) ResNet-18 synergy model file.

    It has the ``synthetic`` label set and runs at ``input_size`` (h, w) pixels. Its depth and
    labels are meaningless; it lets the pipeline run where no trained model exists.
    """

    labels = get_label_set("synthetic")
    return save_untrained_model(
        path, {"encoder": "resnet18", "decoder_width": 64, "max_depth": 10.0},
        labels.class_names, labels.palette, input_size=input_size, seed=seed,
        extra={"note": "untrained (random weights): for pipeline checks only"})


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def camera_info_first(messages: Iterable) -> Iterator:
    """Reorder messages recorded at the same bag time so CameraInfo comes first.

    The node builds a frame's cloud from the latest camera_info, so the player publishes a
    frame's camera_info before its image.
    """
    group: list = []
    for message in messages:
        if group and message.log_time_ns != group[0].log_time_ns:
            yield from sorted(group, key=lambda m: m.msgtype != "sensor_msgs/msg/CameraInfo")
            group = []
        group.append(message)
    yield from sorted(group, key=lambda m: m.msgtype != "sensor_msgs/msg/CameraInfo")


def dds_environment() -> tuple[dict, list[str]]:
    """Environment for the demo's DDS traffic; notes on what was set.

    ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` keeps discovery on loopback (set when unset,
    also for this process, before rclpy starts).
    """
    notes = []
    if not os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE"):
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        notes.append("ROS_AUTOMATIC_DISCOVERY_RANGE was unset: set to LOCALHOST so DDS "
                     "stays on this machine")
    return dict(os.environ), notes


def prepare_output(output: Path) -> None:
    """Make ``output`` ready: create it, or replace a previous demo's products in it.

    A non-empty folder without the demo marker is never touched (SynergyError).
    """
    if output.exists() and any(output.iterdir()):
        if not (output / MARKER).is_file():
            raise SynergyError(f"{output} exists and was not written by `synergy demo`; "
                               "choose another --output or empty it")
        for name in _DEMO_PRODUCTS:
            path = output / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    output.mkdir(parents=True, exist_ok=True)


# ---------------------------------------------------------------------------------------------
# Recording what goes over DDS
# ---------------------------------------------------------------------------------------------
class Recorder:
    """Subscribes to the demo's topics on ``node`` and writes what arrives to a bag.

    Bag time is the receive time (ns, like ``ros2 bag record``). Per topic it keeps the set
    of received header stamps; ``keep_stamp`` selects one frame whose messages are kept in
    memory for the README picture.
    """

    def __init__(self, node, bag_path: Path, topics: dict[str, str]) -> None:
        """Create reliable subscriptions for every topic (type names as in a bag)."""

        self.writer = BagWriter(bag_path, storage="mcap").open()
        self.stamps: dict[str, list[int]] = {topic: [] for topic in topics}
        self.kept: dict[str, object] = {}
        self.keep_stamp: int | None = None
        self.condition = threading.Condition()
        qos = qos_profile(reliable=True, depth=50)
        self.subscriptions = [node.create_subscription(message_class(msgtype), topic,
                                                       self._callback(topic), qos)
                              for topic, msgtype in topics.items()]

    def _callback(self, topic: str):
        def callback(msg) -> None:
            stamp = stamp_ns(msg)
            if self.writer is not None:
                self.writer.write(topic, msg, time.time_ns())
            with self.condition:
                self.stamps[topic].append(stamp)
                if stamp == self.keep_stamp:
                    self.kept[topic] = msg
                self.condition.notify_all()
        return callback

    def wait_for(self, topics: Iterable[str], stamp: int, timeout_s: float) -> list[str]:
        """Wait until every topic received ``stamp``; returns the topics still missing."""
        topics = list(topics)
        deadline = time.monotonic() + timeout_s
        with self.condition:
            while True:
                missing = [t for t in topics if stamp not in self.stamps[t]]
                left = deadline - time.monotonic()
                if not missing or left <= 0:
                    return missing
                self.condition.wait(min(left, 0.1))

    def close(self) -> None:
        """Finish the bag (after the executor has stopped calling back)."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()


# ---------------------------------------------------------------------------------------------
# The node process
# ---------------------------------------------------------------------------------------------
def node_command(model: Path, cache_dir: Path) -> list[str]:
    """The ``synergy_node`` command line: /synergy namespace, camera remaps, reliable input.

    ``cache_dir`` receives the node's exported ONNX file (kept between demo runs), so the
    model's folder may be read-only.
    """
    return [sys.executable, "-m", "synergy_ros.ros.node", "--ros-args",
            "-r", f"__ns:={NAMESPACE}",
            "-r", "image:=/camera/image_raw",  # camera_info: beside it, /camera/camera_info
            "-p", f"model:={model}", "-p", "qos_reliability:=reliable",
            "-p", "device:=cpu", "-p", f"engine_cache_dir:={cache_dir.resolve()}"]


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(process: subprocess.Popen, timeout_s: float = 20.0) -> int:
    """SIGINT (as Ctrl-C), then SIGTERM, then SIGKILL; returns the exit code."""
    for sig, wait in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            break
        process.send_signal(sig)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    return process.wait()


# ---------------------------------------------------------------------------------------------
# The demo
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class DemoResult:
    """Where the outputs are, frame counts in and out, and the evaluation result."""

    output: Path
    model: Path
    model_note: str
    frames_in: int
    frames_out: dict[str, int]
    drops: dict[str, int]
    foreign_stamps: int
    seconds: dict[str, float]
    metrics: dict
    files: dict[str, Path]
    notes: list[str]

    @property
    def ok(self) -> bool:
        """True when every output topic has exactly one message per input frame."""
        return not any(self.drops.values()) and not self.foreign_stamps


def run_demo(options: DemoOptions) -> DemoResult:
    """Run the whole demo (see the module docstring); raises SynergyError on failure."""

    if options.frames < 1 or options.height < 16 or options.width < 16:
        raise SynergyError("--frames must be >= 1 and the image at least 16 x 16 pixels")
    output = Path(options.output)
    prepare_output(output)
    env, notes = dds_environment()
    seconds: dict[str, float] = {}
    started = time.monotonic()

    model, model_note = _demo_model(options, output)
    for note in notes:
        _say(note)
    _say(f"model: {model_note}")
    marker = {"model": str(model), "frames": options.frames, "started": time.time()}
    atomic_write_text(output / MARKER, json.dumps(marker, indent=2) + "\n")

    input_bag = output / "input_bag"
    _say(f"[1/4] writing a synthetic scene bag ({options.frames} frames, "
         f"{options.width}x{options.height}) to {input_bag}")
    write_synthetic_bag(input_bag, options.frames, options.height, options.width,
                        seed=options.seed, fps=options.fps, show_progress=options.progress)
    seconds["write_bag"] = time.monotonic() - started

    log_path = output / "node.log"
    _say(f"[2/4] starting synergy_node (namespace {NAMESPACE}, log {log_path})")
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(node_command(model, output / ".synergy_cache"), env=env,
                                   stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        counts = _play_and_record(options, input_bag, output / "bag", process, log_path,
                                  seconds, notes)
    finally:
        code = stop_process(process)
        if code not in (0, -signal.SIGINT, 130):
            notes.append(f"synergy_node exited with code {code} (see {log_path})")
    frames_in, frames_out, foreign, kept = counts
    drops = {topic: frames_in - count for topic, count in frames_out.items()}

    t0 = time.monotonic()
    _say(f"[4/4] evaluating {output / 'bag'} (prediction mode)")
    metrics, files = _evaluate(output, kept, options)
    seconds["evaluate"] = time.monotonic() - t0
    seconds["total"] = time.monotonic() - started
    result = DemoResult(output=output, model=model, model_note=model_note, frames_in=frames_in,
                        frames_out=frames_out, drops=drops, foreign_stamps=foreign,
                        seconds=seconds, metrics=metrics, files=files, notes=notes)
    _write_summary(result)
    return result


def _say(text: str) -> None:
    print(f"synergy demo: {text}", file=sys.stderr, flush=True)


def _demo_model(options: DemoOptions, output: Path) -> tuple[Path, str]:
    if options.model:
        path = Path(options.model)
        if not path.is_file():
            raise SynergyError(f"--model {path} does not exist")
        return path.resolve(), f"model {path}"
    bundled = find_bundled_model()
    if bundled is not None:
        return bundled, f"bundled demo model {bundled}"
    path = build_untrained_model(output / "untrained_demo_model.pt", seed=options.seed)
    searched = ", ".join(str(p) for p in model_search_paths())
    return path.resolve(), (f"UNTRAINED network (random weights) written to {path}: the bundled "
                            f"{BUNDLED_MODEL} was not found ({searched}), so its metrics "
                            "mean nothing (the pipeline is real)")


def _play_and_record(options: DemoOptions, input_bag: Path, bag_path: Path,
                     process: subprocess.Popen, log_path: Path, seconds: dict,
                     notes: list[str]) -> tuple[int, dict[str, int], int, dict]:
    """Play ``input_bag`` to the node in lockstep while recording; returns the counts."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from tqdm import tqdm

    image_stamps = [stamp_ns(m.message) for m in bagio.iter_messages(input_bag, [IMAGE_TOPIC])]
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("synergy_demo", context=context)
    recorder = Recorder(node, bag_path, {**INPUT_TOPICS, **RECORDED_OUTPUTS})
    recorder.keep_stamp = image_stamps[len(image_stamps) // 2]
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, name="demo-executor", daemon=True)
    spinner.start()
    try:
        player = Player(node, dict(INPUT_TOPICS), ReplayOptions(rate=1.0))
        t0 = time.monotonic()
        _wait_for_node(node, player, process, log_path, options.node_start_timeout_s)
        seconds["node_start"] = time.monotonic() - t0
        _say(f"[3/4] node ready after {seconds['node_start']:.1f} s: playing the bag over DDS "
             f"and recording inputs and outputs to {bag_path}")
        previous: list[int | None] = [None]
        bar = tqdm(total=len(image_stamps), unit="frame", desc="node frames",
                   disable=not options.progress)

        def before_publish(message) -> None:
            if message.topic != IMAGE_TOPIC:
                return
            if previous[0] is not None:
                _await_outputs(recorder, previous[0], options.frame_timeout_s, process,
                               log_path)
                bar.update(1)
            previous[0] = stamp_ns(message.message)
            # the node's camera_info for this frame went out just before: let DDS deliver it
            recorder.wait_for(["/camera/camera_info"], previous[0], 2.0)

        t0 = time.monotonic()
        stats = player.play(lambda: camera_info_first(bagio.iter_messages(input_bag)),
                            before_publish=before_publish,
                            stop=lambda: process.poll() is not None)
        if stats.interrupted:
            raise KeyboardInterrupt
        if previous[0] is not None:
            _await_outputs(recorder, previous[0], options.frame_timeout_s, process, log_path)
            bar.update(1)
        bar.close()
        seconds["node_frames"] = time.monotonic() - t0
        time.sleep(0.3)  # any late duplicate would show up now
    finally:
        executor.shutdown()
        spinner.join(timeout=5.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        recorder.close()
    wanted = set(image_stamps)
    frames_out = {topic: len(set(recorder.stamps[topic]) & wanted) for topic in RECORDED_OUTPUTS}
    foreign = sum(len([s for s in recorder.stamps[t] if s not in wanted]) for t in RECORDED_OUTPUTS)
    duplicates = sum(len(recorder.stamps[t]) - len(set(recorder.stamps[t]))
                     for t in RECORDED_OUTPUTS)
    if duplicates:
        notes.append(f"{duplicates} output messages repeated a stamp")
    kept = dict(recorder.kept)
    return len(image_stamps), frames_out, foreign, kept


def _wait_for_node(node, player, process, log_path: Path, timeout_s: float) -> None:
    """Wait until the node subscribes to the camera and publishes all outputs (discovery)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise SynergyError(f"synergy_node exited with code {process.returncode} before it "
                               f"was ready; its log ({log_path}):\n{_log_tail(log_path)}")
        camera_ready = all(player.publishers[t].get_subscription_count() >= 2
                           for t in ("/camera/image_raw", "/camera/camera_info"))
        outputs_ready = all(node.count_publishers(t) >= 1 for t in RECORDED_OUTPUTS)
        if camera_ready and outputs_ready:
            time.sleep(0.5)  # let the node's publishers match our subscriptions as well
            return
        if time.monotonic() > deadline:
            raise SynergyError(f"synergy_node was not ready after {timeout_s:.0f} s (camera "
                               f"subscribed: {camera_ready}, outputs advertised: "
                               f"{outputs_ready}); its log ({log_path}):\n{_log_tail(log_path)}")
        time.sleep(0.1)


def _await_outputs(recorder: Recorder, stamp: int, timeout_s: float, process,
                   log_path: Path) -> None:
    missing = recorder.wait_for(RECORDED_OUTPUTS, stamp, timeout_s)
    if missing and process.poll() is not None:
        raise SynergyError(f"synergy_node died (exit {process.returncode}); its log "
                           f"({log_path}):\n{_log_tail(log_path)}")


def _evaluate(output: Path, kept: dict, options: DemoOptions) -> tuple[dict, dict[str, Path]]:
    """Prediction-mode evaluation of the recorded bag plus the README strip and the PLY."""

    images = output / "images"
    evaluator = Evaluator(EvaluateOptions(
        bag=output / "bag", gt_topic="/camera/depth_gt", pred_topic=f"{NAMESPACE}/depth",
        pred_semantic_topic=f"{NAMESPACE}/semantic", semantic_gt_topic="/camera/semantic_gt",
        label_set="synthetic", csv_path=output / "frames.csv", plots_dir=images,
        num_samples=3, progress=options.progress))
    evaluator.run()
    files = evaluator.write_outputs()
    files.update(_strip_and_cloud(output, kept, images))
    return json_safe(evaluator.result), files


def _strip_and_cloud(output: Path, kept: dict, images: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    needed = (IMAGE_TOPIC, f"{NAMESPACE}/depth", f"{NAMESPACE}/semantic_color",
              f"{NAMESPACE}/points")
    if not all(topic in kept for topic in needed):
        return files
    rgb = image_to_rgb(kept[IMAGE_TOPIC])
    depth = depth_from_image(kept[f"{NAMESPACE}/depth"])
    semantic = image_to_rgb(kept[f"{NAMESPACE}/semantic_color"])
    cloud = pointcloud2_to_array(kept[f"{NAMESPACE}/points"])
    xyz = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=-1).reshape(-1, 3)
    colours = unpack_rgb(cloud["rgb"]).reshape(-1, 3)
    labels = np.asarray(cloud["label"]).reshape(-1) if "label" in cloud.dtype.names else None
    height = max(rgb.shape[0], 180)
    reference = depth_from_image(kept["/camera/depth_gt"]) if "/camera/depth_gt" in kept \
        else depth
    finite = reference[np.isfinite(reference)]  # colour scale of the scene, not the guess
    max_depth = float(np.percentile(finite, 99)) if finite.size else 10.0
    strip = report.panel_strip([
        ("input", rgb), ("depth", report.colorize_depth(depth, max_depth)),
        ("semantic", semantic),
        ("cloud", report.render_cloud_view(xyz, colours, height, int(height * 4 / 3)))],
        height=height)
    files["strip"] = report.write_png(images / "demo_strip.png", strip)
    write_ply(output / "cloud.ply", xyz, colours, labels)
    files["ply"] = output / "cloud.ply"
    return files


def _write_summary(result: DemoResult) -> None:
    """metrics.json (evaluation + demo counts) and report.md."""

    output = result.output
    demo = {"model": str(result.model), "model_note": result.model_note,
            "frames_in": result.frames_in, "frames_out": result.frames_out,
            "drops": result.drops, "foreign_stamps": result.foreign_stamps,
            "seconds": result.seconds, "notes": result.notes}
    metrics = dict(result.metrics, demo=demo)
    atomic_write_text(output / "metrics.json",
                      json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")
    result.files["json"] = output / "metrics.json"
    images = []
    if "strip" in result.files:
        images.append(("input | depth | semantic | cloud", "images/demo_strip.png"))
    images += [(path.stem.replace("_", " "), f"images/{path.name}")
               for path in sorted((output / "images").glob("*.png"))
               if path.name != "demo_strip.png"]
    text = report.result_markdown(result.metrics, images)
    text += "\n## Demo\n\n" + demo_markdown(result) + "\n"
    atomic_write_text(output / "report.md", text)
    result.files["markdown"] = output / "report.md"


def demo_markdown(result: DemoResult) -> str:
    """Frames in/out table and how to look at the outputs."""
    lines = [f"- model: {result.model_note}",
             f"- frames in (camera images published): {result.frames_in}", "",
             "| output topic | frames out | dropped |", "|---|---:|---:|"]
    lines += [f"| {topic} | {count} | {result.drops[topic]} |"
              for topic, count in result.frames_out.items()]
    lines += ["", f"- outputs with a stamp that is no input image's: {result.foreign_stamps}",
              "- time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items())]
    lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines)


def how_to_view(result: DemoResult) -> str:
    """The closing message: where everything is and how to look at it."""
    out = result.output
    return "\n".join([
        "", "Demo outputs:",
        f"  bag (inputs + node outputs, MCAP): {out / 'bag'}",
        f"  metrics:  {out / 'metrics.json'}   report: {out / 'report.md'}",
        f"  pictures: {out / 'images'} (demo_strip.png: input | depth | semantic | cloud)",
        f"  cloud:    {out / 'cloud.ply'} (opens in MeshLab, CloudCompare, Blender)",
        "", "Look at it:",
        f"  rviz2:     synergy replay {out / 'bag'} --loop   (or: ros2 bag play "
        f"{out / 'bag'} --loop)",
        f"             rviz2 -d {rviz_config()}   (fixed frame camera_optical_frame)",
        f"  Foxglove:  open {out / 'bag'}/bag.mcap in Foxglove Studio (no ROS needed)",
        f"  evaluate again: synergy evaluate --bag {out / 'bag'} --pred-topic "
        f"{NAMESPACE}/depth --pred-semantic-topic {NAMESPACE}/semantic --label-set synthetic "
        "--gt-topic /camera/depth_gt --semantic-gt-topic /camera/semantic_gt",
    ])
