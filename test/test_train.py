"""`synergy train` end to end on tiny synthetic scenes (ResNet-18, 32x32, a few steps)."""
import csv
import json
from pathlib import Path

import pytest
import torch

from synergy_ros.cli import main
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import ModelMeta, load_model_file, save_model_file
from synergy_ros.learning.config import load_config
from synergy_ros.learning.losses import DEPTH_LOSSES, SEMANTIC_LOSSES
from synergy_ros.learning.trainer import Trainer, batch_kind
from synergy_ros.network import build_network

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "config" / "train_synthetic_demo.yaml")
TINY = ["data.input_size=[32, 32]", "data.batch_size=2", "data.num_workers=0",
        "data.train=[{type: synthetic, num_samples: 6}]",
        "data.val={type: synthetic, split: val, num_samples: 2}", "train.epochs=2",
        "train.progress=false", "optim.lr=1e-3", "schedule.warmup_steps=0", "threads=1"]


@pytest.fixture(autouse=True)
def _keep_thread_count():
    """The trainer applies config ``threads`` process-wide; give other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _tiny(*extra):
    return load_config(DEMO, TINY + list(extra))


def _log(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_cli_trains_validates_and_writes_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--config", DEMO, "--output", str(out)]
    for override in TINY:
        args += ["--set", override]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt", "config.yaml", "epochs.csv", "last.pt", "train_log.csv", "val_report.md"]
    assert load_config(out / "config.yaml") == _tiny()  # the resolved config, reloadable
    rows = _log(out / "train_log.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 7))  # 3 batches x 2 epochs
    assert all(float(r["loss"]) > 0 and r["kind"] == "joint" for r in rows)
    assert float(rows[-1]["lr"]) < float(rows[0]["lr"])  # poly schedule decays
    epochs = _log(out / "epochs.csv")
    assert [e["epoch"] for e in epochs] == ["1", "2"] and float(epochs[0]["rmse"]) > 0
    assert "| all |" in (out / "val_report.md").read_text()
    best = load_model_file(out / "best.pt")
    assert best["meta"].class_names[0] == "floor" and best["meta"].input_size == (32, 32)
    assert best["training"]["best"]["value"] == pytest.approx(min(float(e["rmse"]) for e in epochs))
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 6 and summary["nonfinite_steps"] == 0
    # a second fresh run into the same folder would overwrite the checkpoint: refused
    assert main(args) == 1
    assert "already holds a checkpoint" in capsys.readouterr().err


def test_cli_resume_from_a_checkpoint_path_uses_its_config_and_folder(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--config", DEMO, "--output", str(out)]
    for override in TINY + ["train.epochs=1"]:
        args += ["--set", override]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3
    assert main(["train", "--resume", str(out / "last.pt"), "--set", "train.epochs=2"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 6
    assert [int(r["step"]) for r in _log(out / "train_log.csv")] == list(range(1, 7))
    assert load_config(out / "config.yaml") == _tiny()  # saved config + the --set


def test_release_scores_the_released_weights_against_constant_baselines(tmp_path, capsys):
    from synergy_ros.learning.batches import SeededDataset, build_dataset, make_loader
    from synergy_ros.learning.checkpoint import load_weights
    from synergy_ros.learning.release import _rounded
    from synergy_ros.learning.trainer import validate

    released = tmp_path / "models" / "tiny.pt"
    args = ["train", "--config", DEMO, "--output", str(tmp_path / "run"),
            "--release", str(released)]
    for override in TINY + ["train.epochs=1", "release.baseline_samples=4",
                            "release.test={type: synthetic, split: test, num_samples: 3}"]:
        args += ["--set", override]
    assert main(args) == 0
    assert "released" in capsys.readouterr().err
    model_file = load_model_file(released)
    assert "training" not in model_file  # no optimizer state in a release
    assert {v.dtype for v in model_file["state_dict"].values() if v.is_floating_point()} == {
        torch.float16}
    info = json.loads(released.with_suffix(".json").read_text())
    held_out = info["held_out"]
    assert held_out["images"] == 3 and info["weights_dtype"] == "float16"
    assert held_out["constant_baseline"]["majority_class"] in model_file["meta"].class_names
    assert held_out["constant_baseline"]["mean_depth_m"] > 0
    assert model_file["meta"].extra["held_out"]["model"] == held_out["model"]
    # the reported metrics are those of the file as shipped (float16 weights)
    config = load_config(tmp_path / "run" / "config.yaml")
    network = build_network(model_file["meta"].network)
    load_weights(network, model_file["state_dict"], str(released))
    test = SeededDataset(build_dataset(config["release"]["test"], config["data"]["input_size"],
                                       False, config["seed"]), config["seed"])
    loader = make_loader(test, batch_size=2, shuffle=False, seed=config["seed"], epoch=0,
                         skip_batches=0, rank=0, world_size=1, num_workers=0, drop_last=False)
    metrics, _ = validate(network, loader, config["val"]["depth_ranges"], torch.device("cpu"))
    assert _rounded(metrics) == held_out["model"]


def test_weak_supervision_freezes_the_other_branch(tmp_path):
    config = _tiny("train.mode=alternating", "optim.name=sgd", "optim.momentum=0.9",
                   "data.train=[{type: synthetic, num_samples: 4, targets: [depth]}, "
                   "{type: synthetic, num_samples: 4, first_seed: 50, targets: [labels]}]")
    trainer = Trainer(config, tmp_path / "run")
    assert trainer.schedule_order == [0, 1, 0, 1]
    groups = trainer.model.parameter_groups()
    loaders = trainer._loaders(0, 0)
    for loader, kind, frozen, active in ((loaders[0], "depth",
                                          ("semantic", "semantic_sharing", "semantic_head"),
                                          ("depth", "encoder", "depth_sharing")),
                                         (loaders[1], "semantic", ("depth", "depth_sharing"),
                                          ("semantic", "semantic_head", "encoder",
                                           "semantic_sharing"))):
        batch = next(iter(loader))
        assert batch_kind(batch) == kind
        before = {name: [p.detach().clone() for p in groups[name]] for name in groups}
        for _ in range(2):  # second step: momentum would move a frozen parameter
            loss, parts = trainer._train_step(batch, kind)
            assert loss is not None
        assert any(name in SEMANTIC_LOSSES for name in parts) == (kind == "semantic")
        assert any(name in DEPTH_LOSSES for name in parts) == (kind == "depth")
        for name in frozen:
            assert all(torch.equal(a, b) for a, b in zip(before[name], groups[name])), name
        for name in active:
            assert any(not torch.equal(a, b) for a, b in zip(before[name], groups[name])), name


def test_weak_supervision_gradients_of_the_lateral_weights(tmp_path):
    """Sec. 8 + Table 3: a depth batch leaves gamma (semantic side) without gradient, a
    semantics batch leaves phi (depth side) without; the active side's weights get one."""
    config = _tiny("train.mode=alternating",
                   "data.train=[{type: synthetic, num_samples: 4, targets: [depth]}, "
                   "{type: synthetic, num_samples: 4, first_seed: 50, targets: [labels]}]")
    trainer = Trainer(config, tmp_path / "run")
    units = dict(trainer.model.decoder.units.named_parameters())
    assert sorted({n.split(".")[-1] for n in units}) == ["gamma_d", "gamma_s", "phi_d", "phi_s"]
    for loader, kind, idle, used in ((trainer._loaders(0, 0)[0], "depth", "gamma_", "phi_"),
                                     (trainer._loaders(0, 0)[1], "semantic", "phi_", "gamma_")):
        batch = next(iter(loader))
        assert trainer._train_step(batch, kind)[0] is not None
        for name, param in units.items():
            leaf = name.split(".")[-1]
            if leaf.startswith(idle):
                assert param.grad is None or not param.grad.any(), (kind, name)
            elif leaf in ("phi_s", "gamma_d"):  # the cross weights carry the other stream
                assert param.grad is not None and param.grad.abs().sum() > 0, (kind, name)


