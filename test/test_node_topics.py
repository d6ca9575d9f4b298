"""camera_info beside the images (image_transport's rule) and Humble-era parameter handling.

Real SynergyNode, real DDS. The CameraSubscriber stand-in below applies image_transport's
naming rule itself (camera_info = sibling of the image topic's resolved name), as
depth_image_proc's point_cloud_xyz and rviz2's DepthCloud do.
"""
import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("torch")
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue, SetParametersResult  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from synergy_ros.core.geometry import PinholeIntrinsics  # noqa: E402
from synergy_ros.ros.conversions import intrinsics_to_camera_info  # noqa: E402
from synergy_ros.ros.node import SynergyNode  # noqa: E402
from synergy_ros.ros.testing import camera_frame, make_model_file  # noqa: E402

pytestmark = pytest.mark.ros
MODEL_H, MODEL_W = 32, 48
CAMERA_K = PinholeIntrinsics(fx=60.0, fy=61.0, cx=47.5, cy=35.5, width=96, height=72)
#: rclpy APIs newer than Humble that the node must not need (ros2/rclpy humble branch)
POST_HUMBLE_PARAMETER_APIS = ("add_pre_set_parameters_callback",
                              "add_post_set_parameters_callback",
                              "remove_pre_set_parameters_callback",
                              "remove_post_set_parameters_callback")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return make_model_file(tmp_path_factory.mktemp("model") / "tiny.pt",
                           input_size=(MODEL_H, MODEL_W))


def start_node(harness, model_path, remaps=(), **overrides):
    params = {"model": str(model_path), "backend": "torch", "num_threads": 1}
    params.update(overrides)
    cli_args = ["--ros-args"] + [arg for rule in remaps for arg in ("-r", rule)]
    node = SynergyNode(context=harness.context, namespace=harness.namespace,
                       use_global_arguments=False, cli_args=cli_args,
                       parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    harness.add_node(node)
    return node


def image_transport_info_topic(image_topic: str) -> str:
    """image_transport's CameraSubscriber rule, written out: the image topic's sibling."""
    namespace, _, _ = image_topic.rpartition("/")
    return namespace + "/camera_info"


def send_camera(harness, image_pub, info_pub, condition, timeout=20.0):
    rgb = np.random.default_rng(0).integers(0, 256, (72, 96, 3), dtype=np.uint8)
    count = [0]

    def send():
        count[0] += 1
        msg = camera_frame(rgb, 1_000_000_000 + count[0] * 1_000_000)
        info_pub.publish(intrinsics_to_camera_info(CAMERA_K, msg.header))
        image_pub.publish(msg)

    return harness.wait_for(condition, timeout, during=send, every=0.1)


def test_camera_info_beside_the_images_pairs_like_a_camera_subscriber(harness, model_path):
    """Camera elsewhere (only ``image`` remapped, as the launch file does): the node reads the
    camera's camera_info beside its image and publishes the scaled one beside its images."""
    camera_ns = harness.namespace + "_camera"
    node = start_node(harness, model_path, remaps=[f"image:={camera_ns}/image_raw"])
    assert node._info_sub.topic_name == f"{camera_ns}/camera_info"  # input: beside the image
    depth_topic = node.resolve_topic_name("depth")
    info_topic = image_transport_info_topic(depth_topic)
    assert info_topic == f"{harness.namespace}/camera_info"
    harness.record(Image, depth_topic, key="depth")
    harness.record(CameraInfo, info_topic, key="camera_info")
    harness.record(CameraInfo, "depth/camera_info")
    image_pub = harness.publisher(Image, f"{camera_ns}/image_raw")
    info_pub = harness.publisher(CameraInfo, f"{camera_ns}/camera_info")

    def paired():
        infos = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in
                 harness.messages("camera_info")}
        return [m for m in harness.messages("depth")
                if (m.header.stamp.sec, m.header.stamp.nanosec) in infos]

    assert send_camera(harness, image_pub, info_pub, lambda: len(paired()) >= 3), (
        len(harness.messages("depth")), len(harness.messages("camera_info")))
    depth = paired()[-1]
    info = [m for m in harness.messages("camera_info") if m.header.stamp == depth.header.stamp][0]
    assert (info.width, info.height) == (depth.width, depth.height) == (MODEL_W, MODEL_H)
    assert info.header.frame_id == depth.header.frame_id
    # the camera's K scaled to the outputs, every time: the node never read its own output
    expected = CAMERA_K.scaled(MODEL_W, MODEL_H).k_matrix().reshape(-1)
    for msg in harness.messages("camera_info"):
        np.testing.assert_allclose(msg.k, expected, rtol=1e-9)
    assert harness.wait_for(lambda: harness.messages("depth/camera_info"), 5.0)
    np.testing.assert_allclose(harness.messages("depth/camera_info")[-1].k, expected,
                               rtol=1e-9)
    assert harness.node.count_publishers(f"{camera_ns}/camera_info") == 1  # the camera only


