"""Recorded data: rosbag2 / ROS 1 bag read-write (``bagio``), ROS 1 message conversion
(``ros1``), timed replay over DDS (``player``) and stamp matching across topics (``matching``).
"""
