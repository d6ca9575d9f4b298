"""`synergy replay`: publish a rosbag2's recorded messages to DDS with their original timing.

A thin player for machines without rosbag2 (on a ROS machine ``ros2 bag play`` does the same).
It publishes the *recorded serialized bytes* as they are: rclpy's ``Publisher.publish`` takes
``bytes`` and hands them to ``rcl_publish_serialized_message`` (rclpy >= Foxy, ros2/rclpy#509;
checked in the installed rclpy 9: ``publish(msg: MsgT | bytes)`` calls ``publish_raw``), so no
message is deserialised or re-encoded and custom fields survive unchanged.

Timing: the message recorded ``t`` nanoseconds after the first played one is published
``t / rate`` seconds after playback started (the bag's receive time, as ``ros2 bag play``);
``start_s`` skips the bag's first seconds; ``loop`` plays the bag again and again. Publishers
are reliable keep-last (``qos_depth``) so subscribers that keep up lose nothing.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from synergy_ros.bags import bagio
from synergy_ros.bags.bagio import BagMessage, require_topics
from synergy_ros.core.errors import SynergyError
from synergy_ros.ros.message_types import message_class
from synergy_ros.ros.qos import qos_profile

#: Sleep granularity of the timing loop (s): Ctrl-C and ``stop`` are honoured this fast.
_SLEEP_SLICE_S = 0.05


@dataclasses.dataclass
class ReplayOptions:
    """How to play: speed factor, looping, start offset (s), topic remaps and selection."""

    rate: float = 1.0
    loop: bool = False
    start_s: float = 0.0
    remaps: dict[str, str] = dataclasses.field(default_factory=dict)
    topics: tuple[str, ...] | None = None
    qos_depth: int = 100

    def __post_init__(self) -> None:
        """Reject values that cannot be played."""
        if not self.rate > 0:
            raise SynergyError(f"--rate must be > 0 (got {self.rate}); 1.0 is real time")
        if self.start_s < 0:
            raise SynergyError(f"--start must be >= 0 seconds (got {self.start_s})")
        if self.qos_depth < 1:
            raise SynergyError(f"--qos-depth must be >= 1 (got {self.qos_depth})")


@dataclasses.dataclass
class ReplayStats:
    """What was played: messages per (output) topic, loops done, wall time, worst lateness."""

    published: dict[str, int] = dataclasses.field(default_factory=dict)
    loops: int = 0
    wall_s: float = 0.0
    max_late_s: float = 0.0
    interrupted: bool = False
    skipped: int = 0  # ROS 1 messages that could not be converted to ROS 2

    @property
    def total(self) -> int:
        """Messages published over all topics."""
        return sum(self.published.values())

    def summary(self) -> str:
        """One line for the end of a replay."""
        per_topic = ", ".join(f"{topic} {count}" for topic, count in self.published.items())
        how = "interrupted after" if self.interrupted else "published"
        return (f"{how} {self.total} messages in {self.wall_s:.1f} s ({self.loops} pass(es); "
                f"{per_topic or 'nothing'}); latest message {self.max_late_s * 1000:.0f} ms "
                "behind schedule" + (f"; skipped {self.skipped} unconvertible ROS 1 message(s)"
                                     if self.skipped else ""))


def parse_remap(text: str) -> tuple[str, str]:
    """Parse ``from:=to`` (the ROS remap syntax) into a pair of absolute topic names."""
    source, sep, target = text.partition(":=")
    if not sep or not source or not target:
        raise SynergyError(f"bad remap {text!r}: write it as /from/topic:=/to/topic")
    return _absolute(source), _absolute(target)


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


def select_messages(messages: Iterable[BagMessage], start_ns: int | None) -> Iterator[BagMessage]:
    """Skip messages recorded before ``start_ns`` (absolute receive time, ns)."""
    for message in messages:
        if start_ns is None or message.log_time_ns >= start_ns:
            yield message


class Player:
    """Publish raw recorded messages on an rclpy node with their recorded timing.

    Args:
        node: the rclpy node that owns the publishers.
        topic_types: input topic -> ROS type name, for the topics that may be played.
        options: rate, loop, start, remaps, topics.
    """

    def __init__(self, node, topic_types: dict[str, str], options: ReplayOptions) -> None:
        self.node = node
        self.options = options
        wanted = options.topics or tuple(topic_types)
        require_topics(topic_types, wanted, "the bag")
        qos = qos_profile(reliable=True, depth=options.qos_depth)
        self.output_topic = {topic: options.remaps.get(topic, topic) for topic in wanted}
        self.publishers = {
            topic: node.create_publisher(message_class(topic_types[topic]), out, qos)
            for topic, out in self.output_topic.items()}

    def flush(self, timeout_s: float = 2.0) -> bool:
        """Wait until reliable subscribers acknowledged everything published (True if so).

        Without this, a process that exits right after its last publish can lose the last
        messages still in flight to a matched reader.
        """
        from rclpy.duration import Duration

        deadline = time.monotonic() + timeout_s
        acked = True
        for pub in self.publishers.values():
            left = max(0.0, deadline - time.monotonic())
            acked = pub.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9))) and acked
        return acked

    def subscribers_ready(self) -> bool:
        """True when every publisher has at least one matched subscription."""
        return all(pub.get_subscription_count() > 0 for pub in self.publishers.values())

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a subscriber on every topic; True when all are there."""
        deadline = time.monotonic() + timeout_s
        while not self.subscribers_ready():
            if time.monotonic() >= deadline:
                return False
            time.sleep(_SLEEP_SLICE_S)
        return True

    def play(self, read: Callable[[], Iterable[BagMessage]],
             before_publish: Callable[[BagMessage], None] | None = None,
             stop: Callable[[], bool] | None = None, progress=None) -> ReplayStats:
        """Play the messages ``read()`` yields (called again for each loop).

        Args:
            read: returns the bag's messages in receive order (a fresh iterator per pass).
            before_publish: called with each message right before it is published (the demo
                uses it to wait until the node has answered the previous frame).
            stop: polled while waiting; returning True ends playback early.
            progress: optional tqdm-like object updated once per published message.

        KeyboardInterrupt ends playback cleanly (``stats.interrupted``); nothing is re-raised.
        """
        stats = ReplayStats(published={out: 0 for out in self.output_topic.values()})
        started = time.monotonic()
        try:
            while True:
                first_log_ns, pass_start = None, time.monotonic()
                for message in read():
                    publisher = self.publishers.get(message.topic)
                    if publisher is None:
                        continue
                    if message.error is not None:  # a ROS 1 message with no ROS 2 form
                        stats.skipped += 1
                        continue
                    if first_log_ns is None:
                        first_log_ns = message.log_time_ns
                    offset_s = (message.log_time_ns - first_log_ns) / 1e9
                    due = pass_start + offset_s / self.options.rate
                    if self._sleep_until(due, stop):
                        stats.wall_s = time.monotonic() - started
                        return stats
                    if before_publish is not None:
                        before_publish(message)
                        due = time.monotonic()  # waiting on the consumer is not lateness
                    stats.max_late_s = max(stats.max_late_s, time.monotonic() - due)
                    publisher.publish(message.data)
                    stats.published[self.output_topic[message.topic]] += 1
                    if progress is not None:
                        progress.update(1)
                stats.loops += 1
                if not self.options.loop or first_log_ns is None:
                    break
        except KeyboardInterrupt:
            stats.interrupted = True
        stats.wall_s = time.monotonic() - started
        return stats

    @staticmethod
    def _sleep_until(due: float, stop: Callable[[], bool] | None) -> bool:
        """Sleep until monotonic time ``due``; True when ``stop()`` asked to end."""
        while True:
            if stop is not None and stop():
                return True
            left = due - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, _SLEEP_SLICE_S))


