"""One QoS profile builder for the node, the replay player, the demo recorder and test helpers."""
from __future__ import annotations


def qos_profile(reliable: bool, depth: int):
    """Keep-last ``depth``, volatile QoS; reliable, or best-effort (SensorDataQoS-like) if not.

    A reliable publisher also serves best-effort subscribers; a best-effort publisher does not
    match reliable subscribers (DDS request/offer rules).
    """
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      durability=DurabilityPolicy.VOLATILE,
                      reliability=(ReliabilityPolicy.RELIABLE if reliable
                                   else ReliabilityPolicy.BEST_EFFORT))
