"""`synergy export`: model file -> ONNX (checked against torch) or TensorRT engine."""
from __future__ import annotations

import argparse

HELP = "export a model file to ONNX (verified with onnxruntime) or build a TensorRT engine"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `synergy export` flags."""
    parser.add_argument("--checkpoint", required=True,
                        help="model file / training checkpoint (.pt); for --format engine an "
                             "exported .onnx also works")
    parser.add_argument("--format", choices=("onnx", "engine"), default="onnx",
                        help="onnx (default): an ONNX file; engine: a TensorRT engine (needs "
                             "TensorRT and an NVIDIA GPU)")
    parser.add_argument("--height", type=int, help="input height in pixels (default: the "
                        "model's input_size)")
    parser.add_argument("--width", type=int, help="input width in pixels (default: the "
                        "model's input_size)")
    parser.add_argument("--output", help="output file (default: beside the checkpoint for "
                        "onnx, the engine cache for engine)")
    parser.add_argument("--fp16", action="store_true",
                        help="onnx: float16 weights/activations with float32 I/O; engine: "
                             "TensorRT FP16 kernels")
    parser.add_argument("--int8", action="store_true",
                        help="engine: INT8 (with FP16 fallback), calibrated on --calib-images")
    parser.add_argument("--calib-images", help="folder of camera frames for INT8 calibration "
                        "(the calibration cache is kept in the cache dir, keyed by the "
                        "images' content: another folder means a new calibration)")
    parser.add_argument("--max-calib-images", type=int, default=500,
                        help="engine: calibrate on at most this many images (the first by "
                             "name; default 500)")
    parser.add_argument("--device", default="cuda",
                        help="engine: the GPU to build and check on, cuda or cuda:N "
                             "(default cuda = cuda:0, the first visible GPU)")
    parser.add_argument("--attention", action="store_true",
                        help="also output the attention map")
    parser.add_argument("--dynamic-batch", action="store_true",
                        help="onnx: dynamic batch axis (static 1 by default)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the onnxruntime-vs-torch (or TensorRT-vs-onnxruntime) check")
    parser.add_argument("--build-only", action="store_true",
                        help="engine: build (or validate the cached) engine and exit, e.g. on "
                             "a robot's first boot")
    parser.add_argument("--cache-dir", help="ONNX/engine cache dir (default: "
                        "$SYNERGY_CACHE_DIR or <model dir>/.synergy_cache)")
    parser.add_argument("--workspace-gb", type=float, default=2.0,
                        help="TensorRT builder workspace limit in GiB (default 2)")


def _export_onnx(args, options, checkpoint):
    from pathlib import Path

    from synergy_ros.runtime.exporter import export_onnx

    suffix = "_fp16" if options.fp16 else ""
    output = Path(args.output or checkpoint.with_name(
        f"{checkpoint.stem}_{options.height}x{options.width}{suffix}.onnx"))
    report = export_onnx(checkpoint, output, options, verify=not args.no_verify)
    print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB, opset {options.opset}, "
          f"{'dynamic' if options.dynamic_batch else 'static'} batch, "
          f"{'fp16' if options.fp16 else 'fp32'}, input {options.height}x{options.width})")
    if report is not None:
        print(f"onnxruntime vs torch: {report.summary()} -> OK")
    return 0


def _build_engine(args, options, checkpoint, cache_dir):
    from pathlib import Path

    from synergy_ros.core.errors import SynergyError
    from synergy_ros.runtime.exporter import cached_onnx
    from synergy_ros.runtime.tensorrt_backend import engine_for_onnx, require_tensorrt

    require_tensorrt("build the engine on the GPU machine that will run it (`synergy export "
                     "--format engine --build-only`), or use --format onnx")
    if args.int8 and not args.calib_images:
        raise SynergyError("--int8 needs --calib-images DIR (a folder of camera frames)")
    precision = "int8" if args.int8 else "fp16" if args.fp16 else "fp32"
    onnx_path = checkpoint
    if checkpoint.suffix.lower() != ".onnx":
        onnx_path = cached_onnx(checkpoint, cache_dir, options)
    engine, record, built = engine_for_onnx(
        onnx_path, cache_dir, precision, device=args.device, engine_path=args.output,
        calib_images=args.calib_images, workspace_gb=args.workspace_gb,
        max_calib_images=args.max_calib_images)
    state = f"built in {record.get('build_seconds', 0):.0f} s" if built else "cached, valid"
    print(f"engine {engine} ({Path(engine).stat().st_size / 1e6:.1f} MB, {precision}, {state}) "
          f"for {record['key']['gpu_name']} / TensorRT {record['key']['tensorrt_version']}")
    if args.build_only or args.no_verify:
        return 0
    import math

    from synergy_ros.runtime import load_predictor
    from synergy_ros.runtime.exporter import Tolerance, compare_outputs, sample_image

    with load_predictor(engine, backend="tensorrt", device=args.device) as trt_pred, \
            load_predictor(onnx_path, backend="onnxruntime") as ort_pred:
        image = sample_image(*trt_pred.input_size)
        got, want = trt_pred.predict(image), ort_pred.predict(image)
    limit = 1e-3 if precision == "fp32" else 1e-2  # mean relative depth difference only
    report = compare_outputs(got, want, Tolerance(math.inf, limit, 0.0))
    rel = report.depth_mean_rel
    print(f"TensorRT {precision} vs onnxruntime fp32: mean relative depth difference "
          f"{rel:.3%}, label agreement {report.label_agreement:.2%}")
    if not report.ok:
        raise SynergyError(f"{engine}: TensorRT {precision} depth differs by {rel:.2%} (limit "
                           f"{limit:.1%}) from onnxruntime; use a higher precision")
    return 0


def run(args: argparse.Namespace) -> int:
    """Export or build, then report the checks."""
    import logging
    from pathlib import Path

    from synergy_ros.core.errors import SynergyError
    from synergy_ros.runtime import default_cache_dir
    from synergy_ros.runtime.exporter import ExportOptions

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_file():
        raise SynergyError(f"checkpoint {checkpoint} does not exist")
    if args.format == "onnx" and (args.int8 or args.build_only or args.calib_images):
        raise SynergyError("--int8, --calib-images and --build-only apply to --format engine")
    if args.int8 and args.fp16:
        raise SynergyError("choose one of --fp16 and --int8 (INT8 engines fall back to FP16)")
    height, width = args.height, args.width
    if checkpoint.suffix.lower() == ".onnx":
        if args.format == "onnx":
            raise SynergyError(f"{checkpoint} is already ONNX; pass the .pt model file")
        height = width = 32  # unused: the ONNX's own size is used
    elif height is None or width is None:
        from synergy_ros.core.modelfile import load_model_meta

        model_h, model_w = load_model_meta(checkpoint).input_size
        height, width = height or model_h, width or model_w
    options = ExportOptions(height=height, width=width, with_attention=args.attention,
                            fp16=args.fp16 and args.format == "onnx",
                            dynamic_batch=args.dynamic_batch, opset=args.opset)
    if args.format == "onnx":
        return _export_onnx(args, options, checkpoint)
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir(checkpoint)
    return _build_engine(args, options, checkpoint, cache_dir)
