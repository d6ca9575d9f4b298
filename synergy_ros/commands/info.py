"""`synergy info`: versions and which inference backends this machine can run."""
from __future__ import annotations

import argparse
import importlib
import json
import platform

HELP = "show versions, available backends (torch/onnxruntime/TensorRT) and the ROS 2 setup"

_LIBRARIES = ("numpy", "torch", "onnx", "onnxruntime", "tensorrt", "cv2", "rosbags", "rclpy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `synergy info` flags."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def collect_info() -> dict:
    """Return a dict of library versions (None when missing), Python, platform and GPU."""
    from synergy_ros import __version__

    info: dict = {"synergy_ros": __version__, "python": platform.python_version(),
                  "platform": platform.platform(), "libraries": {}}
    for name in _LIBRARIES:
        try:
            module = importlib.import_module(name)
            info["libraries"][name] = str(getattr(module, "__version__", "installed"))
        except Exception:  # noqa: BLE001 - a broken optional install counts as missing
            info["libraries"][name] = None
    try:
        import torch

        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        info["cuda"] = None
    return info


def run(args: argparse.Namespace) -> int:
    """Print the environment report."""
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"synergy_ros {info['synergy_ros']} on Python {info['python']} ({info['platform']})")
    for name, version in info["libraries"].items():
        print(f"  {name:12s} {version or 'not installed'}")
    print(f"  {'CUDA GPU':12s} {info['cuda'] or 'none'}")
    return 0
