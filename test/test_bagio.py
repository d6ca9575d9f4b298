"""rosbag2 I/O: real MCAP and sqlite3 bags written with rclpy messages and read back."""
import re
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String

from synergy_ros.bags import bagio
from synergy_ros.core.errors import SynergyError
from synergy_ros.ros import message_types

# ROS 2 message classes / serialization: run on Kilted and Jazzy (make test)
pytestmark = pytest.mark.ros

STORAGES = ["mcap", "sqlite3"]


def _image(i: int) -> Image:
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 100 + i, 5
    return Image(header=header, height=4, width=5, encoding="mono8", step=5,
                 data=bytes((np.arange(20) + i) % 256))


def _write(path, storage, count=10):
    with bagio.BagWriter(path, storage=storage) as bag:
        for i in range(count):
            stamp = 1_000_000_000 + i * 100_000_000
            bag.write("/chatter", String(data=f"hello {i}"), stamp)
            bag.write("/camera/image_raw", _image(i), stamp + 1)
            if i == 0:
                bag.write("/camera/camera_info", CameraInfo(width=5, height=4,
                                                            k=[1.0] * 9), stamp)
    return path


@pytest.mark.parametrize("storage", STORAGES)
def test_round_trip_through_rclpy_and_rosbags(tmp_path, storage):
    bag = _write(tmp_path / "bag", storage)
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert (bag / "metadata.yaml").is_file() and (bag / f"bag{suffix}").is_file()
    assert bagio.bag_topics(bag) == {"/chatter": "std_msgs/msg/String",
                                     "/camera/image_raw": "sensor_msgs/msg/Image",
                                     "/camera/camera_info": "sensor_msgs/msg/CameraInfo"}
    assert bagio.bag_message_counts(bag) == {"/chatter": 10, "/camera/image_raw": 10,
                                             "/camera/camera_info": 1}
    assert bagio.bag_start_time_ns(bag) == 1_000_000_000
    messages = list(bagio.iter_messages(bag))
    assert len(messages) == 21
    stamps = [m.log_time_ns for m in messages]
    assert stamps == sorted(stamps)
    images = [m for m in messages if m.topic == "/camera/image_raw"]
    for i, item in enumerate(images):
        assert item.msgtype == "sensor_msgs/msg/Image"
        assert item.log_time_ns == 1_000_000_001 + i * 100_000_000
        msg = item.message
        assert isinstance(msg, Image) and msg == _image(i)
    # an independent reader (rosbags with its own CDR decoder and the recorded definitions)
    store = bagio.typestore()
    with Reader(bag) as reader:
        conns = {c.topic: c for c in reader.connections}
        assert "uint32 height" in conns["/camera/image_raw"].msgdef.data
        assert conns["/camera/image_raw"].digest.startswith("RIHS01_")
        decoded = [store.deserialize_cdr(raw, c.msgtype) for c, _, raw in
                   reader.messages([conns["/camera/image_raw"]])]
    assert [d.header.stamp.sec for d in decoded] == list(range(100, 110))
    assert bytes(decoded[3].data) == bytes(_image(3).data)


@pytest.mark.parametrize("storage", STORAGES)
def test_bare_storage_file_is_readable(tmp_path, storage):
    bag = _write(tmp_path / "bag", storage, count=3)
    file = next(p for p in bag.iterdir() if p.name != "metadata.yaml")
    assert [m.message.data for m in bagio.iter_messages(file, ["/chatter"])] == [
        "hello 0", "hello 1", "hello 2"]


def test_topic_filter_and_unknown_topic_lists_what_is_there(tmp_path):
    bag = _write(tmp_path / "bag", "mcap", count=3)
    assert {m.topic for m in bagio.iter_messages(bag, ["/chatter"])} == {"/chatter"}
    with pytest.raises(SynergyError) as info:
        bagio.iter_messages(bag, ["/chatter", "/nope"])  # raised at the call, not at next()
    text = str(info.value)
    assert "/nope" in text and "/camera/image_raw (sensor_msgs/msg/Image)" in text


def test_messages_are_streamed_and_deserialised_lazily(tmp_path):
    bag = _write(tmp_path / "bag", "sqlite3", count=3)
    stream = bagio.iter_messages(bag)
    first = next(stream)
    assert first._message is None  # nothing deserialised yet
    assert first.message.data == "hello 0" and first._message is not None
    stream.close()


