"""diagnostic_msgs/DiagnosticArray for the node's pipeline (rates, latency, drops, backend).

Like diagnostic_updater's FrequencyStatus and a TimeStampStatus in one status named
``<node name>: pipeline``: OK while frames flow, WARN when no image arrived for
``stale_after_s``, when more than half of the frames are dropped or no camera_info is known
(clouds wait), ERROR after processing errors in the last period. A node serving several
cameras adds one status per camera, ``<node name>: camera NAME``, under the same rules
(:class:`synergy_ros.ros.camera_channel.CameraSnapshot`), and the pipeline status carries the
batch-size histogram.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence


@dataclasses.dataclass
class StreamSnapshot:
    """What :func:`status_level` judges, for the whole node or one camera (rates in Hz, times
    in ms, ``camera_info``: received / fallback_fov / missing)."""

    input_rate_hz: float
    output_rate_hz: float
    latency_p50_ms: float
    latency_p95_ms: float
    frames_received: int
    frames_processed: int
    frames_dropped: int
    frames_skipped_no_subscribers: int
    bad_messages: int
    processing_errors: int
    new_errors: int
    seconds_since_input: float | None
    camera_info: str


@dataclasses.dataclass
class PipelineSnapshot(StreamSnapshot):
    """Numbers the node reports each diagnostics period (rates in Hz, times in ms)."""

    inference_p50_ms: float
    inference_p95_ms: float
    backend: str
    device: str
    model: str
    model_file: str
    input_size: str
    stale_after_s: float = 5.0
    #: stage -> (p50 ms, p95 ms) with the ``profile`` parameter on (synergy_ros.ros.profiling)
    profile: dict = dataclasses.field(default_factory=dict)
    #: ground-plane scale state as key -> value (``scale``, ``scale.status``, ...;
    #: synergy_ros.ros.navigation.scale_diagnostics), {} when scale correction is off
    scale: dict = dataclasses.field(default_factory=dict)
    #: frames per inference call -> calls (the worker's batches; all 1 for one camera)
    batch_sizes: dict = dataclasses.field(default_factory=dict)


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.2f}"
    return "none" if value is None else str(value)


def status_level(snap: StreamSnapshot) -> tuple[bytes, str]:
    """(DiagnosticStatus level (an octet: OK, WARN, ERROR), message) summarising ``snap``
    (a PipelineSnapshot or a CameraSnapshot)."""
    from diagnostic_msgs.msg import DiagnosticStatus

    if snap.new_errors:
        return DiagnosticStatus.ERROR, f"{snap.new_errors} frames failed in processing"
    if snap.seconds_since_input is None:
        return DiagnosticStatus.WARN, "no image received yet"
    if snap.seconds_since_input > snap.stale_after_s:
        return DiagnosticStatus.WARN, f"no image for {snap.seconds_since_input:.1f} s"
    if snap.frames_received > 10 and snap.frames_dropped > snap.frames_received / 2:
        return (DiagnosticStatus.WARN, "dropping most frames: inference slower than the "
                f"camera ({snap.input_rate_hz:.1f} Hz in, {snap.output_rate_hz:.1f} Hz out)")
    if snap.camera_info == "missing":
        return DiagnosticStatus.WARN, "no camera_info: point cloud waits"
    scale = getattr(snap, "scale", None)
    if scale and scale.get("scale.confident") != "true":
        return (DiagnosticStatus.WARN, "no confident ground-plane scale yet: depth not "
                f"corrected ({scale.get('scale.message', '')})")
    return DiagnosticStatus.OK, "running"


def histogram_text(counts: dict) -> str:
    """``{1: 4, 3: 20}`` -> ``"1:4 3:20"`` (sorted by key; ``none`` when empty)."""
    return " ".join(f"{key}:{counts[key]}" for key in sorted(counts)) or "none"


def diagnostic_status(snap: StreamSnapshot, name: str):
    """DiagnosticStatus ``name`` holding every field of ``snap`` (a PipelineSnapshot or a
    CameraSnapshot dataclass) as key/value, with its level and message."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    level, message = status_level(snap)
    special = ("profile", "batch_sizes", "scale")
    values = [KeyValue(key=field.name, value=_fmt(getattr(snap, field.name)))
              for field in dataclasses.fields(snap) if field.name not in special]
    values += [KeyValue(key=key, value=value)
               for key, value in getattr(snap, "scale", {}).items()]
    if getattr(snap, "batch_sizes", None):
        values.append(KeyValue(key="batch_sizes", value=histogram_text(snap.batch_sizes)))
    values += [KeyValue(key=f"profile.{stage}_ms", value=f"{p50:.3f} / {p95:.3f}")
               for stage, (p50, p95) in getattr(snap, "profile", {}).items()]
    return DiagnosticStatus(level=level, name=name, message=message,
                            hardware_id=snap.model, values=values)


def to_diagnostic_array(snap: PipelineSnapshot, name: str, stamp,
                        cameras: Sequence[tuple[str, Any]] = ()):
    """DiagnosticArray with one status ``name`` holding every field of ``snap`` as key/value,
    then one status per ``(status name, CameraSnapshot)`` in ``cameras``."""
    from diagnostic_msgs.msg import DiagnosticArray

    statuses = [diagnostic_status(snap, name)]
    statuses += [diagnostic_status(camera, camera_name) for camera_name, camera in cameras]
    array = DiagnosticArray(status=statuses)
    array.header.stamp = stamp
    return array