@pytest.mark.parametrize("remaps", [
    [],  # a bare node: camera and outputs share one namespace
    ["image:={cam}/image_raw", "camera_info:={cam}/camera_info"],  # explicit (older) remap
], ids=["same_namespace", "camera_info_remapped"])
def test_camera_info_beside_the_images_is_skipped_when_it_is_the_input(
        harness, model_path, remaps):
    """The sibling would be the node's own input (or be remapped onto the camera's topic):
    the node must not publish there; depth/camera_info still flows."""
    camera_ns = harness.namespace + "_camera" if remaps else harness.namespace
    node = start_node(harness, model_path, remaps=[r.format(cam=camera_ns) for r in remaps])
    camera_info = f"{camera_ns}/camera_info"
    assert node._info_sub.topic_name == camera_info
    assert "camera_info" not in node._pubs
    harness.record(CameraInfo, "depth/camera_info")
    image_pub = harness.publisher(Image, f"{camera_ns}/image_raw" if remaps else "image")
    info_pub = harness.publisher(CameraInfo, camera_info)
    assert send_camera(harness, image_pub, info_pub,
                       lambda: len(harness.messages("depth/camera_info")) >= 2)
    assert harness.node.count_publishers(camera_info) == 1  # the camera's, not the node's
    assert harness.node.count_publishers(f"{harness.namespace}/camera_info") == (
        1 if not remaps else 0)


def test_live_parameters_apply_with_only_humble_rclpy_apis(harness, model_path, monkeypatch):
    """Humble's rclpy has no pre/post-set parameter callbacks; with them hidden the node
    starts, and ``ros2 param set`` (the real SetParameters service) changes what it does."""
    import rclpy.node

    for name in POST_HUMBLE_PARAMETER_APIS:
        if hasattr(rclpy.node.Node, name):
            monkeypatch.delattr(rclpy.node.Node, name)
    node = start_node(harness, model_path, fallback_fov=70.0)
    client = harness.node.create_client(
        SetParameters, f"{node.get_fully_qualified_name()}/set_parameters")
    assert client.wait_for_service(timeout_sec=10.0)

    def ros2_param_set(name, kind, **value):
        request = SetParameters.Request(parameters=[ParameterMsg(
            name=name, value=ParameterValue(type=kind, **value))])
        future = client.call_async(request)
        assert harness.wait_for(future.done, 10.0)
        return future.result().results[0]

    # another on-set callback rejects a change: the pipeline must not apply it either
    node.add_on_set_parameters_callback(lambda params: SetParametersResult(
        successful=not any(p.name == "semantic_blend" for p in params), reason="not now"))
    assert not ros2_param_set("semantic_blend", ParameterType.PARAMETER_DOUBLE,
                              double_value=0.5).successful
    assert not ros2_param_set("max_range", ParameterType.PARAMETER_DOUBLE,
                              double_value=-1.0).successful
    assert ros2_param_set("cloud_decimation", ParameterType.PARAMETER_INTEGER,
                          integer_value=2).successful
    assert ros2_param_set("depth_encoding", ParameterType.PARAMETER_STRING,
                          string_value="16UC1").successful
    assert ros2_param_set("queue_policy", ParameterType.PARAMETER_STRING,
                          string_value="drop_new").successful
    node.set_parameters([Parameter("max_range", value=5.0)])  # the Python API as well
    assert node._worker.policy == "drop_new"
    assert (node._settings["semantic_blend"], node._settings["max_range"]) == (0.0, 5.0)
    harness.record(PointCloud2, "points")
    harness.record(Image, "depth")
    image_pub = harness.publisher(Image, "image")
    frame = camera_frame(np.zeros((72, 96, 3), np.uint8), 3)
    assert harness.wait_for(lambda: harness.messages("points") and harness.messages("depth"),
                            20.0, during=lambda: image_pub.publish(frame), every=0.1)
    cloud, depth = harness.messages("points")[0], harness.messages("depth")[0]
    assert (cloud.height, cloud.width) == (MODEL_H // 2, MODEL_W // 2)
    assert depth.encoding == "16UC1"
