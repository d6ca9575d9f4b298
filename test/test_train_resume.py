"""Kill a real `synergy train` process mid-run, resume it, and get the uninterrupted run back.

SIGINT (Ctrl-C) makes the trainer finish the current step and save last.pt; SIGKILL gives it
no chance, so the run resumes from the last periodic checkpoint (train.checkpoint_every) and
the log rows after it are dropped and recomputed. Either way the resumed loss curve and the
final weights must match a run that was never interrupted.
"""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "config" / "train_synthetic_demo.yaml")
# 8 samples / batch 2 = 4 steps per epoch, 3 epochs = 12 steps; augmentation stays on.
OVERRIDES = ["data.input_size=[32, 32]", "data.batch_size=2", "data.num_workers=0",
             "data.train=[{type: synthetic, num_samples: 8}]",
             "data.val={type: synthetic, split: val, num_samples: 2}", "train.epochs=3",
             "train.checkpoint_every=3", "threads=1", "schedule.warmup_steps=4"]

pytestmark = pytest.mark.slow


def _command(output: Path, *extra: str) -> list:
    args = [sys.executable, "-m", "synergy_ros", "train", "--config", DEMO,
            "--output", str(output)]
    for override in OVERRIDES:
        args += ["--set", override]
    return args + list(extra)


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _rows(output: Path) -> list:
    path = output / "train_log.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _losses(output: Path) -> dict:
    return {int(r["step"]): float(r["loss"]) for r in _rows(output)}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    output = tmp_path_factory.mktemp("uninterrupted") / "run"
    result = subprocess.run(_command(output), env=_env(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return output


def _interrupt(output: Path, sig: int, after_steps: int) -> subprocess.CompletedProcess:
    process = subprocess.Popen(_command(output), env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while len(_rows(output)) < after_steps:
            assert process.poll() is None, "training ended before it could be interrupted"
            assert time.monotonic() < deadline, "training made no progress"
            time.sleep(0.02)
        os.kill(process.pid, sig)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_resumed_run_matches_uninterrupted(uninterrupted, tmp_path, sig):
    output = tmp_path / "run"
    killed = _interrupt(output, sig, after_steps=5)
    checkpoint = torch.load(output / "last.pt", map_location="cpu", weights_only=True)
    stopped_at = checkpoint["training"]["step"]
    if sig == signal.SIGINT:
        assert killed.returncode == 130, killed.stderr[-2000:]
        assert "resumable checkpoint saved" in killed.stderr
        assert stopped_at >= 5 and stopped_at == max(_losses(output))
    else:
        assert killed.returncode == -signal.SIGKILL
        # the last checkpoint: every 3 steps (checkpoint_every) and at each epoch end (4)
        assert stopped_at >= 3 and (stopped_at % 3 == 0 or stopped_at % 4 == 0)
        assert len(_rows(output)) >= stopped_at  # rows after it are dropped on resume
    assert stopped_at < 12, "the run finished before the signal; nothing was resumed"

    resumed = subprocess.run(_command(output, "--resume", "auto"), env=_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected, got = _losses(uninterrupted), _losses(output)
    assert sorted(got) == list(range(1, 13))  # no step lost or logged twice
    for step in range(1, 13):
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-7), step
    final = torch.load(output / "last.pt", map_location="cpu", weights_only=True)
    reference = torch.load(uninterrupted / "last.pt", map_location="cpu", weights_only=True)
    assert final["training"]["step"] == reference["training"]["step"] == 12
    for key, value in reference["state_dict"].items():
        assert torch.allclose(final["state_dict"][key].float(), value.float(), atol=1e-5), key
    with open(output / "epochs.csv", newline="") as handle:
        assert [r["epoch"] for r in csv.DictReader(handle)] == ["1", "2", "3"]
