"""Back-projection and intrinsics scaling against hand-computed values."""
import math

import numpy as np
import pytest

from synergy_ros.core.geometry import PinholeIntrinsics, backproject


def test_backproject_matches_pinhole_formula():
    """x = (u - cx) z / fx, y = (v - cy) z / fy in the optical frame; invalid -> NaN."""
    k = PinholeIntrinsics(fx=2.0, fy=4.0, cx=1.0, cy=0.5, width=3, height=2)
    depth = np.array([[2.0, 0.0, 4.0], [np.nan, 1.0, -1.0]], dtype=np.float32)
    pts = backproject(depth, k)
    np.testing.assert_allclose(pts[0, 0], [(0 - 1) * 2 / 2, (0 - 0.5) * 2 / 4, 2.0])
    np.testing.assert_allclose(pts[0, 2], [(2 - 1) * 4 / 2, (0 - 0.5) * 4 / 4, 4.0])
    np.testing.assert_allclose(pts[1, 1], [0.0, (1 - 0.5) * 1 / 4, 1.0])
    assert np.isnan(pts[0, 1]).all() and np.isnan(pts[1, 0]).all() and np.isnan(pts[1, 2]).all()


def test_backproject_rejects_mismatched_size():
    """A depth image that does not match the intrinsics is an error, not a silent skew."""
    k = PinholeIntrinsics(1, 1, 0, 0, 4, 4)
    with pytest.raises(ValueError, match="scaled"):
        backproject(np.ones((2, 2)), k)


def test_scaled_intrinsics_pixel_centre_convention():
    """Halving the image halves f and maps cx by (cx + 0.5) / 2 - 0.5."""
    k = PinholeIntrinsics(500.0, 400.0, 319.5, 239.5, 640, 480).scaled(320, 240)
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (250.0, 200.0, 159.5, 119.5, 320, 240)


def test_from_fov_and_k():
    """90 degree horizontal FOV on 100 px gives f = 50 px; from_k reads row-major K."""
    k = PinholeIntrinsics.from_fov(math.pi / 2, 100, 50)
    assert k.fx == pytest.approx(50.0) and k.cx == pytest.approx(49.5)
    k2 = PinholeIntrinsics.from_k(k.k_matrix().ravel(), 100, 50)
    assert k2 == k
    with pytest.raises(ValueError):
        PinholeIntrinsics.from_fov(0.0, 10, 10)
