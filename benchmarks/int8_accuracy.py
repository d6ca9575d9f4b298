"""INT8 vs FP32 accuracy of the bundled model on its held-out synthetic split (issue 16).

Exports ``models/synergy_demo_r18.pt`` to FP32 ONNX and to INT8 (``synergy export --format onnx
--int8``'s code path: calibration on 200 synthetic *validation-split* frames, 40 of them held out
for the export's own check, sensitivity-chosen FP32 layers), then scores both with onnxruntime
on the model card's held-out split (synthetic ``test``, 200 indoor scenes at 96x128, the split
``synergy train --release`` scored) with the evaluator's metrics: abs_rel, rmse, delta1
(per-image means over all valid depth, as the release) and mIoU. Writes
``benchmarks/results/int8_accuracy.{md,json}`` with the machine.

    .venv/bin/python benchmarks/int8_accuracy.py [--calib 200] [--out PATH_WITHOUT_SUFFIX]

Targets: abs_rel within +5 % (relative) of FP32, delta1 within -0.01, mIoU within -0.02.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402 - after the sys.path set-up

from synergy_ros.core.machine import machine_info, machine_summary  # noqa: E402
from synergy_ros.core.modelfile import load_model_meta  # noqa: E402
from synergy_ros.data.synthetic import SPLIT_SEED_OFFSETS, SyntheticDataset, render_scene  # noqa: E402,E501
from synergy_ros.evaluation.metrics import DepthRangeEvaluator, SemanticConfusion  # noqa: E402
from synergy_ros.runtime import load_predictor  # noqa: E402
from synergy_ros.runtime.exporter import ExportOptions, export_int8_onnx, export_onnx  # noqa: E402
from synergy_ros.runtime.quantizer import Int8Options  # noqa: E402

MODEL = ROOT / "models" / "synergy_demo_r18.pt"


def score(model_path: Path, dataset: SyntheticDataset, num_classes: int) -> dict:
    """abs_rel, rmse, delta1 (per-image means, all valid depth) and mIoU of one model file."""
    depth_eval, confusion = DepthRangeEvaluator(()), SemanticConfusion(num_classes)
    with load_predictor(model_path, backend="onnxruntime", device="cpu",
                        num_threads=1) as predictor:
        for index in range(len(dataset)):
            sample = dataset.load(index)
            prediction = predictor.predict(sample["image"])
            depth_eval.update(prediction.depth, sample["depth"])
            confusion.update(prediction.labels, sample["labels"])
    depth = depth_eval.compute()["all"]
    return {"abs_rel": depth["abs_rel"], "rmse": depth["rmse"], "delta1": depth["delta1"],
            "miou": confusion.compute()["miou"], "images": depth["images"]}


def main(argv=None) -> int:
    """Export, quantize, score, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib", type=int, default=200, help="calibration frames (default 200)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "int8_accuracy"))
    args = parser.parse_args(argv)
    meta = load_model_meta(MODEL)
    height, width = meta.input_size
    held = meta.extra["held_out"]["dataset"]
    test = SyntheticDataset(held["split"], held["num_samples"], height, width, kind=held["kind"])
    with tempfile.TemporaryDirectory(prefix="int8_accuracy_") as tmp:
        frames = Path(tmp) / "calib"
        frames.mkdir()
        for i in range(args.calib):  # validation-split scenes: never the test split
            rgb = render_scene(SPLIT_SEED_OFFSETS["val"] + 3000 + i, height, width).rgb
            cv2.imwrite(str(frames / f"frame{i:04d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        fp32, int8 = Path(tmp) / "demo.onnx", Path(tmp) / "demo.int8.onnx"
        export_onnx(MODEL, fp32, ExportOptions(height, width))
        start = time.monotonic()
        report = export_int8_onnx(MODEL, int8, ExportOptions(height, width),
                                  Int8Options(frames, max_images=args.calib))
        export_s = time.monotonic() - start
        results = {"fp32": score(fp32, test, meta.num_classes),
                   "int8": score(int8, test, meta.num_classes)}
    f32, i8 = results["fp32"], results["int8"]
    checks = {"abs_rel_rel_change": i8["abs_rel"] / f32["abs_rel"] - 1,
              "delta1_change": i8["delta1"] - f32["delta1"],
              "miou_change": i8["miou"] - f32["miou"]}
    met = {"abs_rel_rel_change": checks["abs_rel_rel_change"] <= 0.05,
           "delta1_change": checks["delta1_change"] >= -0.01,
           "miou_change": checks["miou_change"] >= -0.02}
    record = {"model": MODEL.name, "held_out": held, "input_size": [height, width],
              "calibration_frames": args.calib, "export_s": round(export_s, 1),
              "quantization": report.to_dict(), "results": results, "changes": checks,
              "targets_met": met, "machine": machine_info(),
              "load_average": list(os.getloadavg())}
    lines = ["# INT8 vs FP32 accuracy: bundled demo model, held-out synthetic split", "",
             f"Model `{MODEL.name}` at {height}x{width} (HxW), onnxruntime CPU, "
             f"{f32['images']} held-out synthetic `{held['split']}` scenes ({held['kind']}). "
             f"INT8: {args.calib} calibration frames from the synthetic validation split "
             f"(export {export_s:.0f} s incl. sensitivity), FP32 layers: "
             f"{', '.join(report.fp32_layers) or 'none'}; export check on "
             f"{report.agreement.frames} held-out calibration frames: "
             f"{report.agreement.summary()}.", "",
             "| model | abs_rel | rmse (m) | delta1 | mIoU |", "|---|---|---|---|---|"]
    for name, row in results.items():
        lines.append(f"| {name} | {row['abs_rel']:.4f} | {row['rmse']:.4f} | "
                     f"{row['delta1']:.4f} | {row['miou']:.4f} |")
    lines += ["", "Targets:",
              f"- abs_rel change {checks['abs_rel_rel_change']:+.2%} (target <= +5 %: "
              f"{'met' if met['abs_rel_rel_change'] else 'NOT met'})",
              f"- delta1 change {checks['delta1_change']:+.4f} (target >= -0.01: "
              f"{'met' if met['delta1_change'] else 'NOT met'})",
              f"- mIoU change {checks['miou_change']:+.4f} (target >= -0.02: "
              f"{'met' if met['miou_change'] else 'NOT met'})", "",
              f"Machine: {machine_summary(record['machine'])}; load average "
              f"{', '.join(f'{v:.2f}' for v in record['load_average'])}."]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
