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
                        help="static INT8 quantization calibrated on --calib-images: onnx: a "
                             "Q/DQ <name>.int8.onnx for onnxruntime (CPU) and TensorRT, "
                             "verified against FP32 on held-out frames; engine: builds that "
                             "Q/DQ ONNX (cached), then an explicitly quantized engine")
    parser.add_argument("--calib-images", help="folder of camera frames for INT8 calibration "
                        "(the quantized ONNX is keyed by the images' content: another folder "
                        "means a new calibration)")
    parser.add_argument("--calib-max", "--max-calib-images", dest="calib_max", type=int,
                        default=200, help="calibrate on at most this many images (the first "
                        "by name, held-out verification frames included; default 200)")
    parser.add_argument("--int8-target", choices=("cpu", "tensorrt"), default=None,
                        help="int8 activations: cpu = uint8 asymmetric (fast on onnxruntime "
                             "x86/ARM; default for --format onnx), tensorrt = int8 symmetric "
                             "(TensorRT explicit quantization; always used for --format engine)")
    parser.add_argument("--verify-frames", type=int, default=None,
                        help="int8: frames (the last by name) held out of calibration for the "
                             "INT8-vs-FP32 check (default a fifth, 1 to 50)")
    parser.add_argument("--fp32-layers", default="auto",
                        help="int8: layers kept in FP32: auto (by measured sensitivity, "
                             "default), none, or a comma list of layer names (the module paths "
                             "printed by the export)")
    parser.add_argument("--max-fp32-layers", type=int, default=4,
                        help="int8: at most this many layers kept in FP32 by auto (default 4)")
    parser.add_argument("--int8-max-median-rel", type=float, default=0.03,
                        help="int8: fail when the median relative depth difference to FP32 on "
                             "the held-out frames is above this (default 0.03)")
    parser.add_argument("--int8-min-delta1", type=float, default=0.97,
                        help="int8: fail when fewer pixels than this have "
                             "max(d8/d32, d32/d8) < 1.25 (default 0.97)")
    parser.add_argument("--int8-min-label-agreement", type=float, default=0.95,
                        help="int8: fail when fewer pixels than this keep their FP32 class "
                             "(default 0.95)")
    parser.add_argument("--device", default="cuda",
                        help="engine: the GPU to build and check on, cuda or cuda:N "
                             "(default cuda = cuda:0, the first visible GPU)")
    parser.add_argument("--attention", action="store_true",
                        help="also output the attention map")
    parser.add_argument("--dynamic-batch", action="store_true",
                        help="onnx: dynamic batch axis (static 1 by default)")
    parser.add_argument("--max-batch", type=int, default=1,
                        help="engine: optimisation profile for batches 1..N (a node serving N "
                             "cameras; implies --dynamic-batch for the ONNX; default 1)")
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


def int8_options(args):
    """:class:`Int8Options` from the parsed flags."""
    from synergy_ros.core.errors import SynergyError
    from synergy_ros.runtime.quantizer import Int8Options, Int8Thresholds

    if not args.calib_images:
        raise SynergyError("--int8 needs --calib-images DIR (a folder of camera frames like the "
                           "deployment camera's, a few hundred)")
    layers = args.fp32_layers.strip()
    fp32_layers = layers if layers in ("auto", "none") else tuple(
        name.strip() for name in layers.split(",") if name.strip())
    target = "tensorrt" if args.format == "engine" else (args.int8_target or "cpu")
    return Int8Options(calib_images=args.calib_images, max_images=args.calib_max, target=target,
                       verify_frames=args.verify_frames, fp32_layers=fp32_layers,
                       max_fp32_layers=args.max_fp32_layers,
                       thresholds=Int8Thresholds(args.int8_max_median_rel, args.int8_min_delta1,
                                                 args.int8_min_label_agreement))


