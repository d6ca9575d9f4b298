"""Test-wide settings: DDS on loopback, a test-specific domain, small thread counts."""
import os

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