def test_missing_and_non_bag_paths(tmp_path):
    with pytest.raises(SynergyError, match="does not exist"):
        bagio.bag_topics(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SynergyError, match="metadata.yaml is missing"):
        bagio.iter_messages(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SynergyError, match="not a bag file"):
        bagio.bag_topics(tmp_path / "notes.txt")


@pytest.mark.parametrize("storage", STORAGES)
def test_truncated_bag_says_how_far_it_got(tmp_path, storage):
    bag = _write(tmp_path / "bag", storage, count=40)
    file = next(p for p in bag.iterdir() if p.name != "metadata.yaml")
    data = file.read_bytes()
    file.write_bytes(data[:int(len(data) * 0.9)])
    read = 0
    with pytest.raises(SynergyError, match="corrupt or truncated") as info:
        for _ in bagio.iter_messages(bag):
            read += 1
    text = str(info.value)
    match = re.search(r"after (\d+) messages", text)
    if match:
        assert int(match.group(1)) == read > 0
    else:
        assert read == 0 and ("no message could be read" in text or "before the first" in text)


def _mcap_chunk_records(data: bytes) -> list[int]:
    """Offsets of the records inside each Chunk record (MCAP spec: opcode 0x06)."""
    offsets, pos = [], 8  # after the magic
    while pos + 9 <= len(data):
        opcode, length = data[pos], int.from_bytes(data[pos + 1:pos + 9], "little")
        if opcode == 0x06:
            body = pos + 9 + 8 + 8 + 8 + 4  # start, end, uncompressed size, crc
            compression_len = int.from_bytes(data[body:body + 4], "little")
            offsets.append(body + 4 + compression_len + 8)
        if opcode == 0x02:  # Footer
            break
        pos += 9 + length
    return offsets


def break_last_mcap_chunk(bag) -> None:
    """Give a record of the bag's last MCAP chunk an absurd length (a bag broken part-way).

    The bag must hold at least two chunks (rosbags writes one per MiB of messages)."""
    mcap = next(Path(bag).glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    chunks = _mcap_chunk_records(bytes(data))
    assert len(chunks) >= 2, "write more than 1 MiB of messages so the bag has 2 chunks"
    data[chunks[-1] + 1:chunks[-1] + 9] = b"\xff" * 8
    mcap.write_bytes(bytes(data))


def test_damaged_mcap_record_is_an_error_not_a_short_read(tmp_path):
    bag = _write(tmp_path / "bag", "mcap", count=40)
    file = bag / "bag.mcap"
    data = bytearray(file.read_bytes())
    chunks = _mcap_chunk_records(bytes(data))
    assert chunks, "rosbags writes messages in MCAP chunks"
    first_record = chunks[-1]
    data[first_record + 1:first_record + 9] = b"\xff" * 8  # absurd record length
    file.write_bytes(bytes(data))
    read = 0
    with pytest.raises(SynergyError, match="corrupt"):
        for _ in bagio.iter_messages(bag):
            read += 1
    assert read < 81


def test_writer_never_overwrites_and_keeps_what_was_written(tmp_path):
    bag = tmp_path / "bag"
    with pytest.raises(RuntimeError):
        with bagio.BagWriter(bag) as writer:
            writer.write("/chatter", String(data="kept"), 5)
            raise RuntimeError("crash mid-recording")
    assert [m.message.data for m in bagio.iter_messages(bag)] == ["kept"]
    with pytest.raises(SynergyError, match="already exists"):
        bagio.BagWriter(bag)


def test_writer_rejects_bad_topics_types_and_storage(tmp_path):
    with pytest.raises(SynergyError, match="storage"):
        bagio.BagWriter(tmp_path / "a", storage="rosbag1")
    with bagio.BagWriter(tmp_path / "b") as writer:
        writer.write("/t", String(data="x"), 1)
        with pytest.raises(SynergyError, match="already holds std_msgs/msg/String"):
            writer.write("/t", _image(0), 2)
        with pytest.raises(SynergyError, match="absolute"):
            writer.write("relative", String(data="x"), 3)
        with pytest.raises(SynergyError, match="not a ROS 2 message"):
            writer.write("/u", "plain string", 3)
    with pytest.raises(SynergyError, match="closed"):
        writer.write("/t", String(data="x"), 4)


def test_message_class_lookup():
    assert message_types.message_class("sensor_msgs/msg/Image") is Image
    assert message_types.message_class("std_msgs/String") is String
    assert bagio.message_type_name(CameraInfo()) == "sensor_msgs/msg/CameraInfo"
    with pytest.raises(SynergyError, match="not available"):
        message_types.message_class("no_such_pkg/msg/Thing")
