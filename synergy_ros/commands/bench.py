"""`synergy bench [runtime|model]`: benchmarks written as JSON + markdown.

``runtime`` (default): latency/FPS/memory of the inference backends
(``synergy_ros.bench.runtime_bench``).
``model``: parameters, FLOPs and eager-torch CPU latency per backbone
(``synergy_ros.bench.model_bench``).
"""
from __future__ import annotations

import argparse

HELP = ("benchmark the inference backends (torch/onnxruntime/TensorRT) or, with 'model', "
        "the network's parameters/FLOPs/latency per backbone")
TARGETS = ("runtime", "model")
_DEFAULT_OUTPUT = {"runtime": "benchmarks/results/runtime_cpu",
                   "model": "benchmarks/results/model_cpu"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `synergy bench` flags."""
    parser.add_argument("target", nargs="?", choices=TARGETS, default="runtime",
                        help="runtime (default): backends' latency/FPS/memory; model: "
                             "parameters, FLOPs and CPU latency of each backbone")
    parser.add_argument("--model", help="runtime: model file (.pt) to benchmark; default: an "
                        "untrained model of --encoder (latency does not depend on the weights)")
    parser.add_argument("--encoder", default="resnet18",
                        help="runtime: encoder of the untrained model when --model is not given")
    parser.add_argument("--encoders", default="resnet18,resnet34,resnet50,resnet101",
                        help="model: comma list of encoders (bilinear up-convs) to measure")
    parser.add_argument("--no-paper-upproj", dest="paper_upproj", action="store_false",
                        help="model: skip ResNet-50 with Laina up-projections (measured by "
                             "default; it is the slowest model)")
    parser.add_argument("--num-classes", type=int, default=40,
                        help="classes of the untrained model (default 40, NYU-40)")
    parser.add_argument("--backend", default="all",
                        help="runtime: all, or a comma list of torch, onnxruntime, tensorrt")
    parser.add_argument("--precision", default="fp32",
                        help="runtime: comma list of fp32, fp16, int8 (default fp32)")
    parser.add_argument("--sizes", default="320x240,640x480",
                        help="comma list of WIDTHxHEIGHT (default 320x240,640x480)")
    parser.add_argument("--iters", type=int, default=None,
                        help="timed iterations per case (default: runtime 20, model 3)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="runtime: untimed warm-up iterations (model: one)")
    parser.add_argument("--threads", default=None,
                        help="runtime: comma list of CPU thread counts for torch and "
                             "onnxruntime (default: the usable cores); model: one torch thread "
                             "count (default 1: on a shared machine spinning OpenMP threads "
                             "made 2-thread runs 5-10x slower, measured)")
    parser.add_argument("--device", default="cpu",
                        help="runtime: cpu or cuda for torch/onnxruntime")
    parser.add_argument("--cache-dir", help="runtime: where ONNX exports/engines are cached "
                        "(default: a temporary folder)")
    parser.add_argument("--calib-images", help="runtime: camera frames to quantize the int8 "
                        "cases on (default: synthetic indoor frames)")
    parser.add_argument("--note", default="", help="runtime: free text about the model for "
                        "the report (e.g. how it was trained)")
    parser.add_argument("--output", default=None,
                        help="writes OUTPUT.json and OUTPUT.md (default "
                             "benchmarks/results/runtime_cpu, or .../model_cpu for model)")


def _untrained_model(encoder: str, num_classes: int, folder: str) -> str:
    """Write a seeded, untrained model file of the given encoder; returns its path."""
    import os

    from synergy_ros.core.labels import get_label_set
    from synergy_ros.network.untrained import save_untrained_model

    labels = get_label_set("nyu40")
    names, palette = labels.class_names, labels.palette
    if len(names) != num_classes:  # any other class count: generic names
        names = [f"class{i}" for i in range(num_classes)]
        palette = [((37 * i) % 256, (91 * i) % 256, (173 * i) % 256) for i in range(num_classes)]
    path = os.path.join(folder, f"untrained_{encoder}.pt")
    save_untrained_model(path, {"encoder": encoder}, names, palette,
                         extra={"weights": "untrained (benchmark)"})
    return path


def _write_and_print(result: dict, markdown: str, output: str) -> None:
    """Write ``<output>.json`` + ``<output>.md`` and print the markdown and both paths."""
    from synergy_ros.bench.runtime_bench import write_result_files

    json_path, md_path = write_result_files(result, markdown, output)
    print(markdown)
    print(f"wrote {json_path} and {md_path}")


def _run_model(args: argparse.Namespace) -> int:
    """`synergy bench model`: parameters, FLOPs and CPU latency per backbone."""
    from synergy_ros.bench.model_bench import run_model_benchmark, to_markdown
    from synergy_ros.bench.runtime_bench import MIN_SIDE
    from synergy_ros.core.errors import SynergyError
    from synergy_ros.core.sizes import parse_sizes
    from synergy_ros.network import ENCODERS

    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()]
    unknown = sorted(set(encoders) - set(ENCODERS))
    if unknown or not encoders:
        raise SynergyError(f"--encoders {args.encoders!r}: choose from {', '.join(ENCODERS)}")
    iters = 3 if args.iters is None else args.iters
    try:
        threads = 1 if args.threads is None else int(args.threads)
    except ValueError:
        raise SynergyError(f"--threads {args.threads!r}: bench model takes one integer") from None
    if iters < 1 or threads < 1:
        raise SynergyError("--iters and --threads must be >= 1")
    result = run_model_benchmark(encoders, parse_sizes(args.sizes, minimum=MIN_SIDE), iters,
                                 threads, args.num_classes, args.paper_upproj)
    _write_and_print(result, to_markdown(result), args.output or _DEFAULT_OUTPUT["model"])
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the chosen benchmark, print the markdown table, write JSON + markdown."""
    if args.target == "model":
        return _run_model(args)
    import os
    import tempfile

    from synergy_ros.bench.runtime_bench import MIN_SIDE, run_benchmark, to_markdown
    from synergy_ros.core.errors import SynergyError
    from synergy_ros.core.sizes import parse_sizes
    from synergy_ros.runtime.base import BACKENDS, PRECISIONS

    backends = BACKENDS if args.backend == "all" else tuple(args.backend.split(","))
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise SynergyError(f"unknown backend(s) {sorted(unknown)}; choose all or "
                           f"{', '.join(BACKENDS)}")
    precisions = tuple(args.precision.split(","))
    if set(precisions) - set(PRECISIONS):
        raise SynergyError(f"unknown precision in {args.precision!r}; use "
                           f"{', '.join(PRECISIONS)}")
    iters = 20 if args.iters is None else args.iters
    if iters < 1 or args.warmup < 0:
        raise SynergyError("--iters must be >= 1 and --warmup >= 0")
    sizes = parse_sizes(args.sizes, minimum=MIN_SIDE)
    try:
        threads = ([int(v) for v in args.threads.split(",")] if args.threads
                   else [len(os.sched_getaffinity(0))])
    except ValueError:
        raise SynergyError(f"--threads {args.threads!r}: use a comma list of integers") from None
    if min(threads) < 1:
        raise SynergyError("--threads must be >= 1")
    with tempfile.TemporaryDirectory(prefix="synergy_bench_") as tmp:
        if args.model:
            model, note = args.model, args.note
        else:
            model = _untrained_model(args.encoder, args.num_classes, tmp)
            note = ("(untrained weights of the same architecture: latency does not depend on "
                    "the weights)")
        report = run_benchmark(model, backends, sizes, precisions, iters=iters,
                               warmup=args.warmup, threads=threads, device=args.device,
                               cache_dir=args.cache_dir or tmp, model_note=note,
                               calib_images=args.calib_images)
    _write_and_print(report, to_markdown(report), args.output or _DEFAULT_OUTPUT["runtime"])
    failed = [e for e in report["results"] if "error" in e]
    return 1 if failed and len(failed) == len(report["results"]) else 0
