"""Label sets: class lists, Cityscapes id -> train id tables, palettes, colourising."""
import numpy as np
import pytest

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.labels import (CITYSCAPES_LABELS, IGNORE_INDEX, LABEL_SET_NAMES,
                                     check_train_ids, colorize, get_label_set, lookup_colours)


@pytest.mark.parametrize("name,count", [("synthetic", 6), ("nyu40", 40), ("cityscapes19", 19),
                                        ("cityscapes21", 21)])
def test_label_sets_have_one_distinct_colour_per_class(name, count):
    label_set = get_label_set(name)
    assert label_set.name == name and label_set.num_classes == count
    assert len(label_set.palette) == count
    assert len(set(label_set.class_names)) == count
    if name != "cityscapes19" and name != "cityscapes21":  # official palette repeats none
        assert len(set(label_set.palette)) == count
    assert all(0 <= c <= 255 for rgb in label_set.palette for c in rgb)


def test_cityscapes19_matches_official_train_ids():
    cs = get_label_set("cityscapes19")
    assert cs.class_names[0] == "road" and cs.class_names[10] == "sky"
    assert cs.class_names[13] == "car" and cs.class_names[18] == "bicycle"
    raw = np.array([[7, 8, 26, 33], [0, 29, 30, 255]], dtype=np.uint8)
    train = cs.map_raw(raw)
    assert train.dtype == np.uint8
    assert train.tolist() == [[0, 1, 13, 18], [255, 255, 255, 255]]
    for name, label_id, train_id, colour in CITYSCAPES_LABELS:
        assert cs.map_raw(np.array([[label_id]]))[0, 0] == train_id, name
        if train_id != 255:
            assert cs.palette[train_id] == colour


def test_cityscapes21_adds_caravan_and_trailer():
    cs21 = get_label_set("cityscapes21")
    assert cs21.class_names[:19] == get_label_set("cityscapes19").class_names
    assert cs21.class_names[19:] == ("caravan", "trailer")
    assert cs21.map_raw(np.array([[29, 30, 6]])).tolist() == [[19, 20, 255]]


def test_nyu40_maps_raw_ids_to_zero_based_train_ids():
    nyu = get_label_set("nyu40")
    assert nyu.class_names[0] == "wall" and nyu.class_names[39] == "otherprop"
    assert nyu.map_raw(np.array([[0, 1, 40, 41]])).tolist() == [[255, 0, 39, 255]]


def test_raw_ids_out_of_table_range_are_an_error():
    with pytest.raises(SynergyError, match="0..255"):
        get_label_set("cityscapes19").map_raw(np.array([[300]]))


def test_check_train_ids_names_bad_values():
    check_train_ids(np.array([[0, 5, IGNORE_INDEX]]), 6, "x")
    with pytest.raises(SynergyError, match=r"\[6, 9\].*my labels|my labels.*\[6, 9\]"):
        check_train_ids(np.array([[0, 6, 9]]), 6, "my labels")


def test_unknown_label_set_lists_choices():
    with pytest.raises(SynergyError) as info:
        get_label_set("ade20k")
    for name in LABEL_SET_NAMES:
        assert name in str(info.value)


def test_colorize_uses_palette_and_blacks_out_ignore():
    palette = [(10, 20, 30), (200, 100, 0)]
    out = colorize(np.array([[0, 1], [255, 1]], dtype=np.uint8), palette)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[0, 0].tolist() == [10, 20, 30] and out[0, 1].tolist() == [200, 100, 0]
    assert out[1, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        colorize(np.zeros((2, 2, 2)), palette)


def test_colorize_colours_ids_above_255():
    """Models with more than 256 classes (mono16 output) get their colours, not black."""
    import numpy as np

    from synergy_ros.core.labels import colorize

    palette = [(i % 256, (i // 256) * 10, 7) for i in range(300)]
    out = colorize(np.array([[299, 3], [300, 255]]), palette)
    assert out[0, 0].tolist() == [299 % 256, 10, 7]
    assert out[0, 1].tolist() == [3, 0, 7]
    assert out[1, 0].tolist() == [0, 0, 0]  # beyond the palette
    assert out[1, 1].tolist() == [255, 0, 7]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_lookup_colours_is_lut_indexing_clipped(dtype):
    rng = np.random.default_rng(5)
    lut = rng.integers(0, 256, (7, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, (13, 17)).astype(dtype)  # ids 7..9 past the table
    colours = lookup_colours(labels, lut)
    assert colours.shape == (13, 17, 3) and colours.dtype == np.uint8
    np.testing.assert_array_equal(colours, lut[np.minimum(labels, 6)])
    with pytest.raises(ValueError, match=r"\(C, 3\)"):
        lookup_colours(labels, lut[:, :2])
