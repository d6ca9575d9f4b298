"""The synergy ROS 2 node: camera image in; depth, semantic mask and PointCloud2 out.

``ros2 run synergy_ros synergy_node --ros-args --params-file config/synergy.yaml
-r __ns:=/synergy -r image:=/camera/color/image_raw`` (camera_info is read beside the image,
as image_transport does; without ``model`` the bundled demo model runs)

Topics (relative, remappable) and parameters: docs/node.md and synergy_ros.ros.params.
The executor thread only converts and hands frames to a :class:`FrameWorker`; inference runs
on its worker thread and building + publishing the outputs on its publish thread, so the next
frame's inference overlaps this frame's publishing (``publish_thread``; newest frame wins,
drops counted).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.geometry import PinholeIntrinsics
from synergy_ros.core.labels import palette_lut
from synergy_ros.ros import params as node_params
from synergy_ros.ros.camera_channel import CameraChannel, CameraSnapshot
from synergy_ros.ros.conversions import camera_info_to_intrinsics, compressed_to_rgb, image_to_rgb
from synergy_ros.ros.diagnostics import PipelineSnapshot, to_diagnostic_array
from synergy_ros.ros.navigation import NavigationConfig, NavigationOutputs
from synergy_ros.ros.outputs import OUTPUT_TOPICS, prediction_messages, sibling_topic
from synergy_ros.ros.profiling import FrameSpans, ProfileStats
from synergy_ros.ros.qos import qos_profile
from synergy_ros.ros.worker import FrameWorker, LatencyStats, RateMeter
from synergy_ros.runtime import load_predictor

THROTTLE_S = 5.0
#: The model a node runs when its ``model`` parameter is empty (installed with the package).
BUNDLED_MODEL = "synergy_demo_r18.pt"


def bundled_model_candidates() -> list[Path]:
    """Where the bundled model may lie, in the order they are tried.

    The package's share directory found through ament_index (a colcon / apt install), the
    ``share/synergy_ros`` of this Python environment (a pip install), then ``models/`` beside
    the package in a source checkout (``pip install -e``, PYTHONPATH).
    """
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory

        try:
            candidates.append(Path(get_package_share_directory("synergy_ros")) / "models")
        except (LookupError, OSError, ValueError):  # not registered / AMENT_PREFIX_PATH unset
            pass
    except ImportError:
        pass
    candidates.append(Path(sys.prefix) / "share" / "synergy_ros" / "models")
    candidates.append(Path(__file__).resolve().parents[2] / "models")
    return [folder / BUNDLED_MODEL for folder in candidates]


def bundled_model() -> Path:
    """The bundled demo model file (see :func:`bundled_model_candidates`).

    Raises:
        SynergyError: when none of the places holds it, naming them.
    """
    candidates = bundled_model_candidates()
    for path in candidates:
        if path.is_file():
            return path
    raise SynergyError(
        "parameter 'model' is empty and the bundled model was not found (looked for "
        f"{', '.join(str(path) for path in candidates)}): pass -p model:=/path/to/model.pt "
        "(or .onnx/.engine) or set it in config/synergy.yaml")


@dataclasses.dataclass
class Frame:
    """A received camera frame waiting for inference.

    ``rgb`` (H, W, 3) uint8 for raw images (a view on the message data where possible);
    ``compressed`` the CompressedImage still to decode (decoded on the worker thread).
    ``received`` is time.perf_counter() at the callback; ``spans`` the frame's stage timings
    when the ``profile`` parameter is on.
    """

    header: Any
    received: float
    rgb: np.ndarray | None = None
    compressed: Any = None
    spans: FrameSpans | None = None


class SynergyPipeline:
    """The node's work, shared by :class:`SynergyNode` and the lifecycle variant.

    Phases (called by the node classes): :meth:`_declare` (parameters), :meth:`_configure`
    (model, publishers, worker thread), :meth:`_activate` (subscriptions, diagnostics timer),
    :meth:`_deactivate` and :meth:`_cleanup` (reverse order). Mixed into an rclpy Node.

    Every camera is a :class:`CameraChannel` (one with the empty name unless the ``cameras``
    parameter lists several); the worker thread takes the newest pending frame of every
    camera that has one and runs them as one batch (:meth:`_process_batch`).
    """

    _worker: FrameWorker | None = None
    _predictor = None
    _diag_timer = None
    _channels: list[CameraChannel] = []

    def _declare(self) -> None:
        # Only Humble-era rclpy parameter APIs (docs/node.md): the on-set callback validates;
        # changes are applied by the set_parameters* overrides below, after rclpy stored them
        # (add_post_set_parameters_callback came after Humble).
        self.add_on_set_parameters_callback(node_params.on_set_callback)
        self.add_on_set_parameters_callback(self._check_navigation_change)
        self._settings = node_params.declare_all(self)
        cameras = node_params.declare_cameras(self, self._settings)
        self._channels = ([CameraChannel(name, overrides) for name, overrides in cameras.items()]
                          or [CameraChannel()])
        self._channel_by_name = {channel.name: channel for channel in self._channels}
        self._input_rate, self._output_rate = RateMeter(), RateMeter()
        self._latency, self._inference = LatencyStats(), LatencyStats()
        self._received = self._bad = self._skipped = self._reported_errors = 0
        self._frame_errors = 0  # frames whose publishing failed (others of the batch went on)
        # errors and drops of workers stopped by a lifecycle cleanup: the reported counts
        # stay cumulative (and new_errors >= 0) across configure -> cleanup -> configure
        self._errors_before = self._dropped_before = 0
        self._dropped_before_by_key: collections.Counter = collections.Counter()
        self._batch_sizes_before: collections.Counter = collections.Counter()
        self._count_lock = threading.Lock()
        self._profile = ProfileStats()

    # the single camera's objects under the names they had before several cameras
    @property
    def _pubs(self) -> dict:
        return self._channels[0].pubs if self._channels else {}

    @property
    def _image_sub(self):
        return self._channels[0].image_sub if self._channels else None

    @property
    def _info_sub(self):
        return self._channels[0].info_sub if self._channels else None

    @property
    def _intrinsics(self) -> PinholeIntrinsics | None:
        return self._channels[0].intrinsics if self._channels else None

    @property
    def _navigation(self) -> NavigationOutputs | None:
        """The navigation settings and class roles, the same for every camera (each camera
        has its own scale estimator); None before configure."""
        return self._channels[0].navigation if self._channels else None

    def _make_publisher(self, msg_type, topic: str, qos):
        return self.create_publisher(msg_type, topic, qos)

    def _navigation_config(self, channel: CameraChannel) -> NavigationConfig:
        """The camera's navigation settings: node-wide, with its own ``NAME.camera_height`` /
        ``NAME.camera_pitch`` when given (cameras mounted differently)."""
        settings = {**self._settings, **{key: channel.overrides[key] for key in
                                         ("camera_height", "camera_pitch")
                                         if key in channel.overrides}}
        try:
            return NavigationConfig.from_settings(settings)
        except SynergyError as exc:
            own = (f" (or this camera's own {channel.name}.camera_height / "
                   f"{channel.name}.camera_pitch)" if channel.name else "")
            raise SynergyError(f"{channel.label}{exc}{own}") from None

    def _configure(self, predictor=None) -> None:
        # checked before a slow model load
        navigation = {channel.name: self._navigation_config(channel)
                      for channel in self._channels}
        self._predictor = predictor if predictor is not None else self._load_predictor()
        meta = self._predictor.meta
        self._palette = palette_lut(meta.palette, meta.num_classes)
        s = self._settings
        for channel in self._channels:  # one scale estimator per camera
            channel.navigation = NavigationOutputs(navigation[channel.name], meta.class_names)
        out_qos = qos_profile(s["output_qos_reliability"] == "reliable", s["output_qos_depth"])
        for channel in self._channels:
            self._create_publishers(channel, out_qos)
        from diagnostic_msgs.msg import DiagnosticArray

        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if s["publish_thread"]:  # the next batch's inference overlaps this one's publishing
            self._worker = FrameWorker(self._infer_batch, self._on_worker_error,
                                       s["queue_policy"], batch=True,
                                       finish=self._publish_batch)
        else:
            self._worker = FrameWorker(self._process_batch, self._on_worker_error,
                                       s["queue_policy"], batch=True)

    def _create_publishers(self, channel: CameraChannel, qos) -> None:
        """The camera's output publishers (``NAME/depth`` ...; ``depth`` ... for one camera)."""
        types = {"depth": Image, "depth_info": CameraInfo, "camera_info": CameraInfo,
                 "semantic": Image, "semantic_color": Image, "points": PointCloud2,
                 "attention": Image, "obstacles": PointCloud2, "ground": PointCloud2}
        channel.pubs = {}
        for key, topic in OUTPUT_TOPICS.items():
            if key == "attention" and not self._settings["publish_attention"]:
                continue
            if key in ("obstacles", "ground") and self._navigation.roles is None:
                continue  # no class roles (reason in _navigation.unavailable): never published
            if key == "camera_info":  # beside the images, after depth resolved its name
                topic = self._output_info_topic(channel, channel.pubs["depth"].topic_name)
                if topic is None:
                    continue
            else:
                topic = channel.topic(topic)
            channel.pubs[key] = self._make_publisher(types[key], topic, qos)

    def _activate(self) -> None:
        s = self._settings
        in_qos = qos_profile(s["qos_reliability"] == "reliable", s["qos_depth"])
        for channel in self._channels:
            if s["use_compressed"]:
                channel.image_sub = self.create_subscription(
                    CompressedImage, channel.topic("image/compressed"),
                    functools.partial(self._on_compressed, channel), in_qos)
            else:
                channel.image_sub = self.create_subscription(
                    Image, channel.topic("image"), functools.partial(self._on_image, channel),
                    in_qos)
            channel.info_sub = self.create_subscription(
                CameraInfo, self._input_info_topic(channel),
                functools.partial(self._on_camera_info, channel), in_qos)
        self._diag_timer = self.create_timer(s["diagnostics_period"], self._publish_diagnostics)
        describe = self._predictor.describe() if hasattr(self._predictor, "describe") else {}
        inputs = ", ".join(f"{channel.image_sub.topic_name} + {channel.info_sub.topic_name}"
                           for channel in self._channels)
        cameras = (f"{len(self._channels)} cameras batched "
                   f"(max batch {describe.get('max_batch') or 'any'}): "
                   if len(self._channels) > 1 else "")
        self.get_logger().info(
            f"synergy_node active: {cameras}{inputs} -> depth, semantic, points; "
            f"model {s['model'] or describe.get('model')} (runs {describe.get('model')}), "
            f"backend {getattr(self._predictor, 'backend_name', '?')} on "
            f"{describe.get('device', '?')}, input {self._predictor.input_size}, "
            f"{self._predictor.meta.num_classes} classes")
        navigation = self._navigation
        if navigation.roles is not None and navigation.config.needs_roles:
            mounts = ", ".join(
                f"{channel.label}camera_height {channel.navigation.config.scale.camera_height:g}"
                f" m, pitch {channel.navigation.config.pitch_deg:g} deg"
                for channel in self._channels if channel.navigation.config.scale is not None)
            self.get_logger().info(
                f"navigation: ground classes {', '.join(navigation.roles.ground) or 'none'}; "
                f"ignored {', '.join(navigation.roles.ignored) or 'none'}; scale correction "
                + (f"ground_plane ({mounts})" if navigation.config.scale is not None
                   else "off"))

    def _deactivate(self) -> None:
        for channel in self._channels:
            for sub in (channel.image_sub, channel.info_sub):
                if sub is not None:
                    self.destroy_subscription(sub)
            channel.image_sub = channel.info_sub = None
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
        self._diag_timer = None

    def _cleanup(self, keep=None) -> None:
        """Stop the worker (after its current frame) and release the predictor.

        Args:
            keep: a predictor not to close (the lifecycle node's injected one, which the next
                ``configure`` uses again); any other predictor is closed.
        """
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()
            self._errors_before += worker.errors
            self._dropped_before += worker.dropped
            self._dropped_before_by_key.update(worker.dropped_by_key)
            self._batch_sizes_before.update(worker.batch_size_counts())
        predictor, self._predictor = self._predictor, None
        if predictor is not None and predictor is not keep and hasattr(predictor, "close"):
            predictor.close()

    # ---- setup -------------------------------------------------------------------------
    def _input_info_topic(self, channel: CameraChannel) -> str:
        """The camera's camera_info input: ``camera_info`` (``NAME/camera_info``) where the user
        remapped that name, else the sibling of the resolved input image topic, as
        image_transport's CameraSubscriber takes it (``image:=/camera/color/image_raw`` ->
        ``/camera/color/camera_info``)."""
        relative = channel.topic("camera_info")
        if (self.resolve_topic_name(relative)
                != self.resolve_topic_name(relative, only_expand=True)):
            return relative
        image = self.resolve_topic_name(channel.topic("image"))
        if self._settings["use_compressed"]:  # image_transport's base topic of .../compressed
            compressed = self.resolve_topic_name(channel.topic("image/compressed"))
            if compressed.endswith("/compressed"):
                image = compressed[:-len("/compressed")]
        return sibling_topic(image, "camera_info")

    def _output_info_topic(self, channel: CameraChannel, depth_topic: str) -> str | None:
        """The ``camera_info`` output beside ``depth_topic`` (resolved), or None with a
        warning when that name is the camera_info input or a remap rule sends it elsewhere
        (it would then feed the node its own output, or the camera's topic)."""
        topic = sibling_topic(depth_topic, "camera_info")
        remapped = self.resolve_topic_name(topic)
        camera = self.resolve_topic_name(self._input_info_topic(channel))
        if remapped == topic and topic != camera:
            return topic
        image = channel.topic("image")
        self.get_logger().warning(
            f"{channel.label}not publishing camera_info beside the images: {topic} is "
            f"{'the camera_info input' if topic == camera else f'remapped to {remapped}'}; "
            f"consumers pairing {depth_topic} with {topic} (depth_image_proc, rviz2 DepthCloud) "
            "will wait. Run the node in its own namespace (the launch file's /synergy) and "
            f"remap only {image} (camera_info is then read beside the image, as "
            "image_transport does), not camera_info. depth/camera_info carries the same "
            "CameraInfo.")
        return None

    def _load_predictor(self):
        s = self._settings
        model = s["model"]
        if not model:
            model = str(bundled_model())
            self.get_logger().info(f"parameter 'model' is empty: running the bundled demo "
                                   f"model {model} (trained on synthetic scenes; pass -p "
                                   "model:=/path/to/model.pt for your own)")
        width, height = s["input_width"], s["input_height"]
        if bool(width) != bool(height):
            raise SynergyError(f"set both input_width and input_height (got {width}x{height}),"
                               " or leave both 0 for the model's own input size")
        return load_predictor(
            model, backend=s["backend"], device=s["device"], precision=s["precision"],
            engine_cache_dir=s["engine_cache_dir"] or None,
            input_size=(height, width) if width else None,
            output_resolution=s["output_resolution"], with_attention=s["publish_attention"],
            num_threads=s["num_threads"] or None,
            # onnxruntime threads spinning after each run would take the cores the worker
            # needs to build and publish the outputs (benchmarks/results/node_cpu.md)
            thread_spinning=False,
            # one batch holds a frame of every camera: a .pt exports with a dynamic batch
            # axis (TensorRT: an optimisation profile 1..N), cached under its own key
            max_batch=len(self._channels))

    # ---- parameter changes (ros2 param set / load, Node.set_parameters) -----------------
    def set_parameters(self, parameter_list: list) -> list:
        """rclpy's ``Node.set_parameters``, then apply the stored values to the pipeline."""
        results = super().set_parameters(parameter_list)
        self._apply_parameters(parameter_list)
        return results

    def set_parameters_atomically(self, parameter_list: list) -> Any:
        """rclpy's ``Node.set_parameters_atomically`` (what the parameter services call on
        every distribution), then apply the stored values to the pipeline."""
        result = super().set_parameters_atomically(parameter_list)
        self._apply_parameters(parameter_list)
        return result

    def _apply_parameters(self, changed: list = ()) -> None:
        """Copy the node's parameter values, as rclpy stored them, into the live settings.

        Called after rclpy has set (or rejected) the values, so a change another on-set
        callback rejected never reaches the pipeline; works on Humble, which has no
        post-set callback.
        """
        settings = getattr(self, "_settings", None)
        if settings is None:  # not declared yet
            return
        for name in settings:
            settings[name] = node_params.current_value(self, name)
        for parameter in changed:  # a per-camera value set while running now overrides
            camera, _, key = parameter.name.partition(".")
            channel = self._channel_by_name.get(camera) if camera else None
            if (channel is not None and key in node_params.PER_CAMERA
                    and self.get_parameter(parameter.name).value == parameter.value):
                channel.overrides[key] = parameter.value
        for channel in self._channels:
            for key in channel.overrides:
                channel.overrides[key] = self.get_parameter(f"{channel.name}.{key}").value
        if self._worker is not None:
            self._worker.policy = settings["queue_policy"]

    # ---- executor-thread callbacks (fast: never wait for inference) ----------------------
    def _drop_bad(self, channel: CameraChannel, what: str, exc: Exception) -> None:
        with self._count_lock:  # called from the executor and the worker thread
            self._bad += 1
        count = channel.count("bad")
        if channel.log_due("bad", THROTTLE_S):
            self.get_logger().warning(
                f"{channel.label}dropping bad {what} message ({count} so far): {exc}")

    def _count_received(self, channel: CameraChannel) -> None:
        self._received += 1
        self._input_rate.tick()
        channel.count("received")
        channel.input_rate.tick()

    def _on_image(self, channel: CameraChannel, msg: Image) -> None:
        received = time.perf_counter()
        self._count_received(channel)
        spans = FrameSpans(received) if self._settings["profile"] else None
        try:
            rgb = image_to_rgb(msg)
        except ValueError as exc:
            self._drop_bad(channel, "image", exc)
            return
        if spans is not None:
            spans.mark("convert")
        self._submit(channel, Frame(msg.header, received, rgb=rgb, spans=spans))

    def _on_compressed(self, channel: CameraChannel, msg: CompressedImage) -> None:
        received = time.perf_counter()
        self._count_received(channel)
        spans = FrameSpans(received) if self._settings["profile"] else None
        self._submit(channel, Frame(msg.header, received, compressed=msg, spans=spans))

    def _submit(self, channel: CameraChannel, frame: Frame) -> None:
        worker = self._worker
        if worker is not None:
            worker.submit(frame, key=channel.name)
            # hand the GIL to the woken worker now instead of when the executor next blocks
            # in rcl_wait: the hand-off's p50 fell from 0.78 to 0.15 ms (benchmarks/
            # results/node_cpu.md, "handoff")
            time.sleep(0)

    def _on_camera_info(self, channel: CameraChannel, msg: CameraInfo) -> None:
        try:
            channel.intrinsics = camera_info_to_intrinsics(msg)
        except ValueError as exc:
            self._drop_bad(channel, "camera_info", exc)

    # ---- worker thread -----------------------------------------------------------------
    def _wanted(self, channel: CameraChannel) -> dict[str, bool]:
        """Which of the camera's outputs are enabled and have a subscriber right now."""
        s = self._settings

        def subscribed(key: str) -> bool:
            return key in channel.pubs and channel.pubs[key].get_subscription_count() > 0

        images = s["publish_depth"] or s["publish_semantic"] or s["publish_semantic_color"]
        return {"depth": s["publish_depth"] and subscribed("depth"),
                "depth_info": s["publish_depth"] and subscribed("depth_info"),
                "camera_info": images and subscribed("camera_info"),
                "semantic": s["publish_semantic"] and subscribed("semantic"),
                "semantic_color": s["publish_semantic_color"] and subscribed("semantic_color"),
                "points": channel.setting("publish_points", s) and subscribed("points"),
                "attention": subscribed("attention"),
                "obstacles": s["publish_obstacles"] and subscribed("obstacles"),
                "ground": s["publish_ground"] and subscribed("ground")}

    def _camera_intrinsics(self, channel: CameraChannel, width: int,
                           height: int) -> PinholeIntrinsics | None:
        """Intrinsics of the camera's width x height image (camera_info or fallback_fov)."""
        intrinsics = channel.intrinsics
        if intrinsics is not None:
            if (intrinsics.width, intrinsics.height) != (width, height):
                if channel.log_due("camera_info_size", 30.0):
                    self.get_logger().warning(
                        f"{channel.label}camera_info is for {intrinsics.width}x"
                        f"{intrinsics.height} but images are {width}x{height}; scaling the "
                        "intrinsics")
                intrinsics = intrinsics.scaled(width, height)
            return intrinsics
        fov = channel.setting("fallback_fov", self._settings)
        if fov > 0:
            return PinholeIntrinsics.from_fov(math.radians(fov), width, height)
        topic = (channel.info_sub.topic_name if channel.info_sub is not None
                 else channel.topic("camera_info"))
        if channel.log_due("no_camera_info", 10.0):
            self.get_logger().warning(
                f"{channel.label}no camera_info on {topic} yet: publishing depth and masks, "
                f"the point cloud waits (set {channel.topic('').replace('/', '.')}fallback_fov "
                "to assume a field of view)")
        return None

    def _prepare(self, channel: CameraChannel,
                 frame: Frame) -> tuple[np.ndarray, dict[str, bool]] | None:
        """(RGB image (H, W, 3) uint8, wanted outputs) of a frame taken by the worker, or None
        when it is dropped here (an undecodable compressed image, nobody subscribed)."""
        spans = frame.spans
        if spans is not None:
            spans.mark("handoff")
        rgb = frame.rgb
        if frame.compressed is not None:
            try:
                rgb = compressed_to_rgb(frame.compressed)
            except ValueError as exc:
                self._drop_bad(channel, "compressed image", exc)
                return None
            if spans is not None:
                spans.mark("decompress")
        wanted = self._wanted(channel)
        if not any(wanted.values()):
            self._skipped += 1
            channel.count("skipped")
            return None
        if spans is not None:
            spans.mark("wanted")
        return rgb, wanted

    def _process_batch(self, frames: dict[str, Frame]) -> None:
        """Infer and publish on one thread (``publish_thread: false``)."""
        inferred = self._infer_batch(frames)
        if inferred is not None:
            self._publish_batch(inferred)

    def _infer_batch(self, frames: dict[str, Frame]) -> list | None:
        """Run the newest pending frame of each camera (``{camera name: Frame}``) through the
        model in one batch (worker thread).

        Returns:
            ``[(channel, frame, rgb, wanted, prediction), ...]`` for :meth:`_publish_batch`
            (on the publish thread with ``publish_thread``), or None when no frame is wanted.

        A failing model call fails the whole batch (counted once by the worker, and as an
        error of every camera in it).
        """
        ready = []
        for name, frame in frames.items():
            channel = self._channel_by_name[name]
            prepared = self._prepare(channel, frame)
            if prepared is not None:
                ready.append((channel, frame, *prepared))
        if not ready:
            return
        t0 = time.perf_counter()
        try:
            if len(ready) == 1:  # a predictor's own predict() (the one-camera node's path)
                predictions = [self._predictor.predict(ready[0][2])]
            else:
                predictions = self._predictor.predict_batch([item[2] for item in ready])
        except Exception:
            for channel, *_ in ready:
                channel.count("errors")
            raise
        self._inference.add((time.perf_counter() - t0) * 1e3)
        for (_, frame, _, _), prediction in zip(ready, predictions):
            if frame.spans is not None:
                frame.spans.mark("predict")
                for stage, value in prediction.timings_ms.items():
                    frame.spans.add(f"predict.{stage}", value)
        return [(*item, prediction) for item, prediction in zip(ready, predictions)]

    def _publish_batch(self, inferred: list) -> None:
        """Build and publish each camera's outputs of an inferred batch on its own topics.

        A frame whose publishing fails is counted and logged; the other cameras' frames of the
        batch are still published.
        """
        for index, (channel, frame, rgb, wanted, prediction) in enumerate(inferred):
            spans = frame.spans
            if spans is not None:
                if index:
                    spans.restart()  # the cameras published before this one are not its time
                else:
                    spans.mark("publish_handoff")  # waiting for the publish thread
            try:
                self._publish(channel, frame, rgb, prediction, wanted)
            except Exception as exc:  # noqa: BLE001 - one camera's failure spares the others
                with self._count_lock:
                    self._frame_errors += 1
                channel.count("errors")
                self._on_worker_error(exc, channel)
                continue
            done = time.perf_counter()
            self._latency.add((done - frame.received) * 1e3)
            channel.latency.add((done - frame.received) * 1e3)
            self._output_rate.tick()
            channel.output_rate.tick()
            if spans is not None:
                spans.mark("bookkeeping")
                spans.add("callback_to_published", (done - frame.received) * 1e3)
                self._profile.add(spans)

    def _publish(self, channel: CameraChannel, frame: Frame, rgb: np.ndarray, prediction,
                 wanted: dict) -> None:
        """Build and publish one camera's outputs of ``prediction`` on its publishers."""
        s = self._settings
        spans = frame.spans
        camera = None
        navigation = channel.navigation
        if (wanted["depth_info"] or wanted["camera_info"] or wanted["points"]
                or wanted["obstacles"] or wanted["ground"]
                or (navigation is not None and navigation.corrects_scale)):
            camera = self._camera_intrinsics(channel, rgb.shape[1], rgb.shape[0])
        messages = prediction_messages(
            prediction, rgb, camera, frame.header, self._palette,
            [key for key, on in wanted.items() if on], depth_encoding=s["depth_encoding"],
            semantic_blend=s["semantic_blend"], cloud_decimation=s["cloud_decimation"],
            max_range=s["max_range"], navigation=navigation,
            obstacle_decimation=s["obstacle_decimation"], buffers=channel.buffers)
        for key, msg in messages:
            if spans is not None:
                spans.mark(f"build.{key}")
            channel.pubs[key].publish(msg)
            if spans is not None:
                spans.mark(f"publish.{key}")

    def _check_navigation_change(self, parameters) -> Any:
        """On-set hook: refuse turning on obstacles / ground when the class roles did not
        resolve at start (a model with no default roles and no ground_classes given)."""
        from rcl_interfaces.msg import SetParametersResult

        navigation = self._navigation
        for parameter in parameters:
            if (parameter.name in ("publish_obstacles", "publish_ground") and parameter.value
                    and navigation is not None and navigation.roles is None):
                return SetParametersResult(
                    successful=False, reason=f"{parameter.name} needs the ground / ignored "
                    f"classes, which did not resolve at start: {navigation.unavailable} "
                    "(restart with ground_classes / ignore_classes set)")
        return SetParametersResult(successful=True)

    def _on_worker_error(self, exc: BaseException, channel: CameraChannel | None = None) -> None:
        text = f"frame processing failed: {type(exc).__name__}: {exc}"
        if channel is None:  # a whole batch (the model call)
            self.get_logger().error(text, throttle_duration_sec=THROTTLE_S)
        elif channel.log_due("error", THROTTLE_S):
            self.get_logger().error(f"{channel.label}{text}")

    # ---- diagnostics -------------------------------------------------------------------
    def _camera_info_state(self) -> str:
        """The node-wide camera_info state: the worst of its cameras' (missing first)."""
        states = [channel.camera_info_state(self._settings) for channel in self._channels]
        for state in ("missing", "fallback_fov"):
            if state in states:
                return state
        return "received"

    def _dropped(self, channel: CameraChannel | None = None) -> int:
        """Frames dropped in the worker's slots (one camera's, or all)."""
        worker = self._worker
        if channel is None:
            return self._dropped_before + (worker.dropped if worker is not None else 0)
        return (self._dropped_before_by_key[channel.name]
                + (worker.dropped_by_key[channel.name] if worker is not None else 0))

    def snapshot(self) -> PipelineSnapshot:
        """Current counters, rates and latency percentiles (all cameras together)."""
        last = self._input_rate.last()
        worker = self._worker
        errors = (self._errors_before + self._frame_errors
                  + (worker.errors if worker is not None else 0))
        new_errors, self._reported_errors = errors - self._reported_errors, errors
        batch_sizes = collections.Counter(self._batch_sizes_before)
        if worker is not None:
            batch_sizes.update(worker.batch_size_counts())
        lat50, lat95 = self._latency.percentiles(50, 95)
        inf50, inf95 = self._inference.percentiles(50, 95)
        describe = self._predictor.describe() if hasattr(self._predictor, "describe") else {}
        size = getattr(self._predictor, "input_size", None)
        return PipelineSnapshot(
            input_rate_hz=self._input_rate.rate(), output_rate_hz=self._output_rate.rate(),
            latency_p50_ms=lat50, latency_p95_ms=lat95, inference_p50_ms=inf50,
            inference_p95_ms=inf95, frames_received=self._received,
            frames_processed=self._output_rate.total,
            frames_dropped=self._dropped(),
            frames_skipped_no_subscribers=self._skipped, bad_messages=self._bad,
            processing_errors=errors, new_errors=new_errors,
            seconds_since_input=None if last is None else time.monotonic() - last,
            camera_info=self._camera_info_state(),
            backend=str(getattr(self._predictor, "backend_name", "?")),
            device=str(describe.get("device", "?")),
            model=str(self._settings["model"] or describe.get("model")),
            model_file=str(describe.get("model") or self._settings["model"]),
            input_size=f"{size[1]}x{size[0]}" if size else "none",
            profile=self._profile.summary() if self._settings["profile"] else {},
            scale=self._channels[0].scale_diagnostics() if len(self._channels) == 1 else {},
            batch_sizes=dict(batch_sizes))

    def camera_snapshots(self) -> list[CameraSnapshot]:
        """Each camera's counters, rates and latency percentiles (one per ``cameras`` entry;
        empty for the single-camera node, whose numbers are :meth:`snapshot`'s)."""
        if len(self._channels) == 1 and not self._channels[0].name:
            return []
        describe = self._predictor.describe() if hasattr(self._predictor, "describe") else {}
        model = str(self._settings["model"] or describe.get("model"))
        return [channel.snapshot(self._settings, self._dropped(channel), model)
                for channel in self._channels]

    def _publish_diagnostics(self) -> None:
        node = self.get_name()
        self._diag_pub.publish(to_diagnostic_array(
            self.snapshot(), f"{node}: pipeline", self.get_clock().now().to_msg(),
            [(f"{node}: camera {camera.camera}", camera) for camera in self.camera_snapshots()]))


