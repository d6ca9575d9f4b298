"""The node's parameters: one table of specs, declared with descriptions and ranges.

Every parameter is declared with a ``ParameterDescriptor`` (description, allowed values,
``IntegerRange`` / ``FloatingPointRange``), so ``ros2 param describe`` documents it and rclpy
rejects out-of-range values. :func:`check_value` adds the checks ranges cannot express (choices,
paths) and runs both at start (from ``--params-file config/synergy.yaml``) and on every
``ros2 param set`` (through ``add_on_set_parameters_callback``), returning the reason.
Parameters marked ``read_only`` (model, backend, QoS, ...) need a node restart to change.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from synergy_ros.core.errors import SynergyError
from synergy_ros.ros.navigation import (DEFAULT_CLASSES, SCALE_CORRECTIONS,
                                        parse_class_names)
from synergy_ros.runtime.base import BACKENDS, OUTPUT_RESOLUTIONS, PRECISIONS

BACKEND_CHOICES = ("auto",) + BACKENDS
RELIABILITY_CHOICES = ("best_effort", "reliable")
QUEUE_POLICIES = ("latest", "drop_new")
DEPTH_ENCODINGS = ("32FC1", "16UC1")
#: Settings a node with several cameras also takes per camera, as ``NAME.<setting>``
#: (default: the node-wide value).
PER_CAMERA = ("fallback_fov", "publish_points", "camera_height", "camera_pitch")
#: A camera name: one ROS name token (it prefixes the camera's topics: NAME/image ...).
CAMERA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One node parameter: name, default (its type is the parameter's type), documentation.

    ``choices`` restricts strings; ``value_range`` (low, high) is an IntegerRange or
    FloatingPointRange depending on the default's type; ``read_only`` parameters are fixed
    once the node runs (model, backend, QoS: restart to change).
    """

    name: str
    default: Any
    description: str
    choices: tuple = ()
    value_range: tuple | None = None
    read_only: bool = False


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model", "", "Model file: .pt (synergy train), .onnx (synergy export) or "
              "TensorRT .engine; empty = the bundled demo model (share/synergy_ros/models/"
              "synergy_demo_r18.pt).", read_only=True),
    ParamSpec("backend", "auto", "Inference backend; auto = TensorRT with a CUDA GPU, else "
              "onnxruntime, else torch.", BACKEND_CHOICES, read_only=True),
    ParamSpec("device", "auto", "auto, cpu, cuda or cuda:N.", read_only=True),
    ParamSpec("precision", "fp32", "fp32, fp16 (GPU) or int8 (TensorRT).", PRECISIONS,
              read_only=True),
    ParamSpec("engine_cache_dir", "", "Where ONNX exports and TensorRT engines are cached; "
              "empty = beside the model or ~/.cache/synergy_ros.", read_only=True),
    ParamSpec("num_threads", 0, "CPU threads for inference; 0 = the backend's default.",
              value_range=(0, 256), read_only=True),
    ParamSpec("input_width", 0, "Width (px) the network runs at; 0 = the model's own size.",
              value_range=(0, 8192), read_only=True),
    ParamSpec("input_height", 0, "Height (px) the network runs at; 0 = the model's own size.",
              value_range=(0, 8192), read_only=True),
    ParamSpec("output_resolution", "model", "Size of depth/semantic/cloud outputs: 'model' "
              "(the network's, cheaper; depth/camera_info is scaled to it) or 'input' (the "
              "camera image's).", OUTPUT_RESOLUTIONS, read_only=True),
    ParamSpec("use_compressed", False, "Subscribe to image/compressed (jpeg/png "
              "CompressedImage) instead of image.", read_only=True),
    ParamSpec("qos_reliability", "best_effort", "Camera subscriptions' reliability: "
              "best_effort (SensorDataQoS, REP 2003) or reliable.", RELIABILITY_CHOICES,
              read_only=True),
    ParamSpec("qos_depth", 5, "Camera subscriptions' keep-last depth.", value_range=(1, 100),
              read_only=True),
    ParamSpec("output_qos_reliability", "reliable", "Output publishers' reliability (reliable "
              "also serves best-effort subscribers).", RELIABILITY_CHOICES, read_only=True),
    ParamSpec("output_qos_depth", 2, "Output publishers' keep-last depth.",
              value_range=(1, 100), read_only=True),
    ParamSpec("queue_policy", "latest", "While inference is busy: 'latest' replaces the "
              "pending frame with each new one, 'drop_new' keeps the pending frame and drops "
              "new ones. Either way at most one frame waits and drops are counted.",
              QUEUE_POLICIES),
    ParamSpec("publish_thread", True, "Build and publish the outputs on a second thread, so "
              "the next frame's inference overlaps this frame's publishing (false: one worker "
              "thread does both).", read_only=True),
    ParamSpec("publish_depth", True, "Publish depth (REP 118) and depth/camera_info."),
    ParamSpec("depth_encoding", "32FC1", "depth encoding: 32FC1 metres with NaN invalid, or "
              "16UC1 millimetres with 0 invalid.", DEPTH_ENCODINGS),
    ParamSpec("publish_semantic", True, "Publish semantic (mono8, mono16 for > 255 classes)."),
    ParamSpec("publish_semantic_color", True, "Publish semantic_color (rgb8, model palette)."),
    ParamSpec("semantic_blend", 0.0, "Weight of the camera image in semantic_color: 0 = pure "
              "palette, 0.5 = half/half.", value_range=(0.0, 1.0)),
    ParamSpec("publish_points", True, "Publish points (organized PointCloud2 xyz+rgb+label)."),
    ParamSpec("cloud_decimation", 1, "Keep every n-th row and column in points.",
              value_range=(1, 16)),
    ParamSpec("max_range", 20.0, "Points with depth beyond this (m) are NaN.",
              value_range=(0.1, 1000.0)),
    ParamSpec("publish_obstacles", False, "Publish obstacles: dense PointCloud2 (x,y,z,rgb,"
              "label like points) of every valid point within max_range whose class is neither "
              "ground nor ignored, for a Nav2 obstacle / voxel layer."),
    ParamSpec("publish_ground", False, "Publish ground: dense PointCloud2 of the ground-class "
              "points within max_range (traversability)."),
    ParamSpec("obstacle_decimation", 1, "Keep every n-th row and column of the depth image in "
              "obstacles and ground.", value_range=(1, 16)),
    ParamSpec("ground_classes", [DEFAULT_CLASSES], "Class names of the ground (model's label "
              "set); ['default'] = the label set's default (synthetic: floor; nyu40: floor, "
              "floor mat; cityscapes: road, sidewalk, terrain), ['none'] = no class.",
              read_only=True),
    ParamSpec("ignore_classes", [DEFAULT_CLASSES], "Class names that are neither ground nor "
              "obstacle; ['default'] = the label set's default (synthetic: ceiling, sky; "
              "nyu40: ceiling; cityscapes: sky), ['none'] = no class.", read_only=True),
    ParamSpec("scale_correction", "off", "Depth scale correction: off, or ground_plane (fit "
              "the ground-class points' plane, scale = camera_height / plane distance; applied "
              "to depth and clouds when confident).", SCALE_CORRECTIONS, read_only=True),
    ParamSpec("camera_height", 0.0, "Height (m) of the camera's optical centre above the "
              "ground; required (> 0) with scale_correction ground_plane.",
              value_range=(0.0, 100.0), read_only=True),
    ParamSpec("scale_smoothing", 10, "Measurements (one per scale_fit_interval frames) the "
              "ground-plane scale is smoothed over (exponential, weight 2 / (n + 1) each; 1 = "
              "none).", value_range=(1, 1000),
              read_only=True),
    ParamSpec("scale_fit_interval", 5, "Fit the ground plane on every n-th frame (the frames "
              "between apply the current scale; 1 = every frame). scale_smoothing counts these "
              "fits.", value_range=(1, 100), read_only=True),
    ParamSpec("min_scale", 0.5, "Smallest ground-plane scale accepted; a smaller measurement "
              "is refused, never applied.", value_range=(0.01, 1.0), read_only=True),
    ParamSpec("max_scale", 2.0, "Largest ground-plane scale accepted; a larger measurement is "
              "refused, never applied.", value_range=(1.0, 100.0), read_only=True),
    ParamSpec("max_ground_tilt", 30.0, "Largest angle (degrees) between the fitted ground "
              "plane's normal and the expected one (a level camera's up axis, tilted by "
              "camera_pitch).", value_range=(1.0, 89.0), read_only=True),
    ParamSpec("camera_pitch", 0.0, "How far (degrees) the camera looks down from level "
              "(negative: up), for the expected ground normal of the ground-plane fit.",
              value_range=(-89.0, 89.0), read_only=True),
    ParamSpec("publish_attention", False, "Publish attention (32FC1): the depth branch's "
              "attention map (the model must provide it).", read_only=True),
    ParamSpec("fallback_fov", 0.0, "Horizontal field of view (degrees) assumed when no "
              "camera_info arrives; 0 = wait for camera_info (depth and masks are published "
              "anyway).", value_range=(0.0, 179.0)),
    ParamSpec("profile", False, "Time every stage of each frame (conversion, hand-off, "
              "inference, each output's build and publish) and report p50/p95 per stage in "
              "/diagnostics as profile.<stage>_ms; for finding where a frame's time goes."),
    ParamSpec("cameras", [], "Names of the cameras one node serves with one model, batched "
              "(e.g. [front, left, rear]): topics NAME/image, NAME/camera_info in and "
              "NAME/depth, NAME/points ... out; per camera NAME.fallback_fov, "
              "NAME.publish_points, NAME.camera_height and NAME.camera_pitch. Empty = one "
              "camera on image, depth ...",
              read_only=True),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.",
              value_range=(0.1, 60.0), read_only=True),
)
SPECS = {spec.name: spec for spec in PARAMS}


