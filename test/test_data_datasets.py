"""Folder, Cityscapes and NYU Depth v2 loaders on tiny fixtures in the datasets' real formats."""
import cv2
import h5py
import numpy as np
import pytest
import torch

from synergy_ros.core.errors import SynergyError
from synergy_ros.data.cityscapes import CityscapesDataset
from synergy_ros.data.folder import FolderDataset
from synergy_ros.data.nyu import NYUDepthV2Dataset


def _rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_rgb(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[..., ::-1])


def _write_grey(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


# ----------------------------------------------------------------------------- folder
def _folder(root, n=3, h=8, w=10, depth="png", labels=True):
    data = []
    for i in range(n):
        rgb = _rgb(h, w, i)
        depth_m = np.random.default_rng(10 + i).uniform(0.5, 5.0, (h, w)).astype(np.float32)
        depth_m[0, 0] = 0.0
        lab = np.random.default_rng(20 + i).integers(0, 6, (h, w)).astype(np.uint8)
        lab[1, 1] = 255
        _write_rgb(root / "rgb" / f"f{i:03d}.png", rgb)
        if depth == "png":
            millimetres = np.round(depth_m * 1000).astype(np.uint16)
            _write_grey(root / "depth" / f"f{i:03d}.png", millimetres)
        elif depth == "npy":
            (root / "depth").mkdir(exist_ok=True)
            np.save(root / "depth" / f"f{i:03d}.npy", depth_m)
        if labels:
            _write_grey(root / "labels" / f"f{i:03d}.png", lab)
        data.append((rgb, depth_m, lab))
    return data


@pytest.mark.parametrize("depth_format", ["png", "npy"])
def test_folder_dataset_pairs_by_stem(tmp_path, depth_format):
    data = _folder(tmp_path, depth=depth_format)
    dataset = FolderDataset(tmp_path, label_set="synthetic")
    assert len(dataset) == 3
    raw = dataset.load(2)
    assert np.array_equal(raw["image"], data[2][0])
    atol = 5e-4 if depth_format == "png" else 0
    np.testing.assert_allclose(raw["depth"], data[2][1], atol=atol)
    assert np.array_equal(raw["labels"], data[2][2])
    sample = dataset[2]
    assert sample["image"].shape == (3, 8, 10) and sample["depth"][0, 0, 0] == 0
    assert sample["labels"][1, 1] == 255 and sample["has_depth"] and sample["has_labels"]


def test_folder_dataset_rgb_depth_only_and_errors(tmp_path):
    _folder(tmp_path / "a", labels=False)
    sample = FolderDataset(tmp_path / "a")[0]
    assert sample["has_depth"] and not sample["has_labels"] and (sample["labels"] == 255).all()
    with pytest.raises(SynergyError, match="not a directory"):
        FolderDataset(tmp_path / "missing")
    with pytest.raises(SynergyError, match="rgb"):
        FolderDataset(tmp_path, split="a/depth")
    _folder(tmp_path / "b")
    with pytest.raises(SynergyError, match="label set"):
        FolderDataset(tmp_path / "b")
    (tmp_path / "b" / "depth" / "f001.png").unlink()
    with pytest.raises(SynergyError, match="f001"):
        FolderDataset(tmp_path / "b", label_set="synthetic")
    (tmp_path / "c" / "rgb").mkdir(parents=True)
    with pytest.raises(SynergyError, match="no .png"):
        FolderDataset(tmp_path / "c")


def test_folder_dataset_bad_sizes_and_label_ids(tmp_path):
    _folder(tmp_path / "d")
    _write_grey(tmp_path / "d" / "labels" / "f000.png", np.full((8, 10), 9, np.uint8))
    dataset = FolderDataset(tmp_path / "d", label_set="synthetic")
    with pytest.raises(SynergyError, match=r"label ids \[9\].*f000|f000.*label ids \[9\]"):
        dataset[0]
    _write_grey(tmp_path / "d" / "depth" / "f001.png", np.ones((4, 10), np.uint16))
    with pytest.raises(SynergyError, match="same size"):
        dataset[1]
    _write_rgb(tmp_path / "d" / "depth" / "f002.png", _rgb(8, 10, 0))
    with pytest.raises(SynergyError, match="channels"):
        dataset[2]


# ----------------------------------------------------------------------------- cityscapes
def _cityscapes(root, split="train", cities=("aachen", "bremen"), per_city=2, h=8, w=16):
    frames = []
    for city in cities:
        for j in range(per_city):
            stem = f"{city}_{j:06d}_000019"
            rgb = _rgb(h, w, len(frames))
            ids = np.random.default_rng(len(frames)).integers(0, 34, (h, w)).astype(np.uint8)
            _write_rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rgb)
            _write_grey(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", ids)
            _write_rgb(root / "gtFine" / split / city / f"{stem}_gtFine_color.png", rgb)
            frames.append((rgb, ids))
    return frames


@pytest.mark.parametrize("label_set", ["cityscapes19", "cityscapes21"])
def test_cityscapes_maps_label_ids_to_train_ids(tmp_path, label_set):
    from synergy_ros.core.labels import get_label_set

    frames = _cityscapes(tmp_path)
    dataset = CityscapesDataset(tmp_path, "train", label_set=label_set)
    assert len(dataset) == 4
    sample = dataset[1]
    expected = get_label_set(label_set).map_raw(frames[1][1])
    assert torch.equal(sample["labels"], torch.from_numpy(expected.astype(np.int64)))
    assert not sample["has_depth"] and (sample["depth"] == 0).all() and sample["has_labels"]
    road = frames[1][1] == 7
    assert (sample["labels"].numpy()[road] == 0).all()
    caravan = frames[1][1] == 29
    want = 19 if label_set == "cityscapes21" else 255
    assert (sample["labels"].numpy()[caravan] == want).all()


def test_cityscapes_subset_and_errors(tmp_path):
    _cityscapes(tmp_path, per_city=5)
    subset = CityscapesDataset(tmp_path, max_samples=3, subset_seed=1)
    assert len(subset) == 3
    assert [p[0] for p in subset.pairs] == [p[0] for p in
                                            CityscapesDataset(tmp_path, max_samples=3,
                                                              subset_seed=1).pairs]
    with pytest.raises(SynergyError, match="leftImg8bit"):
        CityscapesDataset(tmp_path, "val")
    with pytest.raises(SynergyError, match="cityscapes19 or cityscapes21"):
        CityscapesDataset(tmp_path, label_set="nyu40")
    next((tmp_path / "gtFine" / "train" / "bremen").glob("*labelIds.png")).unlink()
    with pytest.raises(SynergyError, match="label .*bremen.*missing"):
        CityscapesDataset(tmp_path)


# ----------------------------------------------------------------------------- NYU
def _nyu_mat(path, n=5, h=6, w=8, max_label=894):
    """Write a MATLAB v7.3 file like nyu_depth_v2_labeled.mat: HDF5 with a 512-byte MATLAB
    header, arrays stored transposed (N, C, W, H) as MATLAB writes them."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    depths = rng.uniform(0.7, 9.9, (n, h, w)).astype(np.float32)
    labels = rng.integers(0, max_label + 1, (n, h, w)).astype(np.uint16)
    with h5py.File(path, "w", userblock_size=512) as mat:
        mat.create_dataset("images", data=images.transpose(0, 3, 2, 1))
        mat.create_dataset("depths", data=depths.transpose(0, 2, 1))
        mat.create_dataset("labels", data=labels.transpose(0, 2, 1))
        mat.create_dataset("names", data=np.zeros((1, 894)))
    with open(path, "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 "
                     b"00:00:00 2015 HDF5 schema 1.00 .".ljust(116, b" "))
    return images, depths, labels


def _mapping(n=894):
    return (np.arange(1, n + 1) % 40 + 1).astype(np.float64)  # raw k -> (k % 40) + 1


@pytest.mark.parametrize("mapping_format", ["npy", "txt", "mat"])
def test_nyu_reads_transposed_arrays_and_maps_894_to_40(tmp_path, mapping_format):
    mat = tmp_path / "nyu_depth_v2_labeled.mat"
    images, depths, labels = _nyu_mat(mat)
    (tmp_path / "train.txt").write_text("1 3\n5\n")
    mapping = _mapping()
    if mapping_format == "npy":
        np.save(tmp_path / "map.npy", mapping)
    elif mapping_format == "txt":
        (tmp_path / "map.txt").write_text(" ".join(str(int(v)) for v in mapping))
    else:
        with h5py.File(tmp_path / "map.mat", "w") as handle:
            handle.create_dataset("mapClass", data=mapping[None, :])
    dataset = NYUDepthV2Dataset(mat, "train", tmp_path / "train.txt",
                                class_mapping=tmp_path / f"map.{mapping_format}")
    assert len(dataset) == 3
    raw = dataset.load(1)  # image 3 (1-based) = index 2
    assert np.array_equal(raw["image"], images[2])
    np.testing.assert_array_equal(raw["depth"], depths[2])
    nyu40 = np.where(labels[2] == 0, 0, labels[2] % 40 + 1)
    assert np.array_equal(raw["labels"], np.where(nyu40 == 0, 255, nyu40 - 1))
    sample = dataset[1]
    assert sample["image"].shape == (3, 6, 8)
    assert set(sample["labels"].unique().tolist()) <= set(range(40)) | {255}


def test_nyu_split_mat_v73_and_nyu40_labels(tmp_path):
    mat = tmp_path / "nyu.mat"
    _, _, labels = _nyu_mat(mat, max_label=40)
    with h5py.File(tmp_path / "splits.mat", "w") as handle:
        handle.create_dataset("trainNdxs", data=np.array([[1.0, 2.0, 4.0]]))
        handle.create_dataset("testNdxs", data=np.array([[3.0], [5.0]]))
    test = NYUDepthV2Dataset(mat, "test", tmp_path / "splits.mat", label_format="nyu40")
    assert len(test) == 2 and test.describe(1).endswith("image 5")
    assert np.array_equal(test.load(0)["labels"], np.where(labels[2] == 0, 255, labels[2] - 1))
    assert len(NYUDepthV2Dataset(mat, "all", label_format="nyu40")) == 5


def test_nyu_errors_name_the_problem(tmp_path):
    mat = tmp_path / "nyu.mat"
    _nyu_mat(mat)
    np.save(tmp_path / "map.npy", _mapping())
    with pytest.raises(SynergyError, match="does not exist"):
        NYUDepthV2Dataset(tmp_path / "nope.mat", "all", class_mapping=tmp_path / "map.npy")
    with pytest.raises(SynergyError, match="cannot ship"):
        NYUDepthV2Dataset(mat, "all")
    with pytest.raises(SynergyError, match="splits_path"):
        NYUDepthV2Dataset(mat, "train", class_mapping=tmp_path / "map.npy")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(SynergyError, match="empty"):
        NYUDepthV2Dataset(mat, "train", tmp_path / "empty.txt", tmp_path / "map.npy")
    (tmp_path / "zero.txt").write_text("0 1 2")
    with pytest.raises(SynergyError, match="1-based"):
        NYUDepthV2Dataset(mat, "train", tmp_path / "zero.txt", tmp_path / "map.npy")
    np.save(tmp_path / "short.npy", _mapping(100))
    with pytest.raises(SynergyError, match="894"):
        NYUDepthV2Dataset(mat, "all", class_mapping=tmp_path / "short.npy")
    with pytest.raises(SynergyError, match="raw 894-class"):
        NYUDepthV2Dataset(mat, "all", label_format="nyu40")[0]
    with h5py.File(tmp_path / "bad.mat", "w") as handle:
        handle.create_dataset("images", data=np.zeros((2, 3, 4, 4), np.uint8))
        handle.create_dataset("depths", data=np.zeros((2, 4, 5), np.float32))
        handle.create_dataset("labels", data=np.zeros((2, 4, 4), np.uint16))
    with pytest.raises(SynergyError, match="depths has shape"):
        NYUDepthV2Dataset(tmp_path / "bad.mat", "all", label_format="nyu40")
    (tmp_path / "text.mat").write_text("not hdf5")
    with pytest.raises(SynergyError, match="HDF5"):
        NYUDepthV2Dataset(tmp_path / "text.mat", "all", label_format="nyu40")
    (tmp_path / "truncated.mat").write_bytes(mat.read_bytes()[:2048])
    with pytest.raises(SynergyError, match="truncated.mat.*may be truncated"):
        NYUDepthV2Dataset(tmp_path / "truncated.mat", "all", label_format="nyu40")
    (tmp_path / "garbage.npy").write_bytes(b"not a numpy file")
    with pytest.raises(SynergyError, match="garbage.npy must hold"):
        NYUDepthV2Dataset(mat, "all", class_mapping=tmp_path / "garbage.npy")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00 1 2")
    with pytest.raises(SynergyError, match="binary.txt must hold"):
        NYUDepthV2Dataset(mat, "train", tmp_path / "binary.txt", tmp_path / "map.npy")


def test_nyu_dataset_works_in_dataloader_workers(tmp_path):
    mat = tmp_path / "nyu.mat"
    _nyu_mat(mat, max_label=40)
    dataset = NYUDepthV2Dataset(mat, "all", label_format="nyu40")
    dataset[0]  # opens the file in this process; workers must open their own
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2)
    batches = list(loader)
    assert sum(b["image"].shape[0] for b in batches) == 5


def test_registry_builds_by_name_and_rejects_unknown_options(tmp_path):
    from synergy_ros.data import DATASETS, build_dataset, dataset_class

    assert set(DATASETS) == {"synthetic", "nyu", "kitti", "kitti_stereo", "cityscapes",
                             "folder", "bag"}
    for kind in DATASETS:
        assert dataset_class(kind).__name__.endswith("Dataset")
    dataset = build_dataset("synthetic", split="val", num_samples=2, height=8, width=8)
    assert len(dataset) == 2
    with pytest.raises(SynergyError, match="valid options: .*num_samples"):
        build_dataset("synthetic", samples=2)
    with pytest.raises(SynergyError, match="needs option"):
        build_dataset("cityscapes")
    with pytest.raises(SynergyError, match="unknown dataset kind"):
        build_dataset("imagenet")
