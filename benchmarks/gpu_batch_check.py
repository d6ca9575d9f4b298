"""Model time per call for batches of 1..N frames on a CUDA GPU (torch backend, fp32 / fp16).

    python benchmarks/gpu_batch_check.py --out results.json [--max-batch 4] [--iters 50]

What batching several cameras into one call saves on a GPU (issue 14): the bundled model's
``TorchPredictor.infer`` on a (B, 3, h, w) batch at the model's input size, timed after a
warm-up (``infer`` returns numpy, so every call includes the device sync and copy back).
TensorRT is not installed on the machines this ran on; torch CUDA is the GPU path measured.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from synergy_ros.core.atomic import atomic_write_text  # noqa: E402 (needs ROOT on sys.path)


def main(argv: list[str] | None = None) -> int:
    """Time each batch size and precision; write and print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "synergy_demo_r18.pt")
    parser.add_argument("--max-batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    import torch

    from synergy_ros.runtime.torch_backend import TorchPredictor

    try:
        import tensorrt  # noqa: F401
        have_trt = True
    except ImportError:
        have_trt = False
    results = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
               "python": platform.python_version(), "tensorrt_installed": have_trt,
               "model": args.model.name, "rows": []}
    for precision in ("fp32", "fp16"):
        predictor = TorchPredictor(args.model, device="cuda:0", precision=precision)
        height, width = predictor.input_size
        for batch_size in range(1, args.max_batch + 1):
            batch = np.random.default_rng(0).standard_normal(
                (batch_size, 3, height, width)).astype(np.float32)
            for _ in range(10):
                predictor.infer(batch)
            times = []
            for _ in range(args.iters):
                start = time.perf_counter()
                predictor.infer(batch)
                times.append((time.perf_counter() - start) * 1e3)
            p50 = float(np.percentile(times, 50))
            results["rows"].append({"precision": precision, "batch": batch_size,
                                    "input": f"{width}x{height}", "call_p50_ms": round(p50, 2),
                                    "per_frame_ms": round(p50 / batch_size, 2)})
        predictor.close()
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