@pytest.mark.parametrize("order", [["semantic", "depth"], ["depth", "semantic"]])
def test_sequential_mode_trains_task_a_then_fine_tunes_on_task_b(tmp_path, order):
    """Table 1 'Finet.': first only task A's loss, then only task B's from those weights."""
    config = _tiny("model.sharing=separate", "train.mode=sequential",
                   f"train.task_order=[{order[0]}, {order[1]}]", "train.epochs=2",
                   "schedule.name=poly", "data.val=null")  # 3 batches x 2 epochs = 6 steps
    trainer = Trainer(config, tmp_path / "run")
    assert [trainer.stage(s)[0] for s in range(6)] == [order[0]] * 3 + [order[1]] * 3
    groups = trainer.model.parameter_groups()
    head = {"depth": "depth", "semantic": "semantic_head"}
    snapshots = [[p.detach().clone() for p in groups[head[order[1]]]]]
    trainer._open_logs()
    for epoch in range(2):
        trainer.state.epoch, trainer.state.epoch_step = epoch, 0
        for batch, data_s in trainer._epoch_batches(trainer._loaders(epoch, 0)):
            trainer._one_step(batch, data_s, None)
            if trainer.state.step == 3:
                snapshots.append([p.detach().clone() for p in groups[head[order[1]]]])
    trainer._close_logs()
    rows = _log(tmp_path / "run" / "train_log.csv")
    names = {"depth": DEPTH_LOSSES, "semantic": SEMANTIC_LOSSES}
    for row, task in zip(rows, [order[0]] * 3 + [order[1]] * 3):
        assert row["kind"] == task
        assert all(row[n] == "" for n in names[order[1] if task == order[0] else order[0]])
        assert any(row[n] != "" for n in names[task])
    lrs = [float(row["lr"]) for row in rows]
    assert lrs[3] == pytest.approx(1e-3) and lrs[2] < lrs[0]  # the schedule restarts
    # task B's branch (separate decoders) is untouched in stage A and learns in stage B
    assert all(torch.equal(a, b) for a, b in zip(snapshots[0], snapshots[1]))
    assert any(not torch.equal(a, b) for a, b in zip(snapshots[1], groups[head[order[1]]]))


