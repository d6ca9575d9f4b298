"""The one test of the camera images every component takes: (H, W, 3) uint8 RGB, non-empty.

The runtime, the ROS image encoder and the dataset checks each raise their own error type
(SynergyError for callers, ValueError for the node's bad-message path) with their own
context, around the same description of what is wrong.
"""
from __future__ import annotations

import numpy as np

#: Camera-frame file types read with OpenCV (folder datasets, INT8 calibration images).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")


def rgb8_problem(image) -> str | None:
    """What keeps ``image`` from being an (H, W, 3) uint8 RGB array; None when nothing does."""
    if not isinstance(image, np.ndarray):
        return f"expected a numpy array (H, W, 3) uint8 RGB, got {type(image).__name__}"
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        return (f"expected (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}; "
                "convert mono/BGRA/16-bit images to rgb8 first")
    if image.shape[0] < 1 or image.shape[1] < 1:
        return f"empty image {image.shape}"
    return None
