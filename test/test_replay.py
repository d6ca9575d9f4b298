"""`synergy replay`: a real bag played over real DDS (loopback) reaches real subscribers."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from synergy_ros.bags.bagio import BagWriter
from synergy_ros.bags.player import ReplayOptions, parse_remap
from synergy_ros.core.errors import SynergyError
from synergy_ros.ros.conversions import array_to_image, stamp_ns
from synergy_ros.ros.testing import RosHarness

pytestmark = pytest.mark.ros

START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 200_000_000  # 5 Hz recording


def _write_bag(path, frames=5):
    with BagWriter(path) as bag:
        for i in range(frames):
            stamp = START_NS + i * PERIOD_NS
            header = Header(stamp=Time(sec=stamp // 10**9, nanosec=stamp % 10**9),
                            frame_id="cam")
            image = array_to_image(np.full((4, 6, 3), i, np.uint8), "rgb8", header)
            bag.write("/camera/camera_info", CameraInfo(header=header, width=6, height=4),
                      stamp)
            bag.write("/camera/image_raw", image, stamp + 1000)
    return path


def _recorder(topics):
    """A RosHarness recording every topic of ``topics`` ({name: type}) under its name."""
    harness = RosHarness("/")
    for topic, msg_type in topics.items():
        harness.record(msg_type, topic, with_source_times=True)
    return harness


def _wait_for(harness, count, timeout=20.0):
    """Wait until ``count`` messages arrived over all topics (or ``timeout`` s)."""
    harness.wait_for(lambda: sum(len(harness.messages(key)) for key in harness.received)
                     >= count, timeout)


def _replay(args, **kwargs):
    env = dict(os.environ)
    return subprocess.Popen([sys.executable, "-m", "synergy_ros", "replay", *args,
                             "--no-progress", "--wait-for-subscribers", "15"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _replay_and_record(topics, args, count):
    """Run `synergy replay ARGS` to a clean exit while recording ``topics`` ({name: type});
    returns (stderr, {topic: messages}, {topic: arrival times}) once ``count`` arrived."""
    harness = _recorder(topics)
    proc = None
    try:
        proc = _replay(args)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        _wait_for(harness, count)
        # the publisher's write times where rclpy gives them (Jazzy+): the replay's own timing,
        # not how late a loaded machine delivered; else arrival times
        times = harness.source_times if harness.source_times else harness.receive_times
        return (err, {topic: harness.messages(topic) for topic in topics},
                {topic: list(times[topic]) for topic in topics})
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        harness.close()


def test_replay_publishes_recorded_bytes_in_order_with_timing(tmp_path):
    bag = _write_bag(tmp_path / "bag")
    err, got, arrivals = _replay_and_record(
        {"/camera/image_raw": Image, "/cam/info": CameraInfo},
        [str(bag), "--rate", "2", "--remap", "/camera/camera_info:=/cam/info"], 10)
    assert "published 10 messages" in err
    for topic in ("/cam/info", "/camera/image_raw"):  # DDS keeps order per topic
        assert [stamp_ns(m) for m in got[topic]] == [START_NS + i * PERIOD_NS
                                                     for i in range(5)]
    assert [bytes(m.data)[0] for m in got["/camera/image_raw"]] == [0, 1, 2, 3, 4]
    first = got["/cam/info"][0]
    assert (first.width, first.height, first.header.frame_id) == (6, 4, "cam")
    # Recorded 0.2 s apart, played at --rate 2: 0.3 s from the second to the last publish
    # (the first can be held back while the reader finishes matching: seen once under load)
    images = arrivals["/camera/image_raw"]
    assert images[-1] - images[1] >= 0.25
    assert all(b - a >= 0.08 for a, b in zip(images[1:], images[2:])), images


def test_replay_topics_and_start_select_messages(tmp_path):
    bag = _write_bag(tmp_path / "bag")
    harness = _recorder({"/camera/image_raw": Image, "/camera/camera_info": CameraInfo})
    try:
        proc = _replay([str(bag), "--rate", "10", "--topics", "/camera/image_raw",
                        "--start", "0.5"])
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        _wait_for(harness, 2, timeout=10)
        time.sleep(0.3)  # nothing else may arrive
        images, infos = harness.messages("/camera/image_raw"), harness.messages(
            "/camera/camera_info")
    finally:
        harness.close()
    # frames at 0.0, 0.2, 0.4 s are skipped; 0.6 and 0.8 s are played, image topic only
    assert [stamp_ns(m) for m in images] == [START_NS + i * PERIOD_NS for i in (3, 4)]
    assert infos == []


def _ignore_sigint():
    """What a non-interactive shell does to ``command &``: start it with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ctrl_c_stops_a_looping_replay_cleanly(tmp_path):
    bag = _write_bag(tmp_path / "bag")
    harness = _recorder({"/camera/image_raw": Image})
    try:  # started with SIGINT ignored, as from a script's `&`: Ctrl-C must still stop it
        proc = _replay([str(bag), "--loop", "--topics", "/camera/image_raw"],
                       preexec_fn=_ignore_sigint)
        _wait_for(harness, 3, timeout=30)
        assert len(harness.messages("/camera/image_raw")) >= 3  # it is playing
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:  # a replay left looping would feed the next tests' recorders
            proc.kill()
            proc.communicate()
        harness.close()
    assert proc.returncode == 130, err
    assert "interrupted after" in err and "Traceback" not in err


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(SynergyError, match="--rate must be > 0"):
        ReplayOptions(rate=0)
    with pytest.raises(SynergyError, match="write it as"):
        parse_remap("/a/b")
    assert parse_remap("a:=/b") == ("/a", "/b")
    bag = _write_bag(tmp_path / "bag", frames=1)
    proc = _replay([str(bag), "--topics", "/nope"])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "/nope" in err and "/camera/image_raw (sensor_msgs/msg/Image)" in err
    proc = _replay([str(tmp_path / "missing")])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "does not exist" in err


def test_replayed_bytes_are_the_recorded_bytes(tmp_path):
    from synergy_ros.bags.bagio import iter_messages

    bag = _write_bag(tmp_path / "bag", frames=2)
    recorded = [m.data for m in iter_messages(bag, ["/camera/image_raw"])]
    _, got, _ = _replay_and_record({"/camera/image_raw": Image},
                                   [str(bag), "--rate", "5", "--topics", "/camera/image_raw"], 2)
    assert [serialize_message(m) for m in got["/camera/image_raw"]] == recorded


def test_replay_plays_a_ros1_bag_as_ros2_messages(tmp_path):
    from test_bagio_ros1 import write_ros1_copy

    from synergy_ros.bags.bagio import iter_messages

    source = _write_bag(tmp_path / "bag", frames=2)
    ros1 = write_ros1_copy(source, tmp_path / "recorded.bag")
    expected = [m.message for m in iter_messages(source, ["/camera/image_raw"])]
    topics = {"/camera/image_raw": Image, "/camera/camera_info": CameraInfo}
    err, got, _ = _replay_and_record(topics, [str(ros1), "--rate", "5"], 4)
    assert got["/camera/image_raw"] == expected, err
    assert len(got["/camera/camera_info"]) == 2
