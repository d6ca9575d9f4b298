#!/usr/bin/env bash
# GPU checks for a session whose task is lent a device machine (the `device` tool), as one
# prepared command, so the 15 minutes of device time go to measuring:
#
#   run(command="bash benchmarks/device_check.sh", timeout_s=480)      # then give_back
#
# That machine's image (device README / KINDS.md, 2026-11): python3 is 3.12 with torch + CUDA,
# onnx, onnxruntime (CPU build), opencv, pyyaml, tqdm; nothing can be fetched there. It has no
# TensorRT (on PyPI, tensorrt-cu12-libs is an sdist that downloads the builder's wheels from
# NVIDIA's index; only the 46 MB lean runtime wheel would fit the 64 MiB a call may carry, and
# it cannot build engines) and no ROS 2 (the rclpy wheels the Makefile installs are cp311), so
# the TensorRT backend, the node and bag evaluation cannot run there; this script checks what torch can: CUDA inference (fp32, fp16) against the CPU,
# the runtime benchmark on CUDA, and mixed-precision training steps.
#
# Results land in $OUT (the tool fetches at most 8 files): gpu.txt, parity.log, bench.log,
# runtime_gpu.{json,md}, train_amp.log. Locally, `DEVICE=cpu PY=.venv/bin/python bash
# benchmarks/device_check.sh` runs every step on the CPU (the fp16 parity step then fails:
# torch fp16 needs CUDA).
set -u
OUT=${OUT:-/tmp/synergy_device_check}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
status=0
step() {  # step NAME COMMAND...: run, log to $OUT/NAME.log, remember a failure, go on
    local name=$1
    shift
    echo "== $name: $*"
    if ! "$@" >"$OUT/$name.log" 2>&1; then
        echo "!! $name failed (see $name.log)"
        status=1
    fi
    tail -n 25 "$OUT/$name.log"
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} | tee "$OUT/gpu.txt"

step parity $PY - "$DEVICE" <<'EOF'
"""Predictor on DEVICE (fp32, fp16) vs the CPU fp32 reference on the same image."""
import sys
import tempfile
from pathlib import Path

from synergy_ros.runtime.exporter import TOLERANCES, compare_outputs, sample_image
from synergy_ros.demo_pipeline import build_untrained_model
from synergy_ros.runtime import load_predictor

device = sys.argv[1]
model = build_untrained_model(Path(tempfile.mkdtemp()) / "r18.pt", input_size=(240, 320))
image = sample_image(240, 320)
want = load_predictor(model, backend="torch", device="cpu").predict(image)
for precision in ("fp32", "fp16"):
    predictor = load_predictor(model, backend="torch", device=device, precision=precision)
    report = compare_outputs(predictor.predict(image), want, TOLERANCES[precision])
    print(f"torch {device} {precision}: {report.summary()}")
EOF

step bench $PY -m synergy_ros bench runtime --backend torch --precision fp32,fp16 \
    --device "$DEVICE" --sizes 320x240,640x480 --iters 50 --output "$OUT/runtime_gpu"

step train_amp $PY -m synergy_ros train --config config/train_synthetic_demo.yaml \
    --set device="$DEVICE" --set train.max_steps=20 --output "$OUT/train_run"
rm -rf "$OUT/train_run"  # only the log comes back (checkpoints are large)

echo "device_check: $([ $status = 0 ] && echo all steps passed || echo some steps failed)"
exit $status
