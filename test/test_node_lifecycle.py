"""LifecycleSynergyNode driven through its real change_state service (as `ros2 lifecycle set`)."""
import time

import numpy as np
import pytest

pytest.importorskip("rclpy.lifecycle")
pytest.importorskip("torch")
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from synergy_ros.ros.lifecycle import LifecycleSynergyNode  # noqa: E402
from synergy_ros.ros.testing import (RosHarness, camera_frame, make_model_file,  # noqa: E402
                                     unique_namespace)

pytestmark = pytest.mark.ros


@pytest.fixture
def harness():
    h = RosHarness(unique_namespace("synergy_lifecycle"))
    yield h
    h.close()


def _lifecycle(harness, model):
    node = LifecycleSynergyNode(
        context=harness.context, namespace=harness.namespace, use_global_arguments=False,
        parameter_overrides=[Parameter("model", value=str(model)),
                             Parameter("backend", value="torch"),
                             Parameter("num_threads", value=1)])
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
