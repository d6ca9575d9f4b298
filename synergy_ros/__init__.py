"""synergy_ros: monocular depth + semantics + point clouds for ROS 2 (Jiao et al., ECCV 2018)."""

__version__ = "0.1.0"
