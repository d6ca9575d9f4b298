"""Where a frame's predictor time goes on a CUDA GPU: preprocess, inference, postprocess.

    python benchmarks/gpu_predict_stages.py --out results.json [--iters 200]

The node's fixed per-frame cost matters beside a GPU-speed model (issue 13). This times
``Predictor.predict`` of the bundled model with the torch backend on CUDA (fp32 and fp16) for
320x240 and 640x480 camera images, with ``output_resolution`` ``model`` and ``input``, and
reports the predictor's own stage timings (``Prediction.timings_ms``: CPU preprocessing and
postprocessing around the GPU inference, which includes the device sync and copy back).
TensorRT is not installed on the GPU machines this ran on; torch CUDA is the GPU path measured.
Medians and p95 over ``--iters`` frames after 20 warm-up frames.
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
    """Time every case; write and print the JSON."""
    import torch

    from synergy_ros.runtime import load_predictor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "synergy_demo_r18.pt")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA GPU: this benchmark needs one", file=sys.stderr)
        return 2
    rows = []
    for precision in ("fp32", "fp16"):
        for resolution in ("model", "input"):
            predictor = load_predictor(args.model, backend="torch", device="cuda",
                                       precision=precision, output_resolution=resolution)
            for width, height in ((320, 240), (640, 480)):
                rgb = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
                stages: dict[str, list] = {"total": []}
                for i in range(args.iters + 20):
                    start = time.perf_counter()
                    prediction = predictor.predict(rgb)
                    total = (time.perf_counter() - start) * 1e3
                    if i < 20:
                        continue
                    stages["total"].append(total)
                    for stage, value in prediction.timings_ms.items():
                        stages.setdefault(stage, []).append(value)
                row = {"precision": precision, "output_resolution": resolution,
                       "camera": f"{width}x{height}",
                       "outputs": "x".join(str(v) for v in prediction.depth.shape[::-1])}
                for stage, values in stages.items():
                    row[f"{stage}_p50_ms"] = float(np.percentile(values, 50))
                    row[f"{stage}_p95_ms"] = float(np.percentile(values, 95))
                rows.append(row)
                print(json.dumps(row))
            predictor.close()
    result = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "cuda": torch.version.cuda, "cpu": platform.processor() or platform.machine(),
              "model": args.model.name, "iters": args.iters, "rows": rows}
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
