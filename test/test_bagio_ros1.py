"""ROS 1 bags (.bag): read through bagio as ROS 2 messages, scored by evaluate like rosbag2.

The fixture writes a real ROS 1 bag with ``rosbags.rosbag1.Writer`` and ROS 1 Noetic message
definitions (``Header.seq``, upper-case ``CameraInfo.D/K/R/P``), holding the same frames as a
synthetic rosbag2 bag.
"""
import numpy as np
import pytest

from synergy_ros.bags import bagio
from synergy_ros.core.errors import SynergyError
from synergy_ros.data.synthetic import write_synthetic_bag
from synergy_ros.demo_pipeline import build_untrained_model
from synergy_ros.evaluation.evaluator import EvaluateOptions, evaluate

# ROS 2 message classes / serialization: run on Kilted and Jazzy (make test)
pytestmark = pytest.mark.ros

FRAMES = 3


def _ros1_header(store, header, seq):
    types = store.types
    return types["std_msgs/msg/Header"](
        seq=seq, stamp=types["builtin_interfaces/msg/Time"](sec=header.stamp.sec,
                                                            nanosec=header.stamp.nanosec),
        frame_id=header.frame_id)


def _ros1_message(store, msg, seq):
    """The ROS 1 Noetic form of a ROS 2 Image or CameraInfo (what a ROS 1 driver records)."""
    types = store.types
    header = _ros1_header(store, msg.header, seq)
    if type(msg).__name__ == "Image":
        return types["sensor_msgs/msg/Image"](
            header=header, height=msg.height, width=msg.width, encoding=msg.encoding,
            is_bigendian=msg.is_bigendian, step=msg.step,
            data=np.frombuffer(bytes(msg.data), np.uint8))
    roi = msg.roi
    return types["sensor_msgs/msg/CameraInfo"](
        header=header, height=msg.height, width=msg.width,
        distortion_model=msg.distortion_model, D=np.asarray(msg.d, np.float64),
        K=np.asarray(msg.k), R=np.asarray(msg.r), P=np.asarray(msg.p),
        binning_x=msg.binning_x, binning_y=msg.binning_y,
        roi=types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=roi.x_offset, y_offset=roi.y_offset, height=roi.height, width=roi.width,
            do_rectify=roi.do_rectify))


def write_ros1_copy(source, path, corrupt_index=None):
    """Write the messages of rosbag2 ``source`` as a ROS 1 bag at ``path``.

    ``corrupt_index``: the message with this index is written truncated.
    """
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    connections = {}
    with Writer(path) as writer:
        for index, item in enumerate(bagio.iter_messages(source)):
            if item.topic not in connections:
                connections[item.topic] = writer.add_connection(item.topic, item.msgtype,
                                                                typestore=store)
            data = bytes(store.serialize_ros1(_ros1_message(store, item.message, index),
                                              item.msgtype))
            if index == corrupt_index:
                data = data[:40]
            writer.write(connections[item.topic], item.log_time_ns, data)
    return path


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("ros1")
    ros2 = root / "scene"
    write_synthetic_bag(ros2, FRAMES, height=24, width=32, seed=4)
    return ros2, write_ros1_copy(ros2, root / "scene.bag")


def test_ros1_bag_reads_as_the_same_ros2_messages(bags):
    ros2, ros1 = bags
    assert bagio.bag_topics(ros1) == bagio.bag_topics(ros2)
    assert bagio.bag_message_counts(ros1) == bagio.bag_message_counts(ros2)
    assert bagio.bag_start_time_ns(ros1) == bagio.bag_start_time_ns(ros2)
    expected = list(bagio.iter_messages(ros2))
    got = list(bagio.iter_messages(ros1))
    assert [(m.topic, m.msgtype, m.log_time_ns) for m in got] == \
        [(m.topic, m.msgtype, m.log_time_ns) for m in expected]
    for ours, theirs in zip(got, expected):
        assert ours.error is None
        assert ours.message == theirs.message, ours.topic  # CameraInfo.K -> k, seq dropped
        # the CDR bytes (what replay publishes) decode to the same message
        assert bagio.deserialize(ours.data, ours.msgtype) == theirs.message
    info = next(m.message for m in got if m.topic == "/camera/camera_info")
    assert info.k[0] > 0 and len(info.p) == 12


def _model_mode(bag, model, **kw):
    return EvaluateOptions(bag=bag, gt_topic="/camera/depth_gt", image_topic="/camera/image_raw",
                           semantic_gt_topic="/camera/semantic_gt", model=str(model),
                           backend="torch", device="cpu", progress=False, **kw)


def test_evaluate_scores_a_ros1_bag_like_its_rosbag2_twin(bags, tmp_path):
    model = build_untrained_model(tmp_path / "tiny.pt", input_size=(16, 24), seed=2)
    ros2, ros1 = (evaluate(_model_mode(bag, model))[0] for bag in bags)
    assert ros1["frames"] == ros2["frames"] == FRAMES and ros1["status"] == "complete"
    assert ros1["depth"] == ros2["depth"] and ros1["semantic"] == ros2["semantic"]
    assert ros1["depth"]["abs_rel"] > 0 and ros1["depth_ranges"] == ros2["depth_ranges"]


def test_a_corrupt_ros1_message_is_skipped_and_named(bags, tmp_path):
    ros2, _ = bags
    bag = write_ros1_copy(ros2, tmp_path / "bad.bag", corrupt_index=2)  # frame 0's depth GT
    messages = list(bagio.iter_messages(bag))
    assert len(messages) == 4 * FRAMES
    broken = [m for m in messages if m.error is not None]
    assert [m.topic for m in broken] == ["/camera/depth_gt"]
    with pytest.raises(SynergyError, match="/camera/depth_gt"):
        broken[0].message
    model = build_untrained_model(tmp_path / "tiny.pt", input_size=(16, 24), seed=2)
    result, _ = evaluate(_model_mode(bag, model))
    assert result["frames"] == FRAMES - 1  # frame 0 lost its ground truth
    assert result["bad_frames"] == 1 and result["status"] == "complete"


def test_conversion_covers_message_arrays_bools_and_bytes():
    from rosbags.typesys import Stores, get_typestore
    from sensor_msgs.msg import PointCloud2, PointField

    from synergy_ros.bags.ros1 import to_rclpy

    store = get_typestore(Stores.ROS1_NOETIC)
    types = store.types
    header = types["std_msgs/msg/Header"](
        seq=7, stamp=types["builtin_interfaces/msg/Time"](sec=3, nanosec=4), frame_id="lidar")
    fields = [types["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=7, count=1)
              for i, n in enumerate("xyz")]
    cloud = types["sensor_msgs/msg/PointCloud2"](
        header=header, height=1, width=2, fields=fields, is_bigendian=False, point_step=12,
        row_step=24, data=np.arange(24, dtype=np.uint8), is_dense=True)
    msg = to_rclpy(cloud, PointCloud2)
    assert msg.header.stamp.sec == 3 and msg.header.frame_id == "lidar"
    assert [f.name for f in msg.fields] == ["x", "y", "z"]
    assert all(isinstance(f, PointField) for f in msg.fields) and msg.fields[2].offset == 8
    assert bytes(msg.data) == bytes(range(24)) and msg.is_dense is True
    with pytest.raises(SynergyError, match="deserialised ROS 1 message"):
        to_rclpy(object(), PointCloud2)
