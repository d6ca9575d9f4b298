"""rosbag2 bags (MCAP or sqlite3) read and written with ``rosbags``; messages are rclpy objects.

Messages are serialised with ``rclpy.serialization.serialize_message`` and read back with
``deserialize_message`` into the rclpy class imported from the type name (e.g.
``sensor_msgs/msg/Image`` -> ``sensor_msgs.msg.Image``), so one image codec
(:mod:`synergy_ros.ros.conversions`) serves live topics and bags alike.

Writing: :class:`BagWriter` takes each topic's type from its first message and records the
message definition and RIHS01 type hash from a ``rosbags`` typestore (the one of
``$ROS_DISTRO`` when rosbags knows it, else its latest LTS); types the typestore lacks are
registered from the ``.msg`` files the installed message packages ship
(``<prefix>/share/<pkg>/msg/<Type>.msg``), so MCAP schemas name real definitions. Metadata is
written as rosbag2 version 8: Humble's rosbag2 cannot parse version 9's QoS encoding, while
Jazzy and later read version 8. A writer leaving its ``with`` block on an exception (including
Ctrl-C) still finalises the bag, so what was written stays readable.

Reading is streaming: :func:`iter_messages` yields one :class:`BagMessage` at a time (raw CDR
bytes plus lazy deserialisation) and never loads the whole bag. A path may be a bag directory
(with ``metadata.yaml``) or a bare ``.mcap`` / ``.db3`` file, or a ROS 1 ``.bag`` file: ROS 1
bags are read with ``rosbags.highlevel.AnyReader`` (message definitions from the bag), each
message converted to its rclpy type (:mod:`synergy_ros.bags.ros1`: ``Header.seq`` dropped,
``CameraInfo.K`` -> ``k``) and re-serialised as CDR, so everything downstream, replay included,
sees ROS 2 messages.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path
from typing import Iterable, Iterator

from synergy_ros.bags.ros1 import to_rclpy
from synergy_ros.core.errors import SynergyError
from synergy_ros.ros.message_types import message_class

STORAGES = ("mcap", "sqlite3")
BAG_VERSION = 8


# ----------------------------------------------------------------------------- types
def message_type_name(msg) -> str:
    """ROS 2 type name of an rclpy message object, e.g. ``sensor_msgs/msg/Image``."""
    cls = type(msg)
    parts = cls.__module__.split(".")
    if len(parts) < 2 or parts[1] not in ("msg", "srv", "action"):
        raise SynergyError(f"{cls.__module__}.{cls.__name__} is not a ROS 2 message class; "
                           "write rclpy message objects (e.g. sensor_msgs.msg.Image)")
    return f"{parts[0]}/{parts[1]}/{cls.__name__}"


@functools.lru_cache(maxsize=None)
def _msg_search_dirs() -> list[Path]:
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    return [Path(p) / "share" for p in prefixes]


def _msg_file(msgtype: str) -> Path | None:
    package, kind, name = msgtype.split("/")
    for share in _msg_search_dirs():
        candidate = share / package / kind / f"{name}.msg"
        if candidate.is_file():
            return candidate
    return None


def _referenced_types(node) -> Iterator[str]:
    """Yield every ``pkg/msg/Type`` string nested in a rosbags field description."""
    if isinstance(node, str):
        if node.count("/") == 2:
            yield node
    elif isinstance(node, (tuple, list)):
        for item in node:
            yield from _referenced_types(item)


@functools.lru_cache(maxsize=1)
def typestore():
    """The rosbags typestore used for message definitions (``$ROS_DISTRO``'s, else latest)."""
    from rosbags.typesys import Stores, get_typestore

    distro = os.environ.get("ROS_DISTRO", "").strip().upper()
    store = Stores.__members__.get(f"ROS2_{distro}", Stores.LATEST)
    return get_typestore(store)


def ensure_type(msgtype: str):
    """Make sure the typestore knows ``msgtype`` (and what it references); return the store."""
    from rosbags.typesys import get_types_from_msg

    store = typestore()
    pending = [msgtype]
    while pending:
        name = pending.pop()
        if name in store.fielddefs:
            continue
        path = _msg_file(name)
        if path is None:
            raise SynergyError(f"no message definition for {name}: rosbags does not know it and "
                               f"no share/<pkg>/msg/<Type>.msg was found under "
                               f"{[str(p) for p in _msg_search_dirs()]}; source the ROS "
                               "workspace that defines it (AMENT_PREFIX_PATH)")
        types = get_types_from_msg(path.read_text(encoding="utf-8"), name)
        missing = [ref for ref in _referenced_types(types[name]) if ref not in store.fielddefs]
        if missing:
            pending += [name] + missing
            continue
        store.register(types)
    return store


# ----------------------------------------------------------------------------- writing
class BagWriter:
    """Write rclpy messages to a new rosbag2 bag (directory ``path``).

    Use as a context manager::

        with BagWriter("out_bag", storage="mcap") as bag:
            bag.write("/camera/image_raw", image_msg, stamp_ns)

    Args:
        path: bag directory to create; must not exist (nothing is ever overwritten).
        storage: ``mcap`` (default, as ROS 2 Jazzy records) or ``sqlite3``.
    """

    def __init__(self, path: str | os.PathLike, storage: str = "mcap") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise SynergyError(f"unknown bag storage {storage!r}; choose one of {STORAGES}")
        self.path = Path(path)
        if self.path.exists():
            raise SynergyError(f"{self.path} already exists; bags are never overwritten: "
                               "choose a new path or delete the old bag")
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.storage = storage
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        self._connections: dict[str, object] = {}
        self._types: dict[str, str] = {}
        self.count = 0

    def open(self) -> "BagWriter":
        """Create the bag directory and storage file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer.open()
        return self

    def __enter__(self) -> "BagWriter":
        """Open the bag."""
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        """Finalise the bag, also after an exception, so written messages stay readable."""
        self.close()

    def close(self) -> None:
        """Write the index and ``metadata.yaml``; safe to call twice."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def _connection(self, topic: str, msgtype: str):
        known = self._types.get(topic)
        if known is None:
            if not topic.startswith("/"):
                raise SynergyError(f"topic {topic!r} must be absolute (start with '/')")
            store = ensure_type(msgtype)
            self._connections[topic] = self._writer.add_connection(topic, msgtype,
                                                                   typestore=store)
            self._types[topic] = msgtype
        elif known != msgtype:
            raise SynergyError(f"topic {topic} already holds {known} messages in {self.path}; "
                               f"cannot also write {msgtype} to it")
        return self._connections[topic]

    def write(self, topic: str, msg, stamp_ns: int) -> None:
        """Serialise rclpy message ``msg`` and record it on ``topic`` at ``stamp_ns`` (ns)."""
        from rclpy.serialization import serialize_message

        self.write_raw(topic, message_type_name(msg), serialize_message(msg), stamp_ns)

    def write_raw(self, topic: str, msgtype: str, data: bytes, stamp_ns: int) -> None:
        """Record already-serialised CDR ``data`` of type ``msgtype`` on ``topic``."""
        if self._writer is None:
            raise SynergyError(f"bag {self.path} is closed; open a new BagWriter")
        if int(stamp_ns) < 0:
            raise SynergyError(f"message time must be >= 0 ns, got {stamp_ns}")
        self._writer.write(self._connection(topic, msgtype), int(stamp_ns), data)
        self.count += 1


# ----------------------------------------------------------------------------- reading
@dataclasses.dataclass
class BagMessage:
    """One recorded message.

    Attributes:
        topic: topic name.
        msgtype: ROS 2 type name (``sensor_msgs/msg/Image``).
        log_time_ns: time the message was recorded (bag timestamp, ns).
        data: serialised CDR bytes (empty when ``error`` is set).
        error: why a ROS 1 message could not be converted (None when it was).
    """

    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes
    _message: object = dataclasses.field(default=None, repr=False, compare=False)
    error: SynergyError | None = dataclasses.field(default=None, compare=False)

    @property
    def message(self):
        """The rclpy message, deserialised on first access (SynergyError if it cannot be)."""
        if self.error is not None:
            raise self.error
        if self._message is None:
            self._message = deserialize(self.data, self.msgtype, self.topic)
        return self._message


def deserialize(data: bytes, msgtype: str, topic: str = "?"):
    """Deserialise CDR ``data`` into the rclpy class of ``msgtype``."""
    from rclpy.serialization import deserialize_message

    cls = message_class(msgtype)
    try:
        return deserialize_message(bytes(data), cls)
    except Exception as exc:  # noqa: BLE001 - rclpy raises several types for bad CDR
        raise SynergyError(f"cannot deserialise a {msgtype} message on {topic} "
                           f"({type(exc).__name__}: {exc}); the recorded definition differs "
                           "from the installed one or the bag is corrupt") from exc


def _ros1_message(reader, conn, log_time_ns: int, data) -> BagMessage:
    """One ROS 1 message as a BagMessage of CDR bytes, or carrying why it cannot be one."""
    from rclpy.serialization import serialize_message

    try:
        msg = to_rclpy(reader.deserialize(data, conn.msgtype), message_class(conn.msgtype))
        return BagMessage(conn.topic, conn.msgtype, log_time_ns, serialize_message(msg), msg)
    except Exception as exc:  # noqa: BLE001 - rosbags / rclpy raise many types for bad data
        error = exc if isinstance(exc, SynergyError) else SynergyError(
            f"cannot convert a ROS 1 {conn.msgtype} message on {conn.topic} "
            f"({type(exc).__name__}: {exc}); the bag is corrupt or its definition differs")
        return BagMessage(conn.topic, conn.msgtype, log_time_ns, b"", error=error)


def _bag_path(path: str | os.PathLike) -> Path:
    bag = Path(path)
    if not bag.exists():
        raise SynergyError(f"bag {bag} does not exist; pass a rosbag2 directory (with "
                           "metadata.yaml) or a .mcap / .db3 file")
    if bag.is_dir() and not (bag / "metadata.yaml").is_file():
        storage = sorted(bag.glob("*.mcap")) + sorted(bag.glob("*.db3"))
        hint = (f"; it holds {storage[0].name}: pass that file, or run `ros2 bag reindex "
                f"{bag}` to rebuild the metadata" if storage else "")
        raise SynergyError(f"{bag} is not a rosbag2 bag: metadata.yaml is missing (the "
                           f"recorder may have been killed before finishing){hint}")
    if bag.is_file() and bag.suffix not in (".mcap", ".db3", ".bag"):
        raise SynergyError(f"{bag} is not a bag file: expected a rosbag2 directory, a .mcap "
                           "or .db3 file, or a ROS 1 .bag file")
    return bag


def _is_ros1(bag: Path) -> bool:
    return bag.is_file() and bag.suffix == ".bag"


def _open_reader(path: str | os.PathLike):
    """An open rosbags reader: rosbag2 ``Reader``, or ``AnyReader`` for a ROS 1 ``.bag``."""
    bag = _bag_path(path)
    try:
        if _is_ros1(bag):
            from rosbags.highlevel import AnyReader

            reader = AnyReader([bag])
        else:
            from rosbags.rosbag2 import Reader

            reader = Reader(bag)
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises ReaderError, sqlite, yaml, OSError
        if _is_ros1(bag):
            fix = "`rosbag reindex` (ROS 1) rebuilds the index of an unclosed bag"
        elif any(p.suffix == ".mcap" for p in [bag, *bag.glob("*.mcap")]):
            fix = "`mcap recover` (the mcap CLI) rebuilds a truncated MCAP file"
        else:
            fix = "`ros2 bag reindex` may rebuild it"
        raise SynergyError(f"cannot open bag {bag}: {type(exc).__name__}: {exc}; the bag is "
                           f"corrupt or truncated (no message could be read; {fix})") from exc
    return reader


def bag_topics(path: str | os.PathLike) -> dict[str, str]:
    """Map topic name -> ROS 2 type name of every topic in the bag at ``path``."""
    reader = _open_reader(path)
    try:
        return {c.topic: c.msgtype for c in reader.connections}
    finally:
        reader.close()


def bag_message_counts(path: str | os.PathLike) -> dict[str, int]:
    """Map topic name -> number of messages the bag's index records."""
    reader = _open_reader(path)
    try:
        counts: dict[str, int] = {}
        for conn in reader.connections:
            counts[conn.topic] = counts.get(conn.topic, 0) + int(conn.msgcount)
        return counts
    finally:
        reader.close()


def bag_start_time_ns(path: str | os.PathLike) -> int:
    """Timestamp (ns) of the bag's first message."""
    reader = _open_reader(path)
    try:
        return int(reader.start_time)
    finally:
        reader.close()


def topic_listing(topic_types: dict[str, str]) -> str:
    """``/a (pkg/msg/A), /b (pkg/msg/B)`` for error messages (``no topics`` when empty)."""
    return ", ".join(f"{t} ({m})" for t, m in sorted(topic_types.items())) or "no topics"


def require_topics(topic_types: dict[str, str], wanted: Iterable[str], where: str) -> None:
    """Raise SynergyError naming the ``wanted`` topics ``where`` lacks and listing what it holds.

    Args:
        topic_types: topic -> type name of the bag (:func:`bag_topics`).
        wanted: the topics needed.
        where: how to name the bag in the message, e.g. ``bag runs/demo/bag``.
    """
    missing = [t for t in wanted if t not in topic_types]
    if missing:
        raise SynergyError(f"topic(s) {', '.join(missing)} not in {where}; it holds: "
                           f"{topic_listing(topic_types)}")


def _check_topics(bag: Path, connections: list, topics: Iterable[str] | None) -> list:
    if topics is None:
        return list(connections)
    wanted = list(topics)
    require_topics({c.topic: c.msgtype for c in connections}, wanted, f"bag {bag}")
    return [c for c in connections if c.topic in wanted]


def iter_messages(path: str | os.PathLike, topics: Iterable[str] | None = None
                  ) -> Iterator[BagMessage]:
    """Yield the bag's messages (all, or those on ``topics``) in recorded order, one at a time.

    Raises SynergyError for a missing bag, a topic the bag lacks (listing its topics and
    types) and a corrupt or truncated bag (saying how many messages were read before).
    """
    bag = _bag_path(path)
    reader = _open_reader(bag)  # checked now, not at the first next(): errors come early
    try:
        wanted = [c.topic for c in _check_topics(bag, reader.connections, topics)]
    finally:
        reader.close()
    return _stream(bag, wanted)


def _stream(bag: Path, topics: list[str]) -> Iterator[BagMessage]:
    if not topics:
        return
    reader = _open_reader(bag)
    read, last_ns = 0, None
    ros1 = _is_ros1(bag)
    try:
        selected = [c for c in reader.connections if c.topic in topics]
        expected = sum(int(c.msgcount) for c in selected)
        stream = reader.messages(connections=selected)
        while True:
            try:
                conn, timestamp, data = next(stream)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - storage errors of many kinds
                where = (f"after {read} messages (last at {last_ns} ns)" if read
                         else "before the first message")
                raise SynergyError(f"bag {bag} is corrupt or truncated: reading stopped {where}"
                                   f" ({type(exc).__name__}: {exc}); the messages before "
                                   "are intact (try `ros2 bag reindex` or re-record)") from exc
            read += 1
            last_ns = int(timestamp)
            if ros1:
                yield _ros1_message(reader, conn, last_ns, data)
            else:
                yield BagMessage(conn.topic, conn.msgtype, last_ns, bytes(data))
        if read < expected:  # a damaged MCAP chunk can end the stream early without an error
            raise SynergyError(f"bag {bag} is corrupt: its index lists {expected} messages on "
                               f"{', '.join(topics)} but reading stopped after {read} (last at "
                               f"{last_ns} ns); the messages before are intact")
    finally:
        reader.close()


#: Alias used by :mod:`synergy_ros.bags.player` (same items: topic, msgtype, log_time_ns, data).
iter_raw_messages = iter_messages