def test_sequential_mode_checks_its_order():
    with pytest.raises(SynergyError, match="task_order"):
        _tiny("train.mode=sequential", "train.task_order=[depth, depth]")


def test_init_checkpoint_replaces_only_the_semantic_head_and_group_lrs(tmp_path):
    source = build_network({"encoder": "resnet18", "num_classes": 40})
    meta = ModelMeta(network=source.config.to_dict(), class_names=[f"c{i}" for i in range(40)],
                     palette=[(i, i, i) for i in range(40)])
    save_model_file(tmp_path / "nyu.pt", source.state_dict(), meta)
    config = _tiny(f"init.checkpoint={tmp_path / 'nyu.pt'}", "optim.lr=1e-4",
                   "optim.group_lr.semantic_head=1e-2")
    trainer = Trainer(config, tmp_path / "run")
    own = trainer.model.state_dict()
    for key, value in source.state_dict().items():
        if key.startswith("semantic_head."):
            assert own[key].shape[0] == 6 and value.shape[0] == 40
        else:
            assert torch.equal(own[key], value), key
    lrs = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert lrs == {"encoder": 1e-4, "depth": 1e-4, "semantic": 1e-4, "depth_sharing": 1e-4,
                   "semantic_sharing": 1e-4, "semantic_head": 1e-2}
    with pytest.raises(SynergyError, match="replace_semantic_head=true"):
        Trainer(_tiny(f"init.checkpoint={tmp_path / 'nyu.pt'}",
                      "init.replace_semantic_head=false"), tmp_path / "run2")


def test_nonfinite_losses_are_skipped_then_stop(tmp_path):
    # an absurd learning rate blows the weights up within a step or two: real NaN/inf losses
    config = _tiny("optim.name=sgd", "optim.lr=1e30", "optim.momentum=0", "train.epochs=3",
                   "train.max_nonfinite=2", "val.every_epochs=0")
    trainer = Trainer(config, tmp_path / "run")
    with pytest.raises(SynergyError, match="not finite for 2 steps in a row"):
        trainer.fit()
    rows = _log(tmp_path / "run" / "train_log.csv")
    assert [r["skipped"] for r in rows][-2:] == ["1", "1"]
    assert trainer.state.nonfinite_total >= 2


