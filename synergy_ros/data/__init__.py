"""synergy_ros.data."""
