"""Training data plumbing: datasets from config specs, resumable sampling, batch schedules.

- :func:`build_dataset` turns a config spec ``{type: <kind>, augment: {...}, targets: [...],
  **options}`` into a dataset of the :mod:`synergy_ros.data` registry (synthetic, nyu, kitti,
  kitti_stereo, cityscapes, folder, bag; options: docs/data.md) with the trainer's transform.
- :class:`SeededDataset` makes every sample's augmentation a pure function of
  ``(seed, epoch, index)``: the same sample gets the same crop/flip/jitter whether it is loaded
  in the main process or any worker, before or after a resume.
- :func:`make_loader` shards with ``DistributedSampler`` (one process is the 1-replica case)
  and skips the batches of the epoch that a resumed run already consumed.
- :func:`batch_schedule` interleaves several loaders batch by batch (weakly supervised
  alternating training) and says how many batches of each were consumed after k steps.
- :func:`preflight` checks a few samples per dataset against the contract before training.
"""
from __future__ import annotations

import inspect
import itertools
import random
from typing import Any, Iterator, Sequence

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.labels import IGNORE_INDEX
from synergy_ros.core.modelfile import IMAGENET_MEAN, IMAGENET_STD
from synergy_ros.data import DATASETS
from synergy_ros.data import build_dataset as build_registered
from synergy_ros.data.transforms import build_transform

#: Spec keys consumed here (the rest go to the dataset class): ``augment`` holds keyword
#: arguments of ``synergy_ros.data.transforms.build_transform`` (scale_range, depth_mode,
#: flip, jitter); training datasets augment, validation datasets only resize. ``targets``
#: (subset of ``[depth, labels]``) keeps only those targets of a dataset, e.g. to train
#: weakly supervised on synthetic data as if one half had depth only and the other labels.
AUGMENT_KEY = "augment"
TARGETS_KEY = "targets"
TARGET_NAMES = ("depth", "labels")


def spec_normalisation(spec: dict | None) -> tuple[tuple, tuple] | None:
    """(mean, std) a dataset spec's ``augment`` sets (a missing half is ImageNet's), or None."""

    augment = (spec or {}).get(AUGMENT_KEY) or {}
    if not isinstance(augment, dict) or ("mean" not in augment and "std" not in augment):
        return None
    try:
        mean = tuple(float(v) for v in augment.get("mean", IMAGENET_MEAN))
        std = tuple(float(v) for v in augment.get("std", IMAGENET_STD))
    except (TypeError, ValueError) as exc:
        raise SynergyError(f"augment mean/std must be 3 numbers each ({exc})") from exc
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise SynergyError(f"augment mean/std must be 3 numbers each, std > 0; got mean {mean}, "
                           f"std {std}")
    return mean, std


def training_normalisation(train_specs: Sequence[dict]) -> tuple[tuple, tuple]:
    """The (mean, std) the model is trained with: what every ``data.train`` spec's ``augment``
    says (ImageNet's when none does). They must agree: a model has one input normalisation,
    and it is written into the model file for inference."""

    default = (tuple(IMAGENET_MEAN), tuple(IMAGENET_STD))
    chosen = [spec_normalisation(spec) or default for spec in train_specs]
    if any(c != chosen[0] for c in chosen):
        listed = "; ".join(f"data.train[{i}]: mean {m}, std {s}"
                           for i, (m, s) in enumerate(chosen))
        raise SynergyError(f"the training datasets normalise differently ({listed}); a model "
                           "has one input normalisation: set the same augment mean/std on all")
    return chosen[0] if chosen else default


def with_normalisation(spec: dict, mean: Sequence[float], std: Sequence[float],
                       role: str) -> dict:
    """``spec`` with ``augment`` mean/std set to the model's, so an evaluation dataset sees what
    inference feeds the network; SynergyError when the spec sets other values."""
    own = spec_normalisation(spec)
    model = (tuple(float(v) for v in mean), tuple(float(v) for v in std))
    if own is not None and own != model:
        raise SynergyError(f"{role} sets augment mean {own[0]}, std {own[1]} but the model is "
                           f"trained with mean {model[0]}, std {model[1]}; drop them from "
                           f"{role} (it uses the model's)")
    augment = dict(spec.get(AUGMENT_KEY) or {})
    augment.update(mean=list(model[0]), std=list(model[1]))
    return {**spec, AUGMENT_KEY: augment}


