"""rclpy message classes by type name (``sensor_msgs/msg/Image``, ROS 1 style
``sensor_msgs/Image``)."""
from __future__ import annotations

import importlib

from synergy_ros.core.errors import SynergyError


def message_class(msgtype: str):
    """Import the rclpy message class for a type name such as ``sensor_msgs/msg/Image``."""
    parts = msgtype.split("/")
    if len(parts) == 2:  # ROS 1 style "sensor_msgs/Image"
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise SynergyError(f"cannot read message type name {msgtype!r} "
                           "(expected package/msg/Type)")
    package, kind, name = parts
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError) as exc:
        raise SynergyError(
            f"message type {msgtype} is not available in this Python environment ({exc}); "
            f"install its package (ROS: ros-<distro>-{package.replace('_', '-')}, PyPI wheel: "
            f"ros-{package.replace('_', '-')}) or read the raw bytes only") from None
