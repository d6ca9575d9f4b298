"""Semantic label sets: class names, colour palettes and raw-id -> train-id tables.

A :class:`LabelSet` names the classes a model predicts (train ids ``0 .. C-1``); 255 is the
ignore id everywhere (losses, metrics, datasets). Label sets:

- ``synthetic``: the classes of :mod:`synergy_ros.data.synthetic` scenes.
- ``nyu40``: the 40 classes of Gupta et al. (NYU Depth v2 mapped 894 -> 40). Raw NYU-40 label
  ``k`` (1..40) is train id ``k - 1``; raw 0 (unlabelled) is 255.
- ``cityscapes19``: the 19 official Cityscapes train ids (cityscapesScripts ``labels.py``).
- ``cityscapes21``: the paper's "21 categories (train IDs)" (Jiao et al. 2018, supplementary
  sec. 8). The paper does not list them; we take the 19 train ids plus the two remaining
  vehicle classes that carry instances but are ``ignoreInEval`` in the official table,
  ``caravan`` (train id 19) and ``trailer`` (train id 20). Every other label id is ignored
  (255), exactly as for ``cityscapes19``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from synergy_ros.core.errors import SynergyError

IGNORE_INDEX = 255

SYNTHETIC_CLASSES = ("floor", "wall", "ceiling", "box", "cylinder", "sky")
SYNTHETIC_PALETTE = ((128, 64, 128), (70, 70, 70), (220, 220, 200), (230, 150, 40),
                     (40, 120, 230), (70, 130, 180))

NYU40_CLASSES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop")

# Official Cityscapes label table (cityscapesScripts/helpers/labels.py): name, id, trainId,
# colour. License plate (id -1) never appears in *_labelIds.png and is left out.
CITYSCAPES_LABELS = (
    ("unlabeled", 0, 255, (0, 0, 0)), ("ego vehicle", 1, 255, (0, 0, 0)),
    ("rectification border", 2, 255, (0, 0, 0)), ("out of roi", 3, 255, (0, 0, 0)),
    ("static", 4, 255, (0, 0, 0)), ("dynamic", 5, 255, (111, 74, 0)),
    ("ground", 6, 255, (81, 0, 81)), ("road", 7, 0, (128, 64, 128)),
    ("sidewalk", 8, 1, (244, 35, 232)), ("parking", 9, 255, (250, 170, 160)),
    ("rail track", 10, 255, (230, 150, 140)), ("building", 11, 2, (70, 70, 70)),
    ("wall", 12, 3, (102, 102, 156)), ("fence", 13, 4, (190, 153, 153)),
    ("guard rail", 14, 255, (180, 165, 180)), ("bridge", 15, 255, (150, 100, 100)),
    ("tunnel", 16, 255, (150, 120, 90)), ("pole", 17, 5, (153, 153, 153)),
    ("polegroup", 18, 255, (153, 153, 153)), ("traffic light", 19, 6, (250, 170, 30)),
    ("traffic sign", 20, 7, (220, 220, 0)), ("vegetation", 21, 8, (107, 142, 35)),
    ("terrain", 22, 9, (152, 251, 152)), ("sky", 23, 10, (70, 130, 180)),
    ("person", 24, 11, (220, 20, 60)), ("rider", 25, 12, (255, 0, 0)),
    ("car", 26, 13, (0, 0, 142)), ("truck", 27, 14, (0, 0, 70)),
    ("bus", 28, 15, (0, 60, 100)), ("caravan", 29, 255, (0, 0, 90)),
    ("trailer", 30, 255, (0, 0, 110)), ("train", 31, 16, (0, 80, 100)),
    ("motorcycle", 32, 17, (0, 0, 230)), ("bicycle", 33, 18, (119, 11, 32)),
)
CITYSCAPES21_EXTRA = ("caravan", "trailer")  # train ids 19, 20 in ``cityscapes21``


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """A set of semantic classes.

    Attributes:
        name: label-set name (``get_label_set`` key).
        class_names: one name per train id ``0 .. C-1``.
        palette: one (r, g, b) 0-255 colour per train id.
        raw_to_train: (256,) uint8 lookup table from the dataset's raw label ids (e.g.
            Cityscapes labelIds, NYU-40 ids) to train ids, 255 = ignore; ``None`` when the raw
            ids already are train ids (synthetic).
    """

    name: str
    class_names: tuple
    palette: tuple
    raw_to_train: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes C (train ids 0 .. C-1)."""
        return len(self.class_names)

    def map_raw(self, raw: np.ndarray) -> np.ndarray:
        """Map raw dataset label ids (H, W) to train ids (H, W) uint8, 255 = ignore.

        Raises SynergyError for ids the table does not know (> 255 or negative).
        """
        raw = np.asarray(raw)
        if self.raw_to_train is None:
            return check_train_ids(raw, self.num_classes, f"{self.name} labels").astype(np.uint8)
        if raw.size and (raw.min() < 0 or raw.max() > 255):
            raise SynergyError(f"{self.name}: raw label ids must be 0..255, found "
                               f"{int(raw.min())}..{int(raw.max())}; is this the right label "
                               "file (e.g. *_gtFine_labelIds.png, not *_color.png)?")
        return self.raw_to_train[raw.astype(np.intp)]


