"""Trainer plumbing without a network: schedules, resumable sampling, seeded samples, preflight."""
import random

import numpy as np
import pytest
import torch

from synergy_ros.core.errors import SynergyError
from synergy_ros.learning.batches import (SeededDataset, TargetFilter, batch_schedule,
                                          batches_per_epoch, build_dataset, consumed_per_source,
                                          make_loader, preflight)
from synergy_ros.learning.config import load_config
from synergy_ros.learning.trainer import batch_kind, lr_factor


class RandomSamples:
    """A dataset whose samples draw from the global generators (like random augmentation)."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        return {"index": index, "draw": torch.tensor([random.random(), np.random.rand(),
                                                      float(torch.rand(()))])}


def _indices(loader):
    return [int(i) for batch in loader for i in batch["index"]]


def test_schedules():
    schedule = load_config()["schedule"]
    assert lr_factor(0, 100, schedule) == 1.0
    assert lr_factor(50, 100, schedule) == pytest.approx(0.5 ** 0.9)
    assert lr_factor(100, 100, schedule) == 0.0
    cosine = {**schedule, "name": "cosine", "min_lr_ratio": 0.1}
    assert lr_factor(50, 100, cosine) == pytest.approx(0.1 + 0.9 * 0.5)
    step = {**schedule, "name": "step", "step_size": 10, "gamma": 0.5}
    assert [lr_factor(s, 100, step) for s in (0, 9, 10, 25)] == [1, 1, 0.5, 0.25]
    warm = {**schedule, "name": "constant", "warmup_steps": 4}
    assert [lr_factor(s, 100, warm) for s in range(5)] == [0.25, 0.5, 0.75, 1, 1]


def test_batch_schedule_and_consumption():
    assert batch_schedule([3, 1]) == [0, 1, 0, 0]
    assert batch_schedule([2, 2]) == [0, 1, 0, 1]
    assert consumed_per_source([0, 1, 0, 0], 2, 2) == [1, 1]
    assert consumed_per_source([0, 1, 0, 0], 3, 2) == [2, 1]
    assert batches_per_epoch(10, 3, 1, drop_last=True) == 3
    assert batches_per_epoch(10, 3, 2, drop_last=True) == 1
    assert batches_per_epoch(10, 3, 1, drop_last=False) == 4


def test_resumed_loader_continues_the_same_order_and_samples():
    data = SeededDataset(RandomSamples(), seed=3)
    kwargs = dict(batch_size=2, shuffle=True, seed=3, rank=0, world_size=1, num_workers=0,
                  drop_last=True)
    full = list(make_loader(data, epoch=1, skip_batches=0, **kwargs))
    resumed = list(make_loader(data, epoch=1, skip_batches=2, **kwargs))
    assert len(full) == 5 and len(resumed) == 3
    for a, b in zip(full[2:], resumed):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["draw"], b["draw"])
    other_epoch = list(make_loader(data, epoch=2, skip_batches=0, **kwargs))
    assert _indices(other_epoch) != _indices(full)
    assert sorted(_indices(full)) == list(range(10))


def test_seeded_samples_do_not_disturb_global_generators():
    data = SeededDataset(RandomSamples(), seed=0)
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    first = data[4]["draw"]
    after = (random.random(), np.random.rand(), float(torch.rand(())))
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    assert after == (random.random(), np.random.rand(), float(torch.rand(())))
    assert torch.equal(first, data[4]["draw"])
    data.epoch = 1
    assert not torch.equal(first, data[4]["draw"])  # a new epoch gets new augmentation


def test_worker_processes_give_the_same_samples_as_the_main_process():
    data = SeededDataset(RandomSamples(), seed=1)
    kwargs = dict(batch_size=2, shuffle=True, seed=1, epoch=0, rank=0, world_size=1,
                  drop_last=True, skip_batches=1)
    main = list(make_loader(data, num_workers=0, **kwargs))
    workers = list(make_loader(data, num_workers=2, **kwargs))
    for a, b in zip(main, workers):
        assert torch.equal(a["draw"], b["draw"])


def test_distributed_shards_are_disjoint():
    data = SeededDataset(RandomSamples(), seed=0)
    shards = [_indices(make_loader(data, batch_size=2, shuffle=True, seed=0, epoch=0,
                                   skip_batches=0, rank=r, world_size=2, num_workers=0,
                                   drop_last=True)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 4
    assert not set(shards[0]) & set(shards[1])


def _sample(h=4, w=6, label=1):
    return {"image": torch.zeros(3, h, w), "depth": torch.ones(1, h, w),
            "labels": torch.full((h, w), label, dtype=torch.int64),
            "has_depth": True, "has_labels": True}


@pytest.mark.parametrize("samples, pattern", [
    ([], "is empty"),
    ([_sample(h=5)], r"image has shape \(3, 5, 6\), expected \(3, 4, 6\)"),
    ([_sample(label=7)], r"label ids 7..7 are outside 0..5"),
    ([{**_sample(), "labels": torch.ones(4, 6, dtype=torch.uint8)}], "labels must be int64"),
    ([{**_sample(), "has_depth": False, "has_labels": False}], "neither depth nor labels"),
    ([{"image": torch.zeros(3, 4, 6)}], "lacks"),
])
def test_preflight_names_the_problem(samples, pattern):
    with pytest.raises(SynergyError, match=pattern):
        preflight(samples, "data.train[0]", [4, 6], num_classes=6, samples=2)


def test_preflight_accepts_ignore_label():
    preflight([_sample(label=255), _sample(label=5)], "x", [4, 6], num_classes=6, samples=2)


def test_batch_kind():
    def batch(d, s):
        return {"has_depth": torch.tensor(d), "has_labels": torch.tensor(s)}
    assert batch_kind(batch([True, True], [False, False])) == "depth"
    assert batch_kind(batch([False], [True])) == "semantic"
    assert batch_kind(batch([True, False], [False, True])) == "joint"


def test_target_filter_marks_dropped_targets_without_touching_the_dataset():
    kept = _sample(label=3)  # a dataset that hands out the same tensors every time
    depth_only = TargetFilter([kept], ["depth"])[0]
    labels_only = TargetFilter([kept], ["labels"])[0]
    assert depth_only["has_depth"] and not depth_only["has_labels"]
    assert bool((depth_only["labels"] == 255).all()) and bool((depth_only["depth"] == 1).all())
    assert labels_only["has_labels"] and not labels_only["has_depth"]
    assert bool((labels_only["depth"] == 0).all()) and bool((labels_only["labels"] == 3).all())
    assert bool((kept["depth"] == 1).all()) and bool((kept["labels"] == 3).all())
    assert kept["has_depth"] and kept["has_labels"]


def test_release_baselines_take_depth_and_labels_from_every_training_dataset():
    from synergy_ros.learning.release import training_statistics

    depth_only = {**_sample(label=255), "depth": torch.full((1, 4, 6), 2.0),
                  "has_labels": False}
    labels_only = {**_sample(label=4), "depth": torch.zeros(1, 4, 6), "has_depth": False}
    joint = _sample(label=1)  # depth 1 m, class 1
    datasets = [[depth_only], [labels_only, labels_only, joint]]
    mean_depth, majority = training_statistics(datasets, samples=8, num_classes=6)
    assert mean_depth == pytest.approx((24 * 2.0 + 24 * 1.0) / 48) and majority == 4
    mean_depth, majority = training_statistics(datasets, samples=2, num_classes=6)
    assert mean_depth == pytest.approx(2.0) and majority == 4  # first 2 samples of each
    with pytest.raises(SynergyError, match="no labelled pixel"):
        training_statistics([[depth_only]], samples=8, num_classes=6)
    with pytest.raises(SynergyError, match="no valid depth"):
        training_statistics([[labels_only]], samples=8, num_classes=6)


@pytest.mark.parametrize("augment, pattern", [
    ("{depth_mode: sideways}", r"augment' value: depth_mode must be 'divide' or 'keep'"),
    ("{scale_range: [1.5, 1.2]}", r"augment' value: scale_range must be 0 < min <= max"),
    ("{zoom: 2}", r"augment' keys .*valid: scale_range"),
])
def test_bad_augment_options_are_clear_errors(augment, pattern):
    spec = load_config(None, [f"data.train=[{{type: synthetic, num_samples: 2, "
                              f"augment: {augment}}}]"])["data"]["train"][0]
    with pytest.raises(SynergyError, match=pattern):
        build_dataset(spec, [16, 16], True, 0)
