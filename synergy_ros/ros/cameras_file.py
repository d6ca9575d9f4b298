"""The camera list of ``launch/multi_camera.launch.py``: a YAML file -> ``cameras`` + remaps.

The file is a YAML list, one entry per camera::

    - name: front                          # the node's topics front/image, front/depth ...
      image: /cam_front/color/image_raw    # the camera's sensor_msgs/Image topic
      camera_info: /cam_front/color/camera_info   # optional: default beside the image

(or a mapping with the list under ``cameras:``). Plain Python (no launch import), so the
launch file's translation is tested where ``launch`` is not installed.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from synergy_ros.core.errors import SynergyError
from synergy_ros.ros.params import check_value

EXAMPLE = ("- {name: front, image: /cam_front/color/image_raw}\n"
           "- {name: left, image: /cam_left/color/image_raw, "
           "camera_info: /cam_left/color/camera_info}")


@dataclasses.dataclass(frozen=True)
class CameraEntry:
    """One camera of the file: its name in the node, its image and camera_info topics."""

    name: str
    image: str
    camera_info: str = ""

    def remappings(self) -> list[tuple[str, str]]:
        """The node's remap rules for this camera: ``NAME/image`` (and its ``/compressed``)
        to the camera's image; ``NAME/camera_info`` only when given (else it is read beside
        the image, and the node can publish its own NAME/camera_info beside its images)."""
        rules = [(f"{self.name}/image", self.image),
                 (f"{self.name}/image/compressed", f"{self.image}/compressed")]
        if self.camera_info:
            rules.append((f"{self.name}/camera_info", self.camera_info))
        return rules


def parse_cameras(data, source: str = "cameras_file") -> list[CameraEntry]:
    """The entries of a loaded cameras file (see the module doc).

    Raises:
        SynergyError: naming the file, the entry and what is wrong with it.
    """
    if isinstance(data, dict) and "cameras" in data:
        data = data["cameras"]
    if not isinstance(data, list) or not data:
        raise SynergyError(f"{source}: expected a non-empty YAML list of cameras, e.g.\n"
                           f"{EXAMPLE}")
    entries = []
    for index, item in enumerate(data):
        where = f"{source}: camera {index + 1}"
        if not isinstance(item, dict):
            raise SynergyError(f"{where} is {item!r}, not a mapping; write it as\n{EXAMPLE}")
        unknown = sorted(set(item) - {"name", "image", "camera_info"})
        if unknown:
            raise SynergyError(f"{where} has unknown keys {unknown}; use name, image and "
                               "optionally camera_info")
        name, image = item.get("name"), item.get("image")
        camera_info = item.get("camera_info") or ""
        if not isinstance(image, str) or not image.strip():
            raise SynergyError(f"{where} ({name}) has no image topic; add "
                               "image: /your_camera/image_raw")
        if not isinstance(camera_info, str):
            raise SynergyError(f"{where} ({name}): camera_info must be a topic name")
        entries.append(CameraEntry(str(name) if name is not None else "", image.strip(),
                                   camera_info.strip()))
    problem = check_value("cameras", [entry.name for entry in entries])
    if problem:
        raise SynergyError(f"{source}: {problem}")
    return entries


def load_cameras_file(path: str | Path) -> list[CameraEntry]:
    """Read and check a cameras file (SynergyError naming the file when it is not usable)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SynergyError(f"cannot read the cameras file {path}: {exc.strerror or exc}; pass "
                           "cameras_file:=/path/to/cameras.yaml (see config/multi_camera.yaml)"
                           ) from None
    except yaml.YAMLError as exc:
        raise SynergyError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_cameras(data, str(path))


def node_arguments(entries: list[CameraEntry]) -> tuple[dict, list[tuple[str, str]]]:
    """(parameters ``{"cameras": [...]}``, remap rules) of one node serving ``entries``."""
    remappings = [rule for entry in entries for rule in entry.remappings()]
    return {"cameras": [entry.name for entry in entries]}, remappings