@pytest.mark.parametrize("overrides, pattern", [
    (["data.train=[{type: nyu_v3}]"], "dataset type 'nyu_v3' is unknown"),
    (["data.train=[{type: synthetic, num_samples: 0}]"], "num_samples"),
    (["data.train=[{type: synthetic, frames: 3}]"], r"no option\(s\) \['frames'\]"),
    (["data.train=[{type: synthetic, targets: [rgb]}]"], "subset of"),
    (["data.train=[]"], "data.train is empty"),
    (["data.train=[{type: synthetic, num_samples: 1}]"], "fewer than data.batch_size"),
    (["model.num_classes=40"], "predicts 40 classes but data.labels='synthetic' has 6"),
    (["data.labels=nyu40", "model.num_classes=40"], "label set 'synthetic' but data.labels"),
    (["loss={l3: 1}"], r"unknown loss names \['l3'\]"),
    (["model.encoder=resnet19"], "encoder='resnet19'"),
    (["val.best_metric=accuracy"], "not a validation metric"),
    (["device=cuda:7"], "no CUDA GPU|cuda"),
    (["init.checkpoint=/nonexistent/model.pt"], "does not exist"),
])
def test_bad_input_stops_before_training(tmp_path, overrides, pattern):
    if overrides == ["device=cuda:7"] and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SynergyError, match=pattern):
        Trainer(_tiny(*overrides), tmp_path / "run")
    assert not (tmp_path / "run" / "train_log.csv").exists()


def test_resume_refuses_a_checkpoint_of_another_network(tmp_path):
    trainer = Trainer(_tiny("train.max_steps=1", "val.every_epochs=0"), tmp_path / "run")
    trainer.fit()
    with pytest.raises(SynergyError, match="different network.*sharing"):
        Trainer(_tiny("model.sharing=separate"), tmp_path / "run", resume="auto")
    with pytest.raises(SynergyError, match="no such checkpoint"):
        Trainer(_tiny(), tmp_path / "other", resume=str(tmp_path / "missing.pt"))


def _folder(root, depth_size=(40, 48), label_value=3, count=2):
    """Write a folder dataset (rgb/, depth/ 16-bit mm, labels/) in its on-disk format."""
    import cv2
    import numpy as np

    for sub in ("rgb", "depth", "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        cv2.imwrite(str(root / "rgb" / f"{index:04d}.png"),
                    np.full((40, 48, 3), 90 + index, np.uint8))
        cv2.imwrite(str(root / "depth" / f"{index:04d}.png"),
                    np.full(depth_size, 2500, np.uint16))
        cv2.imwrite(str(root / "labels" / f"{index:04d}.png"),
                    np.full((40, 48), label_value, np.uint8))
    return root


@pytest.mark.parametrize("fixture, pattern", [
    (dict(), None),
    (dict(depth_size=(40, 50)), "depth is 50x40 but the image is 48x40"),
    (dict(label_value=9), r"label ids \[9\] are out of range"),
])
def test_folder_data_is_checked_before_training(tmp_path, fixture, pattern):
    root = _folder(tmp_path / "data", **fixture)
    config = _tiny(f"data.train=[{{type: folder, root: '{root}', label_set: synthetic}}]",
                   "data.val=null")
    if pattern is None:
        trainer = Trainer(config, tmp_path / "run")
        assert len(trainer.train_sets[0]) == 2
        return
    with pytest.raises(SynergyError, match=pattern):
        Trainer(config, tmp_path / "run")


def test_missing_dataset_paths_name_the_file(tmp_path):
    with pytest.raises(SynergyError, match="data.train.0. .folder.*is not a directory"):
        Trainer(_tiny(f"data.train=[{{type: folder, root: '{tmp_path / 'nope'}'}}]"),
                tmp_path / "run")
    with pytest.raises(SynergyError, match="NYU Depth v2 file .*missing.mat does not exist"):
        Trainer(_tiny("data.labels=nyu40", "model.num_classes=40",
                      f"data.train=[{{type: nyu, mat_path: '{tmp_path / 'missing.mat'}', "
                      "split: all}]"), tmp_path / "run")


def test_demo_config_datasets_build(tmp_path):
    """The bundled demo config's own specs (synthetic scene ``kind`` option included)."""
    trainer = Trainer(load_config(DEMO, ["data.num_workers=0", "data.input_size=[32, 32]"]),
                      tmp_path / "run")
    assert trainer.steps_per_epoch == 2160 // 8 and len(trainer.val_set) == 48
    with pytest.raises(SynergyError, match=r"no option\(s\) \['colour'\]"):
        Trainer(_tiny("data.train=[{type: synthetic, kind: street, colour: red}]"),
                tmp_path / "run2")


def test_tensorboard_request_without_tensorboard_is_a_clear_error(tmp_path):
    pytest.importorskip("torch")
    try:
        import tensorboard  # noqa: F401
        pytest.skip("tensorboard is installed here")
    except ImportError:
        pass
    trainer = Trainer(_tiny("log.tensorboard=true"), tmp_path / "run")
    with pytest.raises(SynergyError, match="pip install tensorboard"):
        trainer.fit()
