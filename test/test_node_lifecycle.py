"""LifecycleSynergyNode driven through its real change_state service (as `ros2 lifecycle set`)."""
import time

import numpy as np
import pytest

pytest.importorskip("rclpy.lifecycle")
pytest.importorskip("torch")
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from synergy_ros.ros.lifecycle import LifecycleSynergyNode  # noqa: E402
from synergy_ros.ros.testing import camera_frame, make_model_file  # noqa: E402

pytestmark = pytest.mark.ros


def _lifecycle(harness, model, predictor=None, **overrides):
    params = {"model": str(model), "backend": "torch", "num_threads": 1, **overrides}
    node = LifecycleSynergyNode(
        predictor=predictor, context=harness.context, namespace=harness.namespace,
        use_global_arguments=False,
        parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    harness.add_node(node)
    change = harness.node.create_client(ChangeState, "synergy_node/change_state")
    get = harness.node.create_client(GetState, "synergy_node/get_state")
    assert change.wait_for_service(timeout_sec=10.0) and get.wait_for_service(timeout_sec=10.0)

    def call(client, request):
        future = client.call_async(request)
        assert harness.wait_for(future.done, 30.0)
        return future.result()

    def transition(transition_id):
        return call(change, ChangeState.Request(transition=Transition(id=transition_id))).success

    def state():
        return call(get, GetState.Request()).current_state.label

    return node, transition, state


def test_configure_activate_deactivate_cleanup(harness, tmp_path):
    model = make_model_file(tmp_path / "tiny.pt", input_size=(32, 32))
    node, transition, state = _lifecycle(harness, model)
    image_pub = harness.publisher(Image, "image")
    harness.record(Image, "depth")
    assert state() == "unconfigured" and node._predictor is None
    assert transition(Transition.TRANSITION_CONFIGURE) and state() == "inactive"
    assert node._predictor is not None
    time.sleep(0.5)
    assert image_pub.get_subscription_count() == 0  # not listening while inactive
    assert transition(Transition.TRANSITION_ACTIVATE) and state() == "active"
    frame = camera_frame(np.zeros((24, 32, 3), np.uint8), 5)
    assert harness.wait_for(lambda: harness.messages("depth"), 20.0,
                            during=lambda: image_pub.publish(frame), every=0.1)
    assert transition(Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
    assert harness.wait_for(lambda: image_pub.get_subscription_count() == 0, 5.0)
    time.sleep(0.3)
    harness.clear()
    for _ in range(5):
        image_pub.publish(frame)
        time.sleep(0.05)
    time.sleep(0.5)
    assert not harness.messages("depth")
    assert transition(Transition.TRANSITION_CLEANUP) and state() == "unconfigured"
    assert node._predictor is None and node._worker is None


def test_configure_with_a_missing_model_fails_and_the_node_survives(harness, tmp_path):
    node, transition, state = _lifecycle(harness, tmp_path / "missing.pt")
    assert not transition(Transition.TRANSITION_CONFIGURE)
    assert state() == "unconfigured"
    (tmp_path / "missing.pt").write_bytes(make_model_file(
        tmp_path / "real.pt", input_size=(32, 32)).read_bytes())
    assert transition(Transition.TRANSITION_CONFIGURE) and state() == "inactive"


def flaky_predictor(model):
    """The real TorchPredictor, except that an all-black frame raises (a failing device)."""
    from synergy_ros.runtime.torch_backend import TorchPredictor

    class FlakyPredictor(TorchPredictor):
        def predict(self, rgb):
            if not rgb.any():
                raise RuntimeError("device error on a black frame")
            return super().predict(rgb)

    return FlakyPredictor(model, device="cpu", num_threads=1, output_resolution="model")


def test_cleanup_and_configure_again_with_an_injected_predictor(harness, tmp_path):
    """configure -> cleanup -> configure: the injected predictor still works (cleanup must not
    close what configure uses again) and diagnostics count errors across the restart."""
    model = make_model_file(tmp_path / "tiny.pt", input_size=(32, 32))
    predictor = flaky_predictor(model)
    node, transition, state = _lifecycle(harness, model, predictor, diagnostics_period=0.2)
    image_pub = harness.publisher(Image, "image")
    harness.record(Image, "depth")
    harness.record(DiagnosticArray, "/diagnostics")
    good = camera_frame(np.full((24, 32, 3), 90, np.uint8), 5)
    black = camera_frame(np.zeros((24, 32, 3), np.uint8), 6)

    def ours():  # [(level, {key: value})] of this node's statuses, in arrival order
        return [(status.level, {v.key: v.value for v in status.values})
                for msg in harness.messages("/diagnostics") for status in msg.status
                if status.hardware_id == str(model)]

    def errors_reported(at_least):
        return lambda: any(int(values["processing_errors"]) >= at_least
                           for _, values in ours())

    assert transition(Transition.TRANSITION_CONFIGURE)
    assert transition(Transition.TRANSITION_ACTIVATE)
    assert harness.wait_for(errors_reported(2), 20.0, during=lambda: image_pub.publish(black))
    assert harness.wait_for(lambda: harness.messages("depth"), 20.0,
                            during=lambda: image_pub.publish(good))
    harness.clear()  # reports from now on count every error (all came before that depth)
    assert harness.wait_for(lambda: ours(), 5.0)
    before = int(ours()[0][1]["processing_errors"])
    assert before >= 2
    assert transition(Transition.TRANSITION_DEACTIVATE)
    assert transition(Transition.TRANSITION_CLEANUP) and state() == "unconfigured"
    assert transition(Transition.TRANSITION_CONFIGURE)
    assert node._predictor is predictor
    harness.clear()
    assert transition(Transition.TRANSITION_ACTIVATE) and state() == "active"
    assert harness.wait_for(lambda: len(harness.messages("depth")) >= 3, 20.0,
                            during=lambda: image_pub.publish(good)), node.snapshot()
    assert harness.wait_for(lambda: len(ours()) >= 3, 5.0)
    for level, values in ours():
        assert int(values["new_errors"]) == 0, values
        assert int(values["processing_errors"]) == before, values
        assert level != DiagnosticStatus.ERROR, values
    assert transition(Transition.TRANSITION_DEACTIVATE)
    assert transition(Transition.TRANSITION_CLEANUP)
    assert transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert predictor._graph is None  # closed at shutdown, the node's to release


def test_activate_failing_partway_leaves_no_subscription_and_stays_inactive(harness,
                                                                            tmp_path):
    """A failure after the image subscription was created (here: resolving the camera_info
    topic) is a FAILURE transition: the node stays inactive and unsubscribes what it had."""
    model = make_model_file(tmp_path / "tiny.pt", input_size=(32, 32))
    node, transition, state = _lifecycle(harness, model)
    image_pub = harness.publisher(Image, "image")
    assert transition(Transition.TRANSITION_CONFIGURE) and state() == "inactive"

    def broken(channel):
        raise RuntimeError("camera_info topic could not be resolved")

    original, node._input_info_topic = node._input_info_topic, broken
    assert not transition(Transition.TRANSITION_ACTIVATE)
    assert state() == "inactive"
    time.sleep(0.5)
    assert image_pub.get_subscription_count() == 0
    assert all(channel.image_sub is None for channel in node._channels)
    node._input_info_topic = original
    assert transition(Transition.TRANSITION_ACTIVATE) and state() == "active"
    assert harness.wait_for(lambda: image_pub.get_subscription_count() == 1, 5.0)