class SynergyNode(SynergyPipeline, Node):
    """Monocular depth + semantics + organized PointCloud2 from one camera.

    Component-style: everything lives in the instance, so it can be composed with other
    nodes in one process (pass ``context``, ``namespace``, ``parameter_overrides``...).
    Loads the model and starts working in the constructor.

    Args:
        node_name: ROS node name.
        predictor: an already built synergy_ros.runtime Predictor (composition, tests,
            benchmarks); by default one is loaded from the ``model`` parameter.
        **kwargs: passed to rclpy.node.Node.

    Raises:
        SynergyError: missing/broken model, inconsistent parameters.
        rclpy.exceptions.InvalidParameterValueException: a parameter fails its check.
    """

    def __init__(self, node_name: str = "synergy_node", *, predictor=None, **kwargs) -> None:
        Node.__init__(self, node_name, **kwargs)
        self._declare()
        self._configure(predictor)
        self._activate()

    def destroy_node(self) -> None:
        """Stop the worker (after its current frame), release the predictor, destroy."""
        self._cleanup()
        super().destroy_node()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def run_node(node_class, argv: list[str] | None = None) -> int:
    """Init rclpy with ``argv`` (``--ros-args`` ...), build ``node_class()`` and spin it.

    Exit status: 0 after Ctrl-C / SIGTERM, 1 when the model cannot be loaded or a parameter is
    invalid (one line on stderr, no traceback).
    """
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    rclpy.init(args=sys.argv if argv is None else argv)
    node = None
    try:
        node = node_class()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except InvalidParameterTypeException as exc:
        print(f"synergy_node: {_one_line(exc)} (in YAML write doubles with a decimal point, "
              "e.g. 20.0, and strings in quotes)", file=sys.stderr)
        return 1
    except (SynergyError, InvalidParameterValueException) as exc:
        print(f"synergy_node: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - e.g. a backend failing to open a model
        print(f"synergy_node: failed to start: {type(exc).__name__}: {_one_line(exc)}",
              file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``synergy_node`` / ``ros2 run synergy_ros synergy_node`` (see run_node)."""
    return run_node(SynergyNode, argv)


if __name__ == "__main__":
    sys.exit(main())