def replay_bag(bag: str | Path, options: ReplayOptions, wait_for_subscribers_s: float = 0.0,
               node_name: str = "synergy_replay", show_progress: bool = True) -> ReplayStats:
    """Play ``bag`` on a fresh rclpy context until the end (or Ctrl-C); returns the stats."""
    import rclpy
    from tqdm import tqdm

    bag = Path(bag)
    topic_types = bagio.bag_topics(bag)
    start_ns = None
    if options.start_s:
        start_ns = bagio.bag_start_time_ns(bag) + int(options.start_s * 1e9)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(node_name, context=context)
    try:
        player = Player(node, topic_types, options)
        if wait_for_subscribers_s and not player.wait_for_subscribers(wait_for_subscribers_s):
            node.get_logger().warning(
                f"not every topic had a subscriber after {wait_for_subscribers_s:.1f} s; "
                "playing anyway")

        def read() -> Iterator[BagMessage]:
            return select_messages(bagio.iter_raw_messages(bag, list(player.publishers)),
                                   start_ns)

        counts = bagio.bag_message_counts(bag)
        total = None if options.loop else sum(counts[t] for t in player.publishers)
        with tqdm(unit="msg", desc=f"replay {bag.name}", total=total,
                  disable=not show_progress) as bar:
            stats = player.play(read, progress=bar)
        if not stats.interrupted and not player.flush():  # after Ctrl-C: exit at once
            node.get_logger().warning("some subscribers did not acknowledge the last messages "
                                      "within 2 s before replay exited")
        return stats
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
