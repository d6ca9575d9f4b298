"""Augmentations keep image, depth and labels aligned; ToTensor gives the sample contract."""
import numpy as np
import pytest
import torch

from synergy_ros.core.modelfile import IMAGENET_MEAN, IMAGENET_STD
from synergy_ros.data.transforms import (ColorJitter, Compose, RandomHorizontalFlip,
                                         RandomScaleCrop, Resize, ToTensor, build_transform)


def _sample(h=12, w=16):
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([xx * 10 % 256, yy * 20 % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
    depth = (1.0 + xx + 100 * yy).astype(np.float32)  # unique per pixel: tracks where it went
    depth[0, 0] = 0.0
    labels = (xx % 5).astype(np.uint8)
    labels[1, 1] = 255
    return {"image": image, "depth": depth, "labels": labels, "has_depth": True,
            "has_labels": True}


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_flip_moves_all_three_together():
    sample = _sample()
    out = RandomHorizontalFlip(p=1.0)(sample, _rng())
    assert np.array_equal(out["image"], sample["image"][:, ::-1])
    assert np.array_equal(out["depth"], sample["depth"][:, ::-1])
    assert np.array_equal(out["labels"], sample["labels"][:, ::-1])
    assert RandomHorizontalFlip(p=0.0)(sample, _rng()) is sample


def test_colour_jitter_touches_only_the_image():
    sample = _sample()
    out = ColorJitter(0.5, 0.5, 0.5)(sample, _rng(3))
    assert not np.array_equal(out["image"], sample["image"]) and out["image"].dtype == np.uint8
    assert out["depth"] is sample["depth"] and out["labels"] is sample["labels"]


@pytest.mark.parametrize("mode,factor", [("divide", 1.5), ("keep", 1.0)])
def test_scale_crop_keeps_alignment_and_scales_depth_as_documented(mode, factor):
    """Depth encodes its source pixel (1 + x + 100 y): after a 1.5x zoom-crop every pixel's
    depth x factor is an original value, and its label is the label of that same source pixel."""
    sample = _sample(24, 32)
    originals = set(sample["depth"][sample["depth"] > 0].tolist())
    for seed in range(5):
        out = RandomScaleCrop((20, 24), (1.5, 1.5), depth_mode=mode)(sample, _rng(seed))
        assert out["image"].shape == (20, 24, 3)
        assert out["depth"].shape == out["labels"].shape == (20, 24)
        valid = out["depth"] > 0
        restored = np.round(out["depth"][valid] * factor)
        assert set(restored.tolist()) <= originals
        src_x = ((restored - 1) % 100).astype(np.int64)
        src_y = ((restored - 1) // 100).astype(np.int64)
        np.testing.assert_array_equal(out["labels"][valid], sample["labels"][src_y, src_x])


def test_scale_crop_pads_small_images_with_invalid():
    out = RandomScaleCrop((30, 40), (1.0, 1.0))(_sample(12, 16), _rng())
    assert out["image"].shape == (30, 40, 3)
    assert (out["depth"][12:] == 0).all() and (out["labels"][12:] == 255).all()


def test_resize_bilinear_image_nearest_depth_and_labels():
    sample = _sample(12, 16)
    out = Resize((6, 8))(sample)
    assert out["image"].shape == (6, 8, 3)
    assert set(np.unique(out["labels"])) <= set(np.unique(sample["labels"]))
    assert set(out["depth"].ravel().tolist()) <= set(sample["depth"].ravel().tolist())
    up = Resize((256, 512))(sample)
    assert up["depth"].shape == (256, 512) and up["labels"].dtype == np.uint8


def test_to_tensor_contract():
    sample = _sample()
    sample["depth"][2, 2] = np.nan
    sample["depth"][3, 3] = -1
    out = ToTensor()(sample)
    assert out["image"].shape == (3, 12, 16) and out["image"].dtype == torch.float32
    assert out["depth"].shape == (1, 12, 16) and out["depth"].dtype == torch.float32
    assert out["labels"].shape == (12, 16) and out["labels"].dtype == torch.int64
    assert out["has_depth"] is True and out["has_labels"] is True
    assert out["depth"][0, 2, 2] == 0 and out["depth"][0, 3, 3] == 0 and out["depth"][0, 0, 0] == 0
    expected = (sample["image"][5, 7, 1] / 255.0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1]
    assert abs(float(out["image"][1, 5, 7]) - expected) < 1e-5
    weak = ToTensor()({"image": sample["image"], "has_depth": False, "has_labels": False})
    assert weak["has_depth"] is False and (weak["depth"] == 0).all()
    assert (weak["labels"] == 255).all()


def test_pipeline_is_reproducible_per_rng_seed():
    transform = build_transform((12, 16), train=True)
    a = transform(_sample(24, 32), _rng(7))
    b = transform(_sample(24, 32), _rng(7))
    c = transform(_sample(24, 32), _rng(8))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["depth"], b["depth"])
    assert not torch.equal(a["image"], c["image"])
    assert isinstance(build_transform(None, train=False), Compose)
    with pytest.raises(ValueError):
        RandomScaleCrop((4, 4), depth_mode="stretch")
