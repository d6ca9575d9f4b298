"""Describe the machine a benchmark ran on (CPU model, cores, GPU, library versions)."""
from __future__ import annotations

import importlib
import os
import platform


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """Return a JSON-serialisable description of this machine for benchmark result files."""
    info = {
        "hostname_hash": hash(platform.node()) & 0xFFFF,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": None,
        "libraries": {},
    }
    for name in ("numpy", "torch", "onnxruntime", "onnx", "tensorrt", "cv2"):
        try:
            info["libraries"][name] = str(importlib.import_module(name).__version__)
        except Exception:  # noqa: BLE001 - optional library missing or broken
            info["libraries"][name] = None
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info["gpu"] = {"name": props.name, "capability": f"{props.major}.{props.minor}",
                           "memory_gb": round(props.total_memory / 2**30, 1)}
    except Exception:  # noqa: BLE001
        pass
    return info


def machine_summary(info: dict | None = None) -> str:
    """One line such as 'Intel Xeon ..., 2 cores, no GPU, torch 2.13.0'."""
    info = info or machine_info()
    gpu = info["gpu"]["name"] if info.get("gpu") else "no GPU"
    return (f"{info['cpu']}, {info['usable_cpus'] or info['cpu_count']} cores, {gpu}, "
            f"torch {info['libraries'].get('torch')}, "
            f"onnxruntime {info['libraries'].get('onnxruntime')}")
