"""ROS 2 interface: the node, image conversions and point clouds."""
