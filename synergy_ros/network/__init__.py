"""synergy_ros.network."""