class TargetFilter:
    """Drop targets of a dataset: depth becomes 0 (invalid), labels 255 (ignore)."""

    def __init__(self, dataset: Any, targets: Sequence[str]) -> None:
        self.dataset = dataset
        self.keep_depth = "depth" in targets
        self.keep_labels = "labels" in targets
        self.label_set = getattr(dataset, "label_set", None)
        self.datasets = [dataset]  # let SeededDataset.set_epoch reach the wrapped dataset

    def __len__(self) -> int:
        """Number of samples of the wrapped dataset."""
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        """The wrapped sample with the dropped targets marked invalid.

        New tensors replace the dropped ones: the wrapped dataset's tensors may share memory
        with arrays it keeps (``torch.from_numpy``), which must not be overwritten.
        """
        import torch

        sample = dict(self.dataset[index])
        if not self.keep_depth:
            sample["depth"] = torch.zeros_like(sample["depth"])
            sample["has_depth"] = False
        if not self.keep_labels:
            sample["labels"] = torch.full_like(sample["labels"], IGNORE_INDEX)
            sample["has_labels"] = False
        return sample


def build_dataset(spec: dict, input_size: Sequence[int], train: bool, seed: int) -> Any:
    """Build the dataset a config spec describes, resized/augmented to ``input_size``.

    Args:
        spec: ``{type: <kind of synergy_ros.data.DATASETS>, augment: {...}, targets: [...],
            **dataset options}``.
        input_size: (height, width) pixels of the training samples.
        train: training (random augmentation) or evaluation (resize only) transform.
        seed: augmentation seed (the dataset seeds sample i of epoch e from it).
    """

    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in DATASETS:
        raise SynergyError(f"dataset type {kind!r} is unknown; use one of "
                           f"{', '.join(DATASETS)}, e.g. {{type: synthetic}}")
    owned = sorted({"transform", "seed"} & set(spec))
    if owned:
        raise SynergyError(f"{kind} dataset: {owned} are set by the trainer (augmentation: "
                           f"'{AUGMENT_KEY}', seed: the top-level 'seed'); remove them")
    augment = spec.pop(AUGMENT_KEY, None) or {}
    targets = spec.pop(TARGETS_KEY, None) or list(TARGET_NAMES)
    if (not isinstance(targets, list) or not targets
            or any(t not in TARGET_NAMES for t in targets)):
        raise SynergyError(f"{kind} dataset: 'targets' must be a non-empty subset of "
                           f"{list(TARGET_NAMES)}, got {targets!r}")
    if not isinstance(augment, dict):
        raise SynergyError(f"{kind} dataset: 'augment' must be a mapping of build_transform "
                           f"arguments, got {augment!r}")
    height, width = (int(v) for v in input_size)
    if kind == "synthetic":  # render at the training size unless the spec says otherwise
        spec.setdefault("height", height)
        spec.setdefault("width", width)
        spec.setdefault("split", "train" if train else "val")
    try:
        transform = build_transform((height, width), train, **augment)
    except TypeError as exc:
        valid = [p for p in inspect.signature(build_transform).parameters
                 if p not in ("size", "train")]
        raise SynergyError(f"{kind} dataset: bad 'augment' keys ({exc}); valid: "
                           f"{', '.join(valid)}") from exc
    except ValueError as exc:  # e.g. depth_mode not divide/keep, scale_range min > max
        raise SynergyError(f"{kind} dataset: bad 'augment' value: {exc}") from exc
    options = {**spec, "transform": transform, "seed": seed}
    dataset = build_registered(kind, **options)
    if len(targets) < len(TARGET_NAMES):
        dataset = TargetFilter(dataset, targets)
    return dataset


