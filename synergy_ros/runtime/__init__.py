"""synergy_ros.runtime."""
