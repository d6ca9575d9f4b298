"""Turn ROS 1 messages read by ``rosbags`` into their rclpy (ROS 2) counterparts.

ROS 1 bags (``.bag``) are read with ``rosbags.highlevel.AnyReader``, which deserialises each
message with the definition recorded in the bag into a ``rosbags`` dataclass. The rest of
synergy_ros works on rclpy messages and CDR bytes, so :func:`to_rclpy` copies such an object
field by field into the rclpy class of the same type name:

- fields are matched by name, case-insensitively (ROS 1 ``CameraInfo.K`` / ``D`` / ``R`` / ``P``
  are ROS 2 ``k`` / ``d`` / ``r`` / ``p``);
- fields only ROS 1 has (``std_msgs/Header.seq``) are dropped, fields only ROS 2 has keep
  their defaults;
- ROS 1 ``time`` / ``duration`` arrive as ``sec`` / ``nanosec`` pairs and map onto
  ``builtin_interfaces`` Time / Duration;
- primitive arrays (numpy in ``rosbags``) become the rclpy field's array type without a
  per-element Python loop, so a 640x480 image costs one copy.
"""
from __future__ import annotations

import array
import dataclasses
import re

import numpy as np

from synergy_ros.core.errors import SynergyError
from synergy_ros.ros.message_types import message_class

_ELEMENT_TYPE = re.compile(r"^(?:sequence<)?([A-Za-z0-9_]+/(?:msg/)?[A-Za-z0-9_]+)")


def _fields(value) -> dict[str, str]:
    """Lower-case field name -> attribute name of a ``rosbags`` message object."""
    if not dataclasses.is_dataclass(value):
        raise SynergyError(f"expected a deserialised ROS 1 message, got {type(value).__name__}")
    return {field.name.lower(): field.name for field in dataclasses.fields(value)}


def _element_class(type_name: str):
    """rclpy class of the elements of a message-array field type such as
    ``sequence<sensor_msgs/PointField>`` or ``geometry_msgs/Point[3]``."""

    match = _ELEMENT_TYPE.match(type_name)
    if match is None:
        raise SynergyError(f"cannot read the element type of field type {type_name!r}")
    return message_class(match.group(1))


def _convert_field(value, default, type_name: str):
    """``value`` (ROS 1 field) in the Python type of the rclpy field whose default is given."""
    if hasattr(default, "get_fields_and_field_types"):  # nested message
        return to_rclpy(value, type(default))
    if isinstance(default, array.array):  # unbounded primitive sequence
        data = np.ascontiguousarray(value, dtype=np.dtype(default.typecode))
        out = array.array(default.typecode)
        out.frombytes(data.tobytes())
        return out
    if isinstance(default, np.ndarray):  # fixed-size primitive array
        return np.asarray(value, dtype=default.dtype).reshape(default.shape)
    if isinstance(default, list):  # sequence of messages, strings or booleans
        items = value.tolist() if isinstance(value, np.ndarray) else list(value)
        if items and dataclasses.is_dataclass(items[0]):
            element = _element_class(type_name)
            return [to_rclpy(item, element) for item in items]
        return items
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, bytes) and isinstance(value, (int, np.integer)):  # ROS 1 byte: int8
        return bytes([int(value) & 0xFF])
    return value  # str


def to_rclpy(value, cls):
    """A new ``cls`` (rclpy message class) holding the fields of ``value`` (ROS 1 message).

    Raises SynergyError naming the field when a value does not fit its ROS 2 field.
    """
    source = _fields(value)
    msg = cls()
    for name, type_name in cls.get_fields_and_field_types().items():
        attribute = source.get(name.lower())
        if attribute is None:  # only ROS 2 has it: keep the default
            continue
        try:
            setattr(msg, name, _convert_field(getattr(value, attribute), getattr(msg, name),
                                              type_name))
        except (AssertionError, TypeError, ValueError) as exc:
            raise SynergyError(f"ROS 1 field {cls.__name__}.{attribute} does not fit the ROS 2 "
                               f"field {name} ({type_name}): {exc}") from exc
    return msg
