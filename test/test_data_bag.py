"""Bag dataset: real rosbag2 files (synthetic camera bags) matched by header stamp."""
import numpy as np
import pytest
from std_msgs.msg import Header

from synergy_ros.bags.bagio import BagWriter
from synergy_ros.core.errors import SynergyError
from synergy_ros.data.bag import BagDataset
from synergy_ros.data.synthetic import render_sequence, write_synthetic_bag
from synergy_ros.ros.conversions import array_to_image


def _header(stamp_ns):
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 10 ** 9)
    return header


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_dataset_returns_the_recorded_frames(tmp_path, storage):
    bag = tmp_path / "bag"
    write_synthetic_bag(bag, 3, 24, 32, seed=5, storage=storage)
    frames = list(render_sequence(5, 3, 24, 32))
    dataset = BagDataset(bag, "/camera/image_raw", "/camera/depth_gt", "/camera/semantic_gt",
                         label_set="synthetic", cache_dir=tmp_path / "cache",
                         show_progress=False)
    assert len(dataset) == 3
    for index, frame in enumerate(frames):
        raw = dataset.load(index)
        assert np.array_equal(raw["image"], frame.rgb)
        assert np.array_equal(raw["depth"], frame.depth)
        assert np.array_equal(raw["labels"], frame.labels)
    sample = dataset[2]
    assert sample["image"].shape == (3, 24, 32) and sample["has_depth"] and sample["has_labels"]
    manifest = dataset.cache / "manifest.json"
    before = manifest.stat().st_mtime_ns
    again = BagDataset(bag, "/camera/image_raw", "/camera/depth_gt", "/camera/semantic_gt",
                       label_set="synthetic", cache_dir=tmp_path / "cache", show_progress=False)
    assert again.cache == dataset.cache and manifest.stat().st_mtime_ns == before
    depth_only = BagDataset(bag, "/camera/image_raw", "/camera/depth_gt",
                            cache_dir=tmp_path / "cache", show_progress=False)[0]
    assert depth_only["has_depth"] and not depth_only["has_labels"]


def test_bag_dataset_matches_nearby_stamps_and_16uc1_depth(tmp_path):
    bag = tmp_path / "offset"
    rgb = np.zeros((4, 6, 3), np.uint8)
    millimetres = np.full((4, 6), 1500, np.uint16)
    millimetres[0, 0] = 0
    with BagWriter(bag) as writer:
        for i in range(4):
            stamp = 10 ** 9 + i * 10 ** 8
            writer.write("/rgb", array_to_image(rgb + i, "rgb8", _header(stamp)), stamp)
            writer.write("/depth", array_to_image(millimetres, "16UC1",
                                                  _header(stamp + 3_000_000)), stamp + 3_000_000)
    with pytest.raises(SynergyError, match="no frames"):
        BagDataset(bag, "/rgb", "/depth", cache_dir=tmp_path / "c", show_progress=False)
    dataset = BagDataset(bag, "/rgb", "/depth", max_dt_ms=5, cache_dir=tmp_path / "c",
                         show_progress=False)
    assert len(dataset) == 4
    raw = dataset.load(3)
    assert raw["image"][0, 0, 0] == 3 and raw["depth"][1, 1] == pytest.approx(1.5)
    assert raw["depth"][0, 0] == 0


def test_bag_dataset_errors(tmp_path):
    bag = tmp_path / "bag"
    write_synthetic_bag(bag, 1, 8, 8, seed=1)
    with pytest.raises(SynergyError, match="does not exist"):
        BagDataset(tmp_path / "nope", "/camera/image_raw", "/camera/depth_gt")
    with pytest.raises(SynergyError, match=r"/camera/depth.*holds: .*/camera/depth_gt"):
        BagDataset(bag, "/camera/image_raw", "/camera/depth", cache_dir=tmp_path / "c")
    with pytest.raises(SynergyError, match="label_set"):
        BagDataset(bag, "/camera/image_raw", labels_topic="/camera/semantic_gt")
    with pytest.raises(SynergyError, match="nothing to learn"):
        BagDataset(bag, "/camera/image_raw")
    from synergy_ros.core.labels import LabelSet

    three = LabelSet("three", ("a", "b", "c"), ((0, 0, 0), (1, 1, 1), (2, 2, 2)))
    wrong = BagDataset(bag, "/camera/image_raw", labels_topic="/camera/semantic_gt",
                       label_set=three, cache_dir=tmp_path / "c", show_progress=False)
    with pytest.raises(SynergyError, match="out of range.*three|three.*out of range"):
        wrong[0]
    tiny = BagDataset(bag, "/camera/image_raw", labels_topic="/camera/semantic_gt",
                      label_set="synthetic", cache_dir=tmp_path / "c", show_progress=False)
    assert tiny[0]["labels"].max() < 6
    (tiny.cache / "manifest.json").write_text('{"frames": [')  # damaged by hand or disk
    with pytest.raises(SynergyError, match="manifest.json is unreadable.*delete"):
        BagDataset(bag, "/camera/image_raw", labels_topic="/camera/semantic_gt",
                   label_set="synthetic", cache_dir=tmp_path / "c", show_progress=False)


