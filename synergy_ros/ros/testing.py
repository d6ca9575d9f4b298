"""Helpers to drive the node over real DDS from tests and benchmarks (no mocks).

* :func:`make_model_file` writes a real (untrained) synergy model file with a tiny input size.
* :class:`SlowPredictor` is a real torch predictor whose ``infer`` also sleeps, standing in
  for a slow GPU-less deployment in overload tests: its outputs are the real network's.
* :class:`FixedLatencyPredictor` stands in for a GPU-speed model (a TensorRT engine's 5 ms):
  a real predictor's output, returned after a fixed wait, with the real pre/post-processing.
* :class:`RosHarness` owns an rclpy Context, a helper node that publishes camera topics and
  records every message on the node's outputs, and an executor spinning in a thread.
"""
from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from synergy_ros.network.untrained import save_untrained_model
from synergy_ros.ros.conversions import array_to_image
from synergy_ros.ros.qos import qos_profile
from synergy_ros.runtime.base import Predictor
from synergy_ros.runtime.prediction import RawOutput
from synergy_ros.runtime.torch_backend import TorchPredictor


def make_model_file(path: str | Path, num_classes: int = 5, input_size=(48, 64),
                    encoder: str = "resnet18", seed: int = 0) -> Path:
    """Write an untrained but real synergy model file (``build_network`` + ``save_model_file``).

    Args:
        path: output ``.pt``.
        num_classes: semantic classes (> 255 gives uint16 labels / mono16 masks).
        input_size: (height, width) the model runs at, pixels.
        encoder: resnet18/34/50/101.
        seed: torch seed for the random weights.
    """

    rng = np.random.default_rng(seed)
    return save_untrained_model(path, {"encoder": encoder, "max_depth": 10.0},
                                [f"class_{i}" for i in range(num_classes)],
                                rng.integers(0, 256, (num_classes, 3)).tolist(),
                                input_size=input_size, seed=seed)


def slow_predictor(model_path: str | Path, delay_s: float, **kwargs):
    """A real TorchPredictor for ``model_path`` whose inference takes ``delay_s`` longer."""

    class SlowPredictor(TorchPredictor):
        """TorchPredictor + a fixed sleep per batch (a slower device, same real outputs)."""

        def infer(self, batch):
            """Sleep ``delay_s`` then run the real network."""
            time.sleep(delay_s)
            return super().infer(batch)

    return SlowPredictor(model_path, **kwargs)


class FixedLatencyPredictor(Predictor):
    """A stand-in for a GPU-speed model: ``infer`` takes exactly ``latency_s``.

    The first ``infer`` runs ``inner`` (a real predictor, e.g. the bundled model on
    onnxruntime) to get a realistic output; every call then sleeps ``latency_s`` (a blocking
    wait that releases the GIL, as waiting for a CUDA stream does) and returns that output.
    Pre- and post-processing are the real shared ones, at ``inner``'s model input size.

    Args:
        inner: the predictor whose output and metadata are used.
        latency_s: seconds each ``infer`` takes.
        output_resolution: ``input`` or ``model`` (see :class:`Predictor`).
    """

    backend_name = "fixed-latency"

    def __init__(self, inner: Predictor, latency_s: float,
                 output_resolution: str = "input") -> None:
        super().__init__(inner.meta, input_size=inner.input_size,
                         output_resolution=output_resolution)
        self.inner = inner
        self.latency_s = float(latency_s)
        self.model_path = f"{inner.model_path} (stand-in: {latency_s * 1e3:.1f} ms per batch)"
        self._output: RawOutput | None = None

    def infer(self, batch: np.ndarray) -> RawOutput:
        """Sleep ``latency_s``; return the inner model's output for the first batch."""
        if self._output is None or self._output.depth.shape[0] != batch.shape[0]:
            self._output = self.inner.infer(batch)
        time.sleep(self.latency_s)
        return self._output

    def close(self) -> None:
        """Close the inner predictor."""
        self.inner.close()


def _callbacks_take_message_info() -> bool:
    """True when rclpy passes MessageInfo to two-argument callbacks (Jazzy and later)."""
    try:
        from rclpy.subscription import Subscription
    except ImportError:  # pragma: no cover - rclpy is needed for every use of this module
        return False
    return hasattr(getattr(Subscription, "CallbackType", None), "WithMessageInfo")


_WITH_MESSAGE_INFO = _callbacks_take_message_info()
_NAMESPACE_COUNTER = itertools.count()


