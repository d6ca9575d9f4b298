"""Checkpoint files: RNG capture/restore, weights_only round trip, clear errors."""
import random

import numpy as np
import pytest
import torch

from synergy_ros.checkpoint import (capture_rng_state, load_checkpoint, load_weights,
                                    restore_rng_state, save_checkpoint)
from synergy_ros.errors import SynergyError
from synergy_ros.modelfile import ModelMeta, save_model_file


def _draws():
    return (random.random(), float(np.random.rand()), float(np.random.randn()),
            float(torch.rand(1)))


def test_rng_state_round_trip():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    _draws()
    np.random.randn()  # leaves a cached gaussian in numpy's state
    state = capture_rng_state()
    expected = [_draws() for _ in range(3)]
    restore_rng_state(state)
    assert [_draws() for _ in range(3)] == expected


def _meta():
    return ModelMeta(network={"encoder": "resnet18"}, class_names=["a", "b"],
                     palette=[(0, 0, 0), (255, 255, 255)], input_size=(32, 32))


def _training(model, optimizer, scheduler):
    return {"epoch": 1, "epoch_step": 3, "step": 7, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": torch.amp.GradScaler(
                "cpu", enabled=False).state_dict(),
            "rng": capture_rng_state(), "config": {"optim": {"lr": 0.1}, "val": {"x": None}},
            "best": {"metric": "rmse", "mode": "min", "value": 0.5}, "nonfinite_total": 0}


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    scheduler.step()
    path = tmp_path / "run" / "last.pt"
    save_checkpoint(path, model.state_dict(), _meta(), _training(model, optimizer, scheduler))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temp file left

    payload = load_checkpoint(path)  # weights_only=True inside
    assert payload["meta"].class_names == ["a", "b"]
    training = payload["training"]
    assert training["step"] == 7 and training["config"]["val"]["x"] is None
    restored = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    load_weights(restored, payload["state_dict"], str(path))
    for a, b in zip(model.state_dict().values(), restored.state_dict().values()):
        assert torch.equal(a, b)
    new_opt = torch.optim.SGD(restored.parameters(), lr=0.1, momentum=0.9)
    new_opt.load_state_dict(training["optimizer"])
    momentum = [s["momentum_buffer"] for s in new_opt.state.values()]
    assert len(momentum) == 4 and all(m is not None for m in momentum)


def test_truncated_and_foreign_files_give_clear_errors(tmp_path):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    path = tmp_path / "last.pt"
    save_checkpoint(path, model.state_dict(), _meta(), _training(model, optimizer, scheduler))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SynergyError, match="truncated"):
        load_checkpoint(truncated)
    plain = tmp_path / "model.pt"
    save_model_file(plain, model.state_dict(), _meta())
    with pytest.raises(SynergyError, match="init.checkpoint"):
        load_checkpoint(plain)
    with pytest.raises(SynergyError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_load_weights_names_mismatches():
    small = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 4))
    other = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 5))
    with pytest.raises(SynergyError, match=r"shape mismatch.*1\.weight \(5, 3\) vs \(4, 3\)"):
        load_weights(small, other.state_dict(), "other.pt")
    # skipping the mismatching layer (e.g. a replaced semantic head) loads the rest
    load_weights(small, other.state_dict(), "other.pt", skip_prefixes=("1.",))
    assert torch.equal(small[0].weight, other[0].weight)
    with pytest.raises(SynergyError, match="missing: 1.bias"):
        state = other.state_dict()
        del state["1.bias"]
        load_weights(other, state, "x.pt")