def check_value(name: str, value: Any) -> str | None:
    """Return why ``value`` is invalid for parameter ``name``, or None when it is fine.

    Checks choices, ranges and formats (types are checked by rclpy). Unknown names pass
    (rclpy rejects undeclared parameters itself).
    """
    spec = SPECS.get(name)
    if spec is None and name.rpartition(".")[2] in PER_CAMERA:
        spec = SPECS[name.rpartition(".")[2]]  # NAME.fallback_fov has fallback_fov's rules
    if spec is None:
        return None
    if name == "cameras":
        return _cameras_problem(list(value or []))
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}; got {value!r}"
    if spec.value_range is not None and isinstance(value, (int, float)):
        low, high = spec.value_range
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name} must be a finite number in [{low}, {high}]; got {value}"
        if not low <= value <= high:
            return f"{name} must be in [{low}, {high}]; got {value}"
    if name == "device" and not (value in ("auto", "cpu", "cuda") or (
            isinstance(value, str) and value.startswith("cuda:") and value[5:].isdigit())):
        return f"device must be auto, cpu, cuda or cuda:N; got {value!r}"
    if name in ("input_width", "input_height") and value and value < 16:
        return f"{name} must be 0 (model default) or >= 16 px; got {value}"
    if name in ("ground_classes", "ignore_classes"):
        try:  # an empty YAML list arrives unset (None): it means no class, like []
            parse_class_names(name, [] if value is None else value)
        except SynergyError as exc:
            return str(exc)
    return None


