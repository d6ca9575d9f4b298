"""Checkpoint files: RNG capture/restore, weights_only round trip, clear errors."""
import pickletools
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import ModelMeta, load_model_file, save_model_file
from synergy_ros.learning.checkpoint import (capture_rng_state, load_checkpoint, load_weights,
                                             restore_rng_state, save_checkpoint)

ROOT = Path(__file__).resolve().parents[1]


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


def _pickled_globals(path):
    """Module names of every class/function a torch.save file's pickle refers to."""
    with zipfile.ZipFile(path) as archive:
        [name] = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        data = archive.read(name)
    modules, strings = set(), []
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
        elif opcode.name == "STACK_GLOBAL":
            modules.add(strings[-2])
        elif opcode.name == "GLOBAL":
            modules.add(arg.split(" ")[0])
    return modules


def test_model_files_and_checkpoints_survive_module_moves(tmp_path):
    """Model files and checkpoints pickle only torch/builtin types, never a synergy_ros class,
    so moving the package's modules (issue 12) cannot break files written before the move:
    the bundled model below was written by the flat-layout code and must load unchanged."""
    bundled = ROOT / "models" / "synergy_demo_r18.pt"
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    checkpoint = tmp_path / "last.pt"
    save_checkpoint(checkpoint, model.state_dict(), _meta(), _training(model, optimizer,
                                                                       scheduler))
    for path in (bundled, checkpoint):
        foreign = {m for m in _pickled_globals(path)
                   if m.split(".")[0] not in ("torch", "collections", "builtins", "_codecs")}
        assert not foreign, f"{path.name} pickles {sorted(foreign)}: use plain types"
    meta = load_model_file(bundled, mmap=True)["meta"]
    assert meta.class_names and meta.input_size
