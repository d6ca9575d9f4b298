"""Test-wide settings: DDS on loopback, a test-specific domain, small thread counts."""
import os

import pytest

# DDS must never leave loopback in tests (README "DDS on loopback"); `make test` exports these too,
# this covers a bare `pytest` run. setdefault: a developer may pick another domain id.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", "73")
os.environ.setdefault("OMP_NUM_THREADS", "2")

try:
    import torch

    torch.set_num_threads(2)
except ImportError:  # pragma: no cover - torch is a hard dependency; lint tests run without it
    pass


@pytest.fixture
def harness(request):
    """A RosHarness (its own rclpy context, a unique namespace named after the test module),
    closed after the test: the node tests drive the node through it over real DDS."""
    from synergy_ros.ros.testing import RosHarness, unique_namespace

    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    h = RosHarness(unique_namespace(f"synergy_{module}"))
    yield h
    h.close()
