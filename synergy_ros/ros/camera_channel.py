"""One camera served by synergy_node: its topics, intrinsics, publishers, rates and counts.

The single-camera node has one channel with the empty name (topics ``image``, ``depth``, ...);
a node with ``cameras: [front, left]`` has one channel per name, whose topics lie under the
name (``front/image``, ``front/depth``, ...). The node owns the ROS objects (it creates the
subscriptions and publishers and stores them here); this module is plain Python.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from synergy_ros.core.geometry import PinholeIntrinsics
from synergy_ros.ros.conversions import MessageBuffers
from synergy_ros.ros.diagnostics import StreamSnapshot
from synergy_ros.ros.navigation import scale_diagnostics
from synergy_ros.ros.worker import LatencyStats, RateMeter


@dataclasses.dataclass
class CameraSnapshot(StreamSnapshot):
    """One camera's numbers for /diagnostics (rates in Hz, times in ms): the stream fields
    of :class:`synergy_ros.ros.diagnostics.StreamSnapshot`, so the same status rules
    (:func:`synergy_ros.ros.diagnostics.status_level`) apply."""

    camera: str
    image_topic: str
    model: str
    stale_after_s: float = 5.0
    #: the camera's ground-plane scale state as key -> value ({} when scale correction is off)
    scale: dict = dataclasses.field(default_factory=dict)


class CameraChannel:
    """A camera's state in the node.

    Args:
        name: the camera name (``""``: the single-camera node, topics without prefix).
        overrides: per-camera settings (``fallback_fov``, ``publish_points``) that replace the
            node-wide values of the same name; empty for the single-camera node.

    Attributes set by the node: ``image_sub``, ``info_sub`` (subscriptions), ``pubs``
    (output key -> publisher), ``intrinsics`` (the latest camera_info's, or None).
    Counters (``received``, ``bad``, ``skipped``, ``errors``) are updated under ``lock``
    by :meth:`count`; ``dropped`` is kept by the node's FrameWorker under this channel's key.
    """

    def __init__(self, name: str = "", overrides: dict | None = None) -> None:
        self.name = name
        self.overrides: dict[str, Any] = dict(overrides or {})
        self.intrinsics: PinholeIntrinsics | None = None
        self.image_sub: Any = None
        self.info_sub: Any = None
        self.pubs: dict[str, Any] = {}
        #: the camera's navigation outputs and scale estimator (ros.navigation.NavigationOutputs),
        #: set by the node's configure
        self.navigation: Any = None
        #: the data buffers of this camera's output messages, reused from frame to frame
        #: (publishing thread only)
        self.buffers = MessageBuffers()
        self.input_rate, self.output_rate = RateMeter(), RateMeter()
        self.latency = LatencyStats()
        self.received = self.bad = self.skipped = self.errors = 0
        self.reported_errors = 0
        self.lock = threading.Lock()
        self._logged_at: dict[str, float] = {}  # log line kind -> monotonic time last logged

    def topic(self, relative: str) -> str:
        """``relative`` under the camera's name: ``depth`` -> ``front/depth`` (or ``depth``)."""
        return f"{self.name}/{relative}" if self.name else relative

    @property
    def label(self) -> str:
        """How log lines name the camera: ``camera 'front': `` (empty for a single camera)."""
        return f"camera '{self.name}': " if self.name else ""

    def setting(self, key: str, settings: dict) -> Any:
        """The camera's value of setting ``key``: its override, else the node-wide one."""
        return self.overrides.get(key, settings[key])

    def count(self, counter: str) -> int:
        """Add one to ``counter`` (received, bad, skipped, errors) and return the new value
        (thread-safe: the executor and the worker thread both count)."""
        with self.lock:
            value = getattr(self, counter) + 1
            setattr(self, counter, value)
            return value

    def log_due(self, kind: str, period_s: float) -> bool:
        """Whether this camera's log line ``kind`` may be written now (at most once per
        ``period_s``; the first time always). rclpy throttles per line of code, which one
        camera's repeats would use up for every other camera's."""
        now = time.monotonic()
        with self.lock:
            last = self._logged_at.get(kind)
            if last is not None and now - last < period_s:
                return False
            self._logged_at[kind] = now
            return True

    def camera_info_state(self, settings: dict) -> str:
        """``received``, ``fallback_fov`` (no camera_info yet but a field of view assumed) or
        ``missing`` (clouds wait)."""
        if self.intrinsics is not None:
            return "received"
        return "fallback_fov" if self.setting("fallback_fov", settings) > 0 else "missing"

    def scale_diagnostics(self) -> dict:
        """The camera's ground-plane scale state as diagnostics key -> value ({} when off)."""
        navigation = self.navigation
        return scale_diagnostics(None if navigation is None else navigation.scale_state)

    def snapshot(self, settings: dict, dropped: int, model: str) -> CameraSnapshot:
        """This camera's diagnostics numbers; ``dropped`` from the worker's per-key count."""
        last = self.input_rate.last()
        lat50, lat95 = self.latency.percentiles(50, 95)
        with self.lock:
            errors = self.errors
            new_errors, self.reported_errors = errors - self.reported_errors, errors
        topic = self.image_sub.topic_name if self.image_sub is not None else self.topic("image")
        return CameraSnapshot(
            camera=self.name, input_rate_hz=self.input_rate.rate(),
            output_rate_hz=self.output_rate.rate(), latency_p50_ms=lat50,
            latency_p95_ms=lat95, frames_received=self.received,
            frames_processed=self.output_rate.total, frames_dropped=dropped,
            frames_skipped_no_subscribers=self.skipped, bad_messages=self.bad,
            processing_errors=errors, new_errors=new_errors,
            seconds_since_input=None if last is None else time.monotonic() - last,
            camera_info=self.camera_info_state(settings), image_topic=topic, model=model,
            scale=self.scale_diagnostics())