def check_train_ids(labels: np.ndarray, num_classes: int, source: str) -> np.ndarray:
    """Return ``labels`` unchanged if every id is in ``0 .. num_classes-1`` or 255.

    Raises SynergyError naming ``source`` and the offending ids otherwise.
    """
    labels = np.asarray(labels)
    values = np.unique(labels)
    bad = values[((values < 0) | (values >= num_classes)) & (values != IGNORE_INDEX)]
    if bad.size:
        raise SynergyError(f"{source}: label ids {bad[:10].tolist()} are out of range for "
                           f"{num_classes} classes (valid 0..{num_classes - 1}, 255 = ignore); "
                           "check the label set / class mapping")
    return labels


def _voc_palette(count: int) -> tuple:
    """The PASCAL-VOC bit-interleaved colour map (distinct, deterministic) for ``count`` ids."""
    colours = []
    for index in range(1, count + 1):  # skip black (index 0)
        r = g = b = 0
        cid = index
        for shift in range(7, -1, -1):
            r |= ((cid >> 0) & 1) << shift
            g |= ((cid >> 1) & 1) << shift
            b |= ((cid >> 2) & 1) << shift
            cid >>= 3
        colours.append((r, g, b))
    return tuple(colours)


def _cityscapes(extra: tuple) -> LabelSet:
    trained = sorted((row for row in CITYSCAPES_LABELS if row[2] != 255), key=lambda r: r[2])
    rows = trained + [row for name in extra for row in CITYSCAPES_LABELS if row[0] == name]
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for train_id, (_, label_id, _, _) in enumerate(rows):
        table[label_id] = train_id
    return LabelSet(f"cityscapes{len(rows)}", tuple(r[0] for r in rows),
                    tuple(r[3] for r in rows), table)


def _nyu40() -> LabelSet:
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    table[1:41] = np.arange(40, dtype=np.uint8)
    return LabelSet("nyu40", NYU40_CLASSES, _voc_palette(40), table)


_FACTORIES = {
    "synthetic": lambda: LabelSet("synthetic", SYNTHETIC_CLASSES, SYNTHETIC_PALETTE),
    "nyu40": _nyu40,
    "cityscapes19": lambda: _cityscapes(()),
    "cityscapes21": lambda: _cityscapes(CITYSCAPES21_EXTRA),
}
LABEL_SET_NAMES = tuple(_FACTORIES)


def get_label_set(name: str) -> LabelSet:
    """Return the label set called ``name`` (one of :data:`LABEL_SET_NAMES`)."""
    if name not in _FACTORIES:
        raise SynergyError(f"unknown label set {name!r}; choose one of "
                           f"{', '.join(LABEL_SET_NAMES)}")
    return _FACTORIES[name]()


def palette_lut(palette, num_classes: int) -> np.ndarray:
    """(max(num_classes, 1), 3) uint8 colour per class id; classes without a colour are black."""
    lut = np.zeros((max(int(num_classes), 1), 3), np.uint8)
    colours = np.asarray(palette, np.uint8).reshape(-1, 3)[:len(lut)]
    lut[:len(colours)] = colours
    return lut


def lookup_colours(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``lut[labels]`` with ids past the end taking the last colour (``np.take`` mode clip).

    Looked up as packed 4-byte colours and unpacked by one OpenCV pass: 2x faster than taking
    3-byte rows (0.36 against 0.78 ms at 640x480).

    Args:
        labels: (H, W) integer class ids.
        lut: (C, 3) uint8 colour per class id (:func:`palette_lut`).

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    import cv2

    labels = np.asarray(labels)
    lut = np.asarray(lut, np.uint8)
    if labels.ndim != 2 or labels.size == 0 or lut.ndim != 2 or lut.shape[1] != 3:
        raise ValueError(f"need (H, W) labels and a (C, 3) colour table, got {labels.shape} "
                         f"and {lut.shape}")
    packed = np.zeros((len(lut), 4), np.uint8)
    packed[:, :3] = lut
    rgba = np.take(packed.view(np.uint32)[:, 0], labels, mode="clip")  # (H, W) 4-byte colours
    return cv2.cvtColor(rgba.view(np.uint8).reshape(labels.shape + (4,)), cv2.COLOR_RGBA2RGB)


def colorize(labels: np.ndarray, palette) -> np.ndarray:
    """Colour a label image.

    Args:
        labels: (H, W) integer class ids (any count, mono16 models included); ids outside the
            palette (e.g. 255 = ignore) are black.
        palette: sequence of (r, g, b) 0-255 colours, one per class id.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), got shape {labels.shape}")
    lut = palette_lut(palette, len(np.asarray(palette).reshape(-1, 3)))
    ids = labels.astype(np.int64)
    valid = (ids >= 0) & (ids < len(lut))
    out = lut[np.where(valid, ids, 0)]
    out[~valid] = 0
    return out
