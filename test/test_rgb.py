"""The shared RGB image check used by the runtime, the image encoder and the datasets."""
import re

import numpy as np
import pytest

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.rgb import rgb8_problem
from synergy_ros.data.base import check_sample
from synergy_ros.ros.conversions import rgb_to_compressed
from synergy_ros.runtime.preprocess import check_rgb_image


@pytest.mark.parametrize("image,problem", [
    ([[0]], "numpy array"),
    (np.zeros((4, 6), np.uint8), "shape (4, 6)"),
    (np.zeros((4, 6, 4), np.uint8), "shape (4, 6, 4)"),
    (np.zeros((4, 6, 3), np.uint16), "dtype uint16"),
    (np.zeros((0, 6, 3), np.uint8), "empty image"),
])
def test_each_caller_names_the_same_problem_in_its_own_error_type(image, problem):
    assert problem in rgb8_problem(image)
    problem = re.escape(problem)
    with pytest.raises(SynergyError, match=f"image 2: .*{problem}"):
        check_rgb_image(image, 2)
    with pytest.raises(SynergyError, match=f"frame 7: image: .*{problem}"):
        check_sample({"image": image}, None, "frame 7")
    if isinstance(image, np.ndarray):
        with pytest.raises(ValueError, match=problem):
            rgb_to_compressed(image)


def test_an_rgb8_image_passes():
    image = np.zeros((4, 6, 3), np.uint8)
    assert rgb8_problem(image) is None and check_rgb_image(image) is image
