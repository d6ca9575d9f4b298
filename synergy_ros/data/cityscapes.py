"""Cityscapes fine annotations: ``leftImg8bit`` images with ``gtFine`` label ids -> train ids.

Layout (the official download, ``leftImg8bit_trainvaltest.zip`` + ``gtFine_trainvaltest.zip``
unpacked into one ``root``)::

    root/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    root/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Label ids (0..33) are mapped with the official labelId -> trainId table to the label set
``cityscapes19`` (19 train ids) or ``cityscapes21`` (the paper's 21: + caravan, trailer; see
:mod:`synergy_ros.core.labels`); everything else is 255 (ignore). Cityscapes has no metric depth
here, so samples have ``has_depth=False`` (depth all 0): the semantics-only half of the paper's
weakly-supervised outdoor training. ``max_samples`` with ``subset_seed`` draws a random
subset (the paper uses 200 random fine-annotated images).
"""
from __future__ import annotations

import os

import numpy as np

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.labels import get_label_set
from synergy_ros.data.base import SampleDataset, read_rgb, read_single_channel, require_dir

SPLITS = ("train", "val", "test")
LAYOUT = ("<root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png and "
          "<root>/gtFine/<split>/<city>/*_gtFine_labelIds.png")


class CityscapesDataset(SampleDataset):
    """Cityscapes images with semantic labels only.

    Args:
        root: folder holding ``leftImg8bit/`` and ``gtFine/``.
        split: ``train``, ``val`` or ``test``.
        label_set: ``cityscapes19`` or ``cityscapes21``.
        max_samples: keep a random subset of this many images (None = all).
        subset_seed: seed of that subset.
        transform, seed: see :class:`~synergy_ros.data.base.SampleDataset`.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 label_set: str = "cityscapes19", max_samples: int | None = None,
                 subset_seed: int = 0, transform=None, seed: int = 0) -> None:
        super().__init__(transform, seed)
        if split not in SPLITS:
            raise SynergyError(f"Cityscapes split must be one of {SPLITS}, got {split!r}")
        if label_set not in ("cityscapes19", "cityscapes21"):
            raise SynergyError(f"Cityscapes label_set must be cityscapes19 or cityscapes21, "
                               f"got {label_set!r}")
        root = require_dir(root, "Cityscapes root", LAYOUT)
        images_dir = require_dir(root / "leftImg8bit" / split, "Cityscapes image folder",
                                 LAYOUT)
        labels_dir = require_dir(root / "gtFine" / split, "Cityscapes gtFine folder", LAYOUT)
        images = sorted(images_dir.glob("*/*_leftImg8bit.png"))
        if not images:
            raise SynergyError(f"no *_leftImg8bit.png under {images_dir}/<city>/; expected "
                               f"layout: {LAYOUT}")
        pairs = []
        for image in images:
            stem = image.name[:-len("_leftImg8bit.png")]
            label = labels_dir / image.parent.name / f"{stem}_gtFine_labelIds.png"
            if not label.is_file():
                raise SynergyError(f"Cityscapes label {label} is missing for {image}; unpack "
                                   f"gtFine_trainvaltest.zip into {root} ({LAYOUT})")
            pairs.append((image, label))
        if max_samples is not None:
            if int(max_samples) < 1:
                raise SynergyError(f"max_samples must be >= 1, got {max_samples}")
            keep = np.random.default_rng(subset_seed).permutation(len(pairs))[:int(max_samples)]
            pairs = [pairs[i] for i in sorted(keep)]
        self.pairs = pairs
        self.label_set = get_label_set(label_set)
        self.name = f"Cityscapes {split}"

    def __len__(self) -> int:
        """Number of images."""
        return len(self.pairs)

    def describe(self, index: int) -> str:
        """Name the image file."""
        return str(self.pairs[index][0])

    def load(self, index: int) -> dict:
        """Read the image and its train-id labels."""
        image_path, label_path = self.pairs[index]
        label_ids = read_single_channel(label_path, (np.uint8,))
        return {"image": read_rgb(image_path), "labels": self.label_set.map_raw(label_ids),
                "has_depth": False, "has_labels": True}