def print_int8_report(report) -> None:
    """Print the quantization record: held-out agreement, sensitivity, layers kept FP32."""
    if report.sensitivity:
        ranked = sorted(report.sensitivity.items(), key=lambda item: -item[1])[:8]
        print(f"INT8 layer sensitivity (error removed by keeping the layer FP32; all layers "
              f"quantized: {report.full_int8_error:.4f}):")
        for name, gain in ranked:
            print(f"  {gain:+.4f}  {name}")
    print(f"layers kept in FP32: {', '.join(report.fp32_layers) or 'none'}")
    print(f"INT8 vs FP32: {report.agreement.summary()} -> OK "
          f"({report.seconds.get('total', 0):.0f} s)")


def _export_onnx(args, options, checkpoint):
    from pathlib import Path

    from synergy_ros.runtime.exporter import export_onnx

    if args.int8:
        from synergy_ros.runtime.exporter import export_int8_onnx
        from synergy_ros.runtime.quantizer import int8_output_name

        output = Path(args.output or int8_output_name(checkpoint, options.height,
                                                      options.width))
        report = export_int8_onnx(checkpoint, output, options, int8_options(args))
        print_int8_report(report)
        print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB, opset {options.opset}, "
              f"int8 Q/DQ for {report.target}, input {options.height}x{options.width})")
        return 0
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
    precision = "int8" if args.int8 else "fp16" if args.fp16 else "fp32"
    onnx_path = checkpoint
    if args.int8:  # explicit quantization: the Q/DQ ONNX first (cached), then the engine
        from synergy_ros.runtime.exporter import cached_int8_onnx

        onnx_path, record, _ = cached_int8_onnx(checkpoint, cache_dir, options,
                                                int8_options(args))
        print(f"INT8 Q/DQ ONNX {onnx_path}: held-out agreement with FP32 "
              f"{record['int8']['verification']}")
    elif checkpoint.suffix.lower() != ".onnx":
        onnx_path = cached_onnx(checkpoint, cache_dir, options)
    engine, record, built = engine_for_onnx(
        onnx_path, cache_dir, precision, device=args.device, engine_path=args.output,
        workspace_gb=args.workspace_gb, max_batch=args.max_batch)
    precision = record["key"]["precision"]  # a Q/DQ .onnx builds INT8 whatever was asked
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
    # mean relative depth difference only; int8: both run the same Q/DQ graph, kernels differ
    limit = {"fp32": 1e-3, "fp16": 1e-2}.get(precision, 2e-2)
    report = compare_outputs(got, want, Tolerance(math.inf, limit, 0.0))
    rel = report.depth_mean_rel
    print(f"TensorRT {precision} vs onnxruntime on {Path(onnx_path).name}: mean relative depth "
          f"difference {rel:.3%}, label agreement {report.label_agreement:.2%}")
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
    if args.format == "onnx" and args.build_only:
        raise SynergyError("--build-only applies to --format engine")
    if args.calib_images and not args.int8:
        raise SynergyError("--calib-images applies to --int8; add --int8 or drop it")
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
    if args.max_batch < 1:
        raise SynergyError(f"--max-batch must be >= 1 (the most cameras one call serves), "
                           f"got {args.max_batch}")
    if (args.format == "engine" and checkpoint.suffix.lower() == ".onnx"
            and (args.max_batch > 1 or args.dynamic_batch)):
        from synergy_ros.runtime.tensorrt_backend import onnx_interface

        batch = onnx_interface(checkpoint)[1][0]
        if batch != -1:  # an engine from it would silently take batch 1 only
            raise SynergyError(
                f"{checkpoint} has a static batch of {batch}: an engine built from it cannot "
                "take batches of several frames. Pass the .pt, or re-export the ONNX with "
                "`synergy export --format onnx --dynamic-batch`")
    options = ExportOptions(height=height, width=width, with_attention=args.attention,
                            fp16=args.fp16 and args.format == "onnx",
                            dynamic_batch=args.dynamic_batch or args.max_batch > 1,
                            opset=args.opset)
    if args.format == "onnx":
        return _export_onnx(args, options, checkpoint)
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir(checkpoint)
    return _build_engine(args, options, checkpoint, cache_dir)