class SeededDataset:
    """Wrap a dataset so sample ``i`` of epoch ``e`` always sees the same random state.

    Before calling the wrapped ``__getitem__`` the python, numpy and torch global generators
    are seeded from ``(seed, epoch, index)``; their previous states are restored afterwards,
    so the training process's own random streams are not disturbed.
    """

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s augmentation here and in the wrapped dataset(s)."""
        self.epoch = int(epoch)
        pending = [self.dataset]
        while pending:  # ConcatDataset of several datasets: reach every member
            dataset = pending.pop()
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(self.epoch)
            pending.extend(getattr(dataset, "datasets", ()))

    def __len__(self) -> int:
        """Number of samples of the wrapped dataset."""
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        """Sample ``index`` with generators seeded from (seed, epoch, index)."""
        import numpy as np
        import torch

        sample_seed = (self.seed * 1_000_003 + self.epoch * 7_919 + int(index)) & 0x7FFFFFFF
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            random.seed(sample_seed)
            np.random.seed(sample_seed)
            torch.manual_seed(sample_seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


class SkipSampler:
    """Yield the indices of ``sampler`` after dropping the first ``skip`` of them."""

    def __init__(self, sampler: Any, skip: int) -> None:
        self.sampler = sampler
        self.skip = int(skip)

    def __iter__(self) -> Iterator[int]:
        """Indices after the skipped ones."""
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        """Number of indices yielded."""
        return max(0, len(self.sampler) - self.skip)


def make_loader(dataset: SeededDataset, *, batch_size: int, shuffle: bool, seed: int,
                epoch: int, skip_batches: int, rank: int, world_size: int, num_workers: int,
                drop_last: bool, pin_memory: bool = False) -> Any:
    """DataLoader for one epoch, sharded with DistributedSampler, resumable mid-epoch.

    Args:
        dataset: the seeded dataset (its ``epoch`` is set here).
        batch_size: samples per batch on this process.
        shuffle: reshuffle with ``seed + epoch`` (identical on every rank, so shards are
            disjoint).
        skip_batches: batches of this epoch already consumed (a resumed run).
        rank, world_size: this process's shard.
        drop_last: drop the last incomplete batch (training: keeps BatchNorm away from
            1-sample batches and all ranks in step).
    """
    import torch
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    dataset.set_epoch(epoch)
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle,
                                 seed=seed, drop_last=drop_last)
    sampler.set_epoch(epoch)
    generator = torch.Generator()
    generator.manual_seed(seed * 10_007 + epoch)  # worker base seeds; global RNG untouched
    return DataLoader(dataset, batch_size=batch_size,
                      sampler=SkipSampler(sampler, skip_batches * batch_size),
                      num_workers=num_workers, drop_last=drop_last, generator=generator,
                      pin_memory=pin_memory, persistent_workers=False)


def batches_per_epoch(num_samples: int, batch_size: int, world_size: int,
                      drop_last: bool) -> int:
    """Batches each process gets per epoch from a dataset of ``num_samples``."""
    per_rank = (num_samples // world_size if drop_last
                else -(-num_samples // world_size))
    return per_rank // batch_size if drop_last else -(-per_rank // batch_size)


def batch_schedule(lengths: Sequence[int]) -> list[int]:
    """Source index of every batch of an epoch, round-robin over sources until all are spent.

    ``batch_schedule([3, 1]) == [0, 1, 0, 0]``: each training step takes one batch from the
    next source that still has batches.
    """
    remaining = list(lengths)
    order: list[int] = []
    while any(remaining):
        for source, left in enumerate(remaining):
            if left:
                order.append(source)
                remaining[source] -= 1
    return order


def consumed_per_source(schedule: Sequence[int], steps: int, num_sources: int) -> list[int]:
    """Batches of each source used by the first ``steps`` entries of ``schedule``."""
    counts = [0] * num_sources
    for source in schedule[:steps]:
        counts[source] += 1
    return counts


def preflight(dataset: Any, name: str, input_size: Sequence[int], num_classes: int,
              samples: int) -> None:
    """Check the first ``samples`` samples against the training-sample contract.

    Raises SynergyError naming the dataset, the sample and what is wrong: empty dataset,
    wrong tensor shapes (image (3,H,W), depth (1,H,W), labels (H,W) at ``input_size``),
    dtypes, or label ids outside ``0..num_classes-1`` other than 255.
    """
    import torch

    try:
        count = len(dataset)
    except Exception as exc:  # noqa: BLE001 - any failure here is the dataset's
        raise SynergyError(f"{name}: cannot determine its size ({exc})") from exc
    if count == 0:
        raise SynergyError(f"{name} is empty (0 samples); check the dataset path and split "
                           "in the config")
    height, width = (int(v) for v in input_size)
    for index in range(min(samples, count)):
        sample = dataset[index]
        where = f"{name} sample {index}"
        missing = [k for k in ("image", "depth", "labels", "has_depth", "has_labels")
                   if k not in sample]
        if missing:
            raise SynergyError(f"{where} lacks {missing}; datasets must produce the training "
                               "sample contract (docs/architecture.md)")
        image, depth, labels = sample["image"], sample["depth"], sample["labels"]
        expected = {"image": (3, height, width), "depth": (1, height, width),
                    "labels": (height, width)}
        for key, shape in expected.items():
            actual = tuple(sample[key].shape)
            if actual != shape:
                raise SynergyError(f"{where}: {key} has shape {actual}, expected {shape} for "
                                   f"data.input_size [{height}, {width}]; set the dataset's "
                                   "resize/crop to the input size")
        if image.dtype != torch.float32 or depth.dtype != torch.float32:
            raise SynergyError(f"{where}: image/depth must be float32, got {image.dtype}/"
                               f"{depth.dtype}")
        if labels.dtype != torch.int64:
            raise SynergyError(f"{where}: labels must be int64, got {labels.dtype}")
        valid = labels[labels != 255]
        if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= num_classes):
            raise SynergyError(f"{where}: label ids {int(valid.min())}..{int(valid.max())} are "
                               f"outside 0..{num_classes - 1} (255 = ignore); the dataset's "
                               f"label set does not match model.num_classes={num_classes}")
        if not (bool(sample["has_depth"]) or bool(sample["has_labels"])):
            raise SynergyError(f"{where} has neither depth nor labels; nothing to train on")