def unique_namespace(prefix: str) -> str:
    """``/<prefix>_<n>_<ms>``: a namespace no other test in this run (or a parallel run on the
    same DDS domain, within 100 s) uses, so their topics never mix."""
    return f"/{prefix}_{next(_NAMESPACE_COUNTER)}_{int(time.time() * 1000) % 100000}"


def spin_in_background(executor) -> threading.Thread:
    """Spin ``executor`` on a daemon thread until it is shut down (or its context is);
    returns the started thread (join it after ``executor.shutdown()``)."""

    def spin() -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            executor.spin()
        except (ExternalShutdownException, KeyboardInterrupt):
            pass

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    return thread


class RosHarness:
    """An isolated rclpy context with a helper node and an executor thread.

    Args:
        namespace: namespace of the helper node (kept as ``namespace``); topics are given
            relative to it.
    """

    def __init__(self, namespace: str = "/") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.namespace = namespace
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"harness_{int(time.time() * 1e3) % 100000}",
                                      namespace=namespace, context=self.context)
        # One executor thread: rclpy's MultiThreadedExecutor busy-polls while the node's
        # mutually exclusive callback group is running (ros2/rclpy#1452), taking the GIL and
        # the shared cores from the very publisher loop and worker thread a test measures.
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._nodes = [self.node]
        self.received: dict[str, list] = {}
        self.receive_times: dict[str, list] = {}
        self.source_times: dict[str, list] = {}
        self._lock = threading.Lock()
        self._thread = spin_in_background(self.executor)

    def add_node(self, node) -> None:
        """Spin another node (e.g. a SynergyNode built with ``context=harness.context``).

        The harness destroys it on :meth:`close`.
        """
        self.executor.add_node(node)
        self._nodes.append(node)

    def publisher(self, msg_type, topic: str, reliable: bool = True, depth: int = 10):
        """A publisher on ``topic`` with the given reliability, keep-last ``depth``."""

        return self.node.create_publisher(msg_type, topic, qos_profile(reliable, depth))

    def record(self, msg_type, topic: str, key: str | None = None, reliable: bool = True,
               with_source_times: bool = False):
        """Subscribe to ``topic`` and keep every message under ``key`` (default: topic).

        Arrival times (perf_counter s) go to ``receive_times[key]``; with
        ``with_source_times`` and an rclpy whose callbacks can take the message info (Jazzy
        and later), the publisher's write times (system clock, s) go to ``source_times[key]``:
        the sender's timing, unaffected by how late a loaded machine delivers.
        """

        key = key or topic
        with self._lock:
            self.received.setdefault(key, [])
            self.receive_times.setdefault(key, [])

        def callback(msg, key=key):
            with self._lock:
                self.received[key].append(msg)
                self.receive_times[key].append(time.perf_counter())

        def callback_with_info(msg, info):
            with self._lock:
                self.source_times.setdefault(key, []).append(info["source_timestamp"] / 1e9)
            callback(msg)

        with_info = _WITH_MESSAGE_INFO and with_source_times
        return self.node.create_subscription(msg_type, topic,
                                             callback_with_info if with_info else callback,
                                             qos_profile(reliable, 50))

    def messages(self, key: str) -> list:
        """A copy of the messages recorded under ``key``."""
        with self._lock:
            return list(self.received.get(key, []))

    def clear(self) -> None:
        """Forget recorded messages (subscriptions stay)."""
        with self._lock:
            for key in self.received:
                self.received[key].clear()
                self.receive_times[key].clear()

    @staticmethod
    def wait_for(condition: Callable[[], Any], timeout: float, period: float = 0.02,
                 during: Callable[[], None] | None = None, every: float = 0.1) -> bool:
        """Poll ``condition`` until true or ``timeout`` s; call ``during`` every ``every`` s."""
        deadline = time.monotonic() + timeout
        next_call = 0.0
        while time.monotonic() < deadline:
            if condition():
                return True
            if during is not None and time.monotonic() >= next_call:
                during()
                next_call = time.monotonic() + every
            time.sleep(period)
        return bool(condition())

    def close(self) -> None:
        """Stop spinning, destroy the nodes (stopping SynergyNode workers), shut down."""
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(5.0)
        for node in reversed(self._nodes):
            node.destroy_node()
        self.context.try_shutdown()


def camera_frame(rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera_optical_frame",
                 encoding: str = "rgb8"):
    """An Image of ``rgb`` (H, W, 3) uint8 stamped ``stamp_ns`` (encoding rgb8 or bgr8)."""
    from std_msgs.msg import Header

    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return array_to_image(rgb if encoding == "rgb8" else rgb[:, :, ::-1], encoding, header)
