"""Two-process DistributedDataParallel training on CPU (gloo over loopback) via torchrun."""
import csv
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from synergy_ros.core.modelfile import load_model_file
from synergy_ros.network import build_network

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "config" / "train_synthetic_demo.yaml")

pytestmark = pytest.mark.slow

# Each rank runs exactly what `synergy train` runs, then (test only) dumps its parameters so
# the test can compare the replicas; the trainer itself writes files on rank 0 only.
WORKER = textwrap.dedent("""
    import os, sys, torch
    from synergy_ros.commands.train import add_arguments, resolve_run
    from synergy_ros.learning.distributed import shutdown_distributed
    from synergy_ros.learning.trainer import Trainer
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(sys.argv[1:-1])
    config, output = resolve_run(args)
    trainer = Trainer(config, output, resume=args.resume)
    summary = trainer.fit()
    assert trainer.dist.world_size == 2, trainer.dist
    params = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    torch.save({"params": params, "step": summary["steps"]},
               os.path.join(sys.argv[-1], f"rank{trainer.dist.rank}.pt"))
    shutdown_distributed(trainer.dist)
""")


def saved_network(output: Path) -> dict:
    """Network config stored in the run's checkpoint."""
    return load_model_file(output / "last.pt")["meta"].network


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("mode", ["supervised", "alternating"])
def test_two_ranks_stay_in_sync_and_rank0_writes_one_checkpoint(tmp_path, mode):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    output = tmp_path / "run"
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    overrides = ["data.input_size=[32, 32]", "data.batch_size=2", "data.num_workers=0",
                 "data.train=[{type: synthetic, num_samples: 8}]",
                 "data.val={type: synthetic, split: val, num_samples: 2}", "train.epochs=2",
                 "threads=1", "device=cpu"]
    if mode == "alternating":  # depth-only and labels-only halves, unused-parameter path
        overrides += ["train.mode=alternating",
                      "data.train=[{type: synthetic, num_samples: 4, targets: [depth]}, "
                      "{type: synthetic, num_samples: 4, first_seed: 9, targets: [labels]}]"]
    args = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
            "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(_free_port()), str(worker), "--config", DEMO,
            "--output", str(output)]
    for override in overrides:
        args += ["--set", override]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"}
    result = subprocess.run(args + [str(dumps)], env=env, capture_output=True, text=True,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    ranks = [torch.load(dumps / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    # 8 samples over 2 ranks = 4 per rank = 2 batches per epoch (alternating: 1 per
    # dataset), 2 epochs
    assert ranks[0]["step"] == ranks[1]["step"] == 4
    for name, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][name]), f"{name} differs between ranks"
    saved = torch.load(output / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(saved[k], v) for k, v in ranks[0]["params"].items())
    torch.manual_seed(0)  # the trainer seeds with config seed 0 before building the network
    initial = dict(build_network(saved_network(output)).named_parameters())
    assert any(not torch.equal(initial[k], v) for k, v in ranks[0]["params"].items())
    # rank 0 alone wrote: one checkpoint of each kind, one log, no stray temp files
    assert sorted(p.name for p in output.iterdir()) == [
        "best.pt", "config.yaml", "epochs.csv", "last.pt", "train_log.csv", "val_report.md"]
    with open(output / "train_log.csv", newline="") as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [1, 2, 3, 4]