def _cameras_problem(names: list) -> str | None:
    """Why the ``cameras`` list is invalid (a name that is no ROS name token, a duplicate)."""
    for index, name in enumerate(names):
        if not isinstance(name, str) or not CAMERA_NAME.match(name):
            return (f"cameras: {name!r} is not a valid camera name; use letters, digits and "
                    "underscores, starting with a letter (it prefixes the camera's topics "
                    "NAME/image, NAME/depth ...), e.g. cameras: [front, left, rear]")
        if name in names[:index]:
            return f"cameras: {name!r} is listed twice; give every camera its own name"
    return None


def descriptor(spec: ParamSpec):
    """The rcl_interfaces ParameterDescriptor for ``spec`` (description, range, read_only)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    desc = ParameterDescriptor(name=spec.name, description=spec.description,
                               read_only=spec.read_only)
    if spec.choices:
        desc.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.value_range is not None:
        low, high = spec.value_range
        if isinstance(spec.default, bool):
            pass
        elif isinstance(spec.default, int):
            desc.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
        else:
            desc.floating_point_range = [FloatingPointRange(from_value=float(low),
                                                            to_value=float(high), step=0.0)]
    return desc


def declare_all(node) -> dict:
    """Declare every parameter on ``node`` and return {name: value} as set at start.

    Register the validating on-set callback (:func:`on_set_callback`) before calling this,
    so values from a params file are checked too. Raises rclpy's
    InvalidParameterValueException / InvalidParameterTypeException with the reason.
    """
    for spec in PARAMS:
        if isinstance(spec.default, list):
            _declare_string_array(node, spec)
        else:
            node.declare_parameter(spec.name, spec.default, descriptor(spec))
    return {spec.name: current_value(node, spec.name) for spec in PARAMS}


def _declare_string_array(node, spec: ParamSpec) -> None:
    """Declare a string array parameter (``cameras``, ``ground_classes``, ...).

    rclpy infers no type from ``[]``, so an empty default is declared typed and unset (an
    empty list in a params file arrives unset too). An empty list given as a Python override
    (``parameter_overrides``, a launch file's dict) reaches rclpy as a BYTE_ARRAY
    (ros2/ros2#1518) and is taken here as "unset" (read as ``[]``), not refused.
    """
    from rclpy.exceptions import InvalidParameterTypeException
    from rclpy.parameter import Parameter

    try:
        if spec.default:
            node.declare_parameter(spec.name, spec.default, descriptor(spec))
        else:
            node.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, descriptor(spec))
    except InvalidParameterTypeException:
        override = getattr(node, "_parameter_overrides", {}).get(spec.name)
        if override is None or list(override.value or []) != []:
            raise
        node.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, descriptor(spec),
                               ignore_override=True)


def current_value(node, name: str) -> Any:
    """Parameter ``name``'s value on ``node``; ``[]`` for a string array left unset
    (``cameras``: a typed parameter without a value, which rclpy's get_parameter refuses)."""
    if SPECS.get(name) is not None and isinstance(SPECS[name].default, list):
        # an empty YAML list reaches rclpy as an unset value: read it as []
        return list(node.get_parameter_or(name).value or [])
    return node.get_parameter(name).value


def declare_cameras(node, settings: dict) -> dict[str, dict]:
    """Declare ``NAME.<setting>`` for each camera in ``settings["cameras"]`` and each setting
    of :data:`PER_CAMERA`, defaulting to the node-wide value; returns
    ``{camera: {setting: value}}`` holding only the values given explicitly (params file,
    ``-p``, overrides): a camera without one follows the node-wide setting, also when that is
    changed while running (the node records a per-camera value set later as an override)."""
    given = getattr(node, "_parameter_overrides", {})  # rclpy's overrides (Humble..Kilted)
    cameras: dict[str, dict] = {}
    for camera in settings["cameras"]:
        cameras[camera] = {}
        for key in PER_CAMERA:
            spec = dataclasses.replace(
                SPECS[key], name=f"{camera}.{key}", default=settings[key],
                description=f"Camera {camera}'s {key} (default: the node-wide {key}). "
                            + SPECS[key].description)
            node.declare_parameter(spec.name, spec.default, descriptor(spec))
            if spec.name in given:
                cameras[camera][key] = node.get_parameter(spec.name).value
    return cameras


def on_set_callback(parameters) -> Any:
    """``add_on_set_parameters_callback`` hook: reject invalid values with the reason."""
    from rcl_interfaces.msg import SetParametersResult

    for parameter in parameters:
        reason = check_value(parameter.name, parameter.value)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
    return SetParametersResult(successful=True)


def yaml_defaults(node_name: str = "synergy_node") -> dict:
    """The ``{node: {ros__parameters: {...}}}`` dict of all defaults (for config files)."""
    return {node_name: {"ros__parameters": {spec.name: spec.default for spec in PARAMS}}}
