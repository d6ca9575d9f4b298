"""Datasets producing the training-sample contract, and a name -> dataset registry.

``build_dataset(kind, **options)`` builds one dataset by name (what config files use); the
classes live in their own modules (imported on demand, so ``import synergy_ros.data`` stays
light). Layouts and options: docs/data.md.
"""
from __future__ import annotations

import importlib
import inspect

from synergy_ros.core.errors import SynergyError

#: dataset kind -> (module, class)
DATASETS = {
    "synthetic": ("synergy_ros.data.synthetic", "SyntheticDataset"),
    "nyu": ("synergy_ros.data.nyu", "NYUDepthV2Dataset"),
    "kitti": ("synergy_ros.data.kitti", "KittiDataset"),
    "kitti_stereo": ("synergy_ros.data.kitti", "KittiStereoDataset"),
    "cityscapes": ("synergy_ros.data.cityscapes", "CityscapesDataset"),
    "folder": ("synergy_ros.data.folder", "FolderDataset"),
    "bag": ("synergy_ros.data.bag", "BagDataset"),
}


def dataset_class(kind: str) -> type:
    """The dataset class registered as ``kind``."""
    if kind not in DATASETS:
        raise SynergyError(f"unknown dataset kind {kind!r}; choose one of "
                           f"{', '.join(DATASETS)}")
    module, name = DATASETS[kind]
    return getattr(importlib.import_module(module), name)


def build_dataset(kind: str, /, **options):
    """Build dataset ``kind`` with keyword ``options``; unknown options name the valid ones."""
    cls = dataset_class(kind)
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p in params if p != "self"]
    unknown = [key for key in options if key not in valid]
    if unknown:
        raise SynergyError(f"dataset {kind!r} has no option(s) {unknown}; valid options: "
                           f"{', '.join(valid)}")
    required = [p.name for p in params.values() if p.name != "self"
                and p.default is inspect.Parameter.empty and p.name not in options]
    if required:
        raise SynergyError(f"dataset {kind!r} needs option(s) {required}")
    return cls(**options)