def test_bag_and_synthetic_datasets_in_dataloader_workers(tmp_path):
    import torch

    from synergy_ros.data.synthetic import SyntheticDataset

    bag = tmp_path / "bag"
    write_synthetic_bag(bag, 4, 16, 16, seed=2)
    for dataset in (BagDataset(bag, "/camera/image_raw", "/camera/depth_gt",
                               "/camera/semantic_gt", label_set="synthetic",
                               cache_dir=tmp_path / "c", show_progress=False),
                    SyntheticDataset("val", 4, 16, 16)):
        batches = list(torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2))
        assert [b["image"].shape for b in batches] == [(2, 3, 16, 16)] * 2
        assert all(b["has_depth"].all() and b["has_labels"].all() for b in batches)
        single = torch.stack([dataset[i]["depth"] for i in range(4)])
        assert torch.equal(torch.cat([b["depth"] for b in batches]), single)


def _rgbd_bag(path, frames, storage="mcap", bad_depth=None, size=(4, 6)):
    """A bag of ``frames`` rgb8 + 16UC1 frames; frame ``bad_depth``'s depth is bad CDR."""
    height, width = size
    with BagWriter(path, storage=storage) as writer:
        for i in range(frames):
            stamp = 10 ** 9 + i * 10 ** 8
            rgb = np.full((height, width, 3), i % 256, np.uint8)
            writer.write("/rgb", array_to_image(rgb, "rgb8", _header(stamp)), stamp)
            if i == bad_depth:  # a header, then the Image fields cut off: undecodable CDR
                writer.write_raw("/depth", "sensor_msgs/msg/Image",
                                 b"\x00\x01\x00\x00" + bytes(6), stamp + 1)
                continue
            depth = np.full((height, width), 1000 + i, np.uint16)
            writer.write("/depth", array_to_image(depth, "16UC1", _header(stamp)), stamp + 1)
    return path


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_an_undecodable_message_is_skipped_and_counted(tmp_path, storage, capsys):
    import json

    bag = _rgbd_bag(tmp_path / "bag", 5, storage, bad_depth=2)
    dataset = BagDataset(bag, "/rgb", "/depth", cache_dir=tmp_path / "c", show_progress=False)
    assert len(dataset) == 4
    assert [int(dataset.load(i)["image"][0, 0, 0]) for i in range(4)] == [0, 1, 3, 4]
    assert [dataset.load(i)["depth"][0, 0] for i in range(4)] == pytest.approx(
        [1.0, 1.001, 1.003, 1.004])
    manifest = json.loads((dataset.cache / "manifest.json").read_text())
    assert manifest["undecodable_messages"] == 1 and manifest["read_error"] is None
    assert "1 undecodable messages skipped" in manifest["summary"]
    assert "cannot deserialise a sensor_msgs/msg/Image message on /depth" in manifest["summary"]
    assert "1 undecodable messages skipped" in capsys.readouterr().err  # said without progress
    again = BagDataset(bag, "/rgb", "/depth", cache_dir=tmp_path / "c", show_progress=False)
    assert len(again) == 4  # the manifest was written: a retry reads the cache


def test_a_ros1_conversion_error_is_skipped_and_counted(tmp_path):
    from test_bagio_ros1 import write_ros1_copy

    source = write_synthetic_bag(tmp_path / "scene", 3, 8, 8, seed=3)["path"]
    ros1 = write_ros1_copy(source, tmp_path / "scene.bag", corrupt_index=2)  # frame 0's depth
    dataset = BagDataset(ros1, "/camera/image_raw", "/camera/depth_gt",
                         cache_dir=tmp_path / "c", show_progress=False)
    assert len(dataset) == 2
    assert dataset.manifest["undecodable_messages"] == 1
    assert "cannot convert a ROS 1" in dataset.manifest["summary"]


def test_a_bag_that_breaks_part_way_keeps_the_frames_before(tmp_path, capsys):
    from test_bagio import break_last_mcap_chunk

    bag = _rgbd_bag(tmp_path / "bag", 80, size=(48, 64))  # > 1 MiB: 2 MCAP chunks
    break_last_mcap_chunk(bag)
    dataset = BagDataset(bag, "/rgb", "/depth", cache_dir=tmp_path / "c", show_progress=False)
    assert 0 < len(dataset) < 80
    assert [int(dataset.load(i)["image"][0, 0, 0]) for i in range(len(dataset))] == list(
        range(len(dataset)))
    assert "corrupt" in dataset.manifest["read_error"]
    assert "only the frames before the break are used" in capsys.readouterr().err
