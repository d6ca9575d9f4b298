"""Training samples from your own robot's rosbag2 (MCAP or sqlite3), matched by header stamp.

Give the camera image topic (``sensor_msgs/Image`` in any encoding
:func:`synergy_ros.ros.conversions.image_to_rgb` reads, or ``CompressedImage``) and a depth
topic (``32FC1`` metres with NaN/0 invalid, or ``16UC1`` millimetres, per REP 118) and/or a
label topic (``mono8`` / ``mono16`` / ``8UC1`` / ``16UC1`` train ids, 255 = ignore). Messages
are paired by ``header.stamp`` (exactly, or nearest within ``max_dt_ms``) with the same
streaming matcher the evaluator uses (any stamp order, partners recorded within
:data:`synergy_ros.bags.matching.DEFAULT_WINDOW_NS` of each other); unmatched messages are counted
and reported. An undecodable message (bad CDR, a ROS 1 message that cannot be converted) is
skipped and counted, and a bag that breaks part-way (truncated, corrupt) keeps the frames read
before the break: both are said in the manifest's ``summary`` and printed.

A bag cannot be read at random, so the first use streams it once and writes every matched
frame to a cache folder (one ``.npz`` per frame, written atomically, plus a manifest written
last); later uses (and DataLoader workers) read the cache. The cache is keyed by the bag's
files (path, size, modification time) and the topics, so a changed bag is re-read. The default
cache folder is ``$XDG_CACHE_HOME/synergy_ros/bags`` (``~/.cache/...``).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from synergy_ros.bags import bagio
from synergy_ros.bags.matching import StampMatcher
from synergy_ros.core.atomic import atomic_save, atomic_write_text
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.labels import LabelSet, get_label_set
from synergy_ros.data.base import SampleDataset
from synergy_ros.ros.conversions import compressed_to_rgb, image_to_rgb, stamp_ns
from synergy_ros.ros.decoding import depth_from_image, labels_from_image

CACHE_VERSION = 2  # 2: stamp matching in any stamp order; undecodable messages skipped


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/synergy_ros/bags`` (default ``~/.cache/synergy_ros/bags``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "synergy_ros" / "bags"


def _bag_fingerprint(bag: Path, streams: dict, max_dt_ns: int) -> str:
    files = sorted(bag.iterdir()) if bag.is_dir() else [bag]
    parts = [str(bag.resolve()), json.dumps(streams, sort_keys=True), str(max_dt_ns),
             str(CACHE_VERSION)]
    parts += [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files
              if f.is_file()]
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def decode_rgb(msg) -> np.ndarray:
    """Image or CompressedImage -> (H, W, 3) uint8 RGB."""

    return compressed_to_rgb(msg) if hasattr(msg, "format") else image_to_rgb(msg)


def decode_depth(msg) -> np.ndarray:
    """REP 118 depth Image -> (H, W) float32 metres, 0 = invalid (the sample convention).

    Decoded by the evaluator's :func:`synergy_ros.ros.decoding.depth_from_image` (NaN invalid);
    its NaN and any +inf become 0 here. Other encodings raise ValueError.
    """

    depth = depth_from_image(msg)
    return np.where(np.isfinite(depth), depth, np.float32(0))


class BagDataset(SampleDataset):
    """Frames of a rosbag2 with image + depth and/or labels (module docstring).

    Args:
        bag: bag directory or ``.mcap`` / ``.db3`` file.
        image_topic: camera image topic.
        depth_topic: depth ground-truth topic (optional).
        labels_topic: label topic (optional; needs ``label_set``).
        label_set: label-set name or :class:`LabelSet` of the label ids.
        max_dt_ms: largest header-stamp difference paired (0 = exact stamps).
        cache_dir: where decoded frames are cached (default :func:`default_cache_root`).
        show_progress: tqdm progress while the bag is read the first time.
        transform, seed: see :class:`~synergy_ros.data.base.SampleDataset`.
    """

    def __init__(self, bag: str | os.PathLike, image_topic: str,
                 depth_topic: str | None = None, labels_topic: str | None = None,
                 label_set: str | LabelSet | None = None, max_dt_ms: float = 0.0,
                 cache_dir: str | os.PathLike | None = None, show_progress: bool = True,
                 transform=None, seed: int = 0) -> None:

        super().__init__(transform, seed)
        if depth_topic is None and labels_topic is None:
            raise SynergyError("a bag dataset needs depth_topic and/or labels_topic besides "
                               "image_topic: there is nothing to learn from images alone")
        if labels_topic is not None and label_set is None:
            raise SynergyError(f"labels_topic {labels_topic} needs label_set (the label set "
                               "its ids belong to, e.g. synthetic or cityscapes19)")
        if max_dt_ms < 0:
            raise SynergyError(f"max_dt_ms must be >= 0, got {max_dt_ms}")
        self.label_set = get_label_set(label_set) if isinstance(label_set, str) else label_set
        self.streams = {name: topic for name, topic in
                        (("image", image_topic), ("depth", depth_topic),
                         ("labels", labels_topic)) if topic is not None}
        self.bag = Path(bag)
        topics = bagio.bag_topics(self.bag)  # SynergyError for missing / unreadable bags
        missing = [t for t in self.streams.values() if t not in topics]
        if missing:
            listing = ", ".join(f"{t} ({m})" for t, m in sorted(topics.items()))
            raise SynergyError(f"topic(s) {', '.join(missing)} not in bag {self.bag}; it "
                               f"holds: {listing}")
        self.max_dt_ns = int(round(max_dt_ms * 1e6))
        key = _bag_fingerprint(self.bag, self.streams, self.max_dt_ns)
        root = Path(cache_dir) if cache_dir is not None else default_cache_root()
        self.cache = root / f"{self.bag.resolve().name}-{key}"
        manifest = self.cache / "manifest.json"
        if not manifest.is_file():
            self._build_cache(show_progress)
        try:
            self.manifest = json.loads(manifest.read_text(encoding="utf-8"))
            self.frames = self.manifest["frames"]
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            raise SynergyError(f"bag cache manifest {manifest} is unreadable ({exc!r}); delete "
                               f"{self.cache} to rebuild the cache") from exc
        if not self.frames:
            raise SynergyError(f"no frames of bag {self.bag} could be matched by header stamp "
                               f"({self.manifest['summary']}); check the topics or raise "
                               "max_dt_ms")
        self.name = f"bag {self.bag}"

    def _build_cache(self, show_progress: bool) -> None:
        from tqdm import tqdm

        names = {topic: name for name, topic in self.streams.items()}
        others = [n for n in self.streams if n != "image"]
        matcher = StampMatcher("image", required=others, max_dt_ns=self.max_dt_ns)
        self.cache.mkdir(parents=True, exist_ok=True)
        frames: list[dict] = []
        skipped: list[str] = []
        undecodable: list[str] = []
        broken = None
        messages = bagio.iter_messages(self.bag, list(self.streams.values()))
        progress = tqdm(messages, desc=f"indexing {self.bag.name}", unit="msg",
                        disable=not show_progress)
        try:
            for item in progress:
                try:
                    msg = item.message
                except SynergyError as exc:  # one bad message skips itself, never the bag
                    undecodable.append(str(exc))
                    continue
                for frame in matcher.push(names[item.topic], stamp_ns(msg), msg,
                                          item.log_time_ns):
                    self._store(frame, frames, skipped)
        except SynergyError as exc:  # the bag breaks part-way: keep the frames before
            broken = str(exc)
        finally:
            progress.close()
        for frame in matcher.finish():
            self._store(frame, frames, skipped)
        summary = matcher.stats.summary("image")
        if undecodable:
            summary += (f"; {len(undecodable)} undecodable messages skipped (first: "
                        f"{undecodable[0]})")
        if skipped:
            summary += f"; {len(skipped)} frames skipped as undecodable (first: {skipped[0]})"
        if broken:
            summary += f"; only the frames before the break are used: {broken}"
        atomic_write_text(self.cache / "manifest.json", json.dumps(
            {"version": CACHE_VERSION, "bag": str(self.bag.resolve()), "streams": self.streams,
             "frames": frames, "summary": summary, "undecodable_messages": len(undecodable),
             "undecodable_frames": len(skipped), "read_error": broken}, indent=1))
        if show_progress or undecodable or skipped or broken:  # problems are always said
            print(f"bag dataset {self.bag}: {summary}",
                  file=sys.stderr if undecodable or skipped or broken else sys.stdout)

    def _store(self, frame, frames: list, skipped: list) -> None:
        decoders = {"image": decode_rgb, "depth": decode_depth, "labels": labels_from_image}
        try:
            arrays = {name: decoders[name](msg) for name, msg in frame.items.items()}
        except ValueError as exc:  # a malformed message skips its frame, never the dataset
            skipped.append(f"stamp {frame.stamp_ns}: {exc}")
            return
        name = f"{len(frames):07d}_{frame.stamp_ns}.npz"
        atomic_save(self.cache / name, lambda handle: np.savez(handle, **arrays))
        frames.append({"file": name, "stamp_ns": frame.stamp_ns})

    def __len__(self) -> int:
        """Number of matched frames."""
        return len(self.frames)

    def describe(self, index: int) -> str:
        """Name the frame by bag and stamp."""
        return f"bag {self.bag} frame at stamp {self.frames[index]['stamp_ns']} ns"

    def load(self, index: int) -> dict:
        """Read cached frame ``index``."""
        path = self.cache / self.frames[index]["file"]
        try:
            with np.load(path, allow_pickle=False) as data:
                sample = {key: data[key] for key in data.files}
        except (OSError, ValueError) as exc:
            raise SynergyError(f"cached frame {path} is unreadable ({exc}); delete "
                               f"{self.cache} to rebuild the cache") from exc
        sample["has_depth"] = "depth" in sample
        sample["has_labels"] = "labels" in sample
        return sample
