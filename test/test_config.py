"""Training config: defaults, base includes, --set overrides, validation messages."""
from pathlib import Path

import pytest

from synergy_ros.core.errors import SynergyError
from synergy_ros.learning.config import (SCHEMA, defaults, describe_keys, dump_config, iter_keys,
                                         load_config, parse_override)

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_cover_every_schema_key():
    config = load_config()
    for dotted, key in iter_keys():
        node = config
        for part in dotted.split("."):
            node = node[part]
        assert node == key.default
    assert defaults() is not defaults()  # fresh copies


def test_file_overrides_defaults_and_coerces_numbers(tmp_path):
    # PyYAML reads 1e-4 (no dot) as a string; the schema makes it a float.
    path = _write(tmp_path / "a.yaml", "name: a\noptim:\n  lr: 1e-4\n  momentum: 0\n"
                                       "train:\n  epochs: 3\n")
    config = load_config(path)
    lr = config["optim"]["lr"]
    assert lr == pytest.approx(1e-4) and isinstance(lr, float)
    assert config["optim"]["momentum"] == 0.0 and isinstance(config["optim"]["momentum"], float)
    assert config["train"]["epochs"] == 3
    assert config["optim"]["weight_decay"] == SCHEMA["optim"]["weight_decay"].default


def test_base_include_chain_relative_paths(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    _write(tmp_path / "root.yaml", "name: root\nseed: 5\nmodel: {encoder: resnet18, "
                                   "sharing: lateral}\ndata:\n  batch_size: 4\n")
    _write(sub / "mid.yaml", "base: ../root.yaml\nname: mid\nmodel: {sharing: separate}\n")
    leaf = _write(sub / "leaf.yaml", "base: mid.yaml\ndata:\n  batch_size: 2\n")
    config = load_config(leaf)
    assert config["name"] == "mid" and config["seed"] == 5
    assert config["model"] == {"encoder": "resnet18", "sharing": "separate"}  # open: merged
    assert config["data"]["batch_size"] == 2


def test_base_cycle_is_an_error(tmp_path):
    _write(tmp_path / "a.yaml", "base: b.yaml\n")
    _write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(SynergyError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_unknown_key_lists_valid_keys(tmp_path):
    path = _write(tmp_path / "bad.yaml", "optim:\n  lrr: 0.1\n")
    with pytest.raises(SynergyError) as info:
        load_config(path)
    message = str(info.value)
    assert "optim.lrr" in message and str(path) in message
    assert "lr, group_lr, momentum" in message
    with pytest.raises(SynergyError, match="unknown config key 'trian'.*valid keys at the top"):
        load_config(None, ["trian.epochs=3"])


def test_set_overrides_types_lists_and_indices():
    config = load_config(None, ["optim.lr=1e-3", "train.amp=false", "data.input_size=[64, 96]",
                                "model.sharing=cascaded", "val.max_batches=3",
                                "optim.group_lr.semantic_head=1e-2"])
    assert config["optim"]["lr"] == pytest.approx(1e-3)
    assert config["train"]["amp"] is False
    assert config["data"]["input_size"] == [64, 96]
    assert config["model"] == {"sharing": "cascaded"}
    assert config["val"]["max_batches"] == 3
    assert config["optim"]["group_lr"]["semantic_head"] == pytest.approx(1e-2)
    config = load_config(None, ["data.train=[{type: synthetic, num_frames: 8}]",
                                "data.train.0.num_frames=16"])
    assert config["data"]["train"] == [{"type": "synthetic", "num_frames": 16}]
    with pytest.raises(SynergyError, match="index"):
        load_config(None, ["data.train=[]", "data.train.0.root=/x"])


@pytest.mark.parametrize("override, pattern", [
    ("optim.lr=fast", "optim.lr.*must be a number"),
    ("train.epochs=2.5", "train.epochs.*integer"),
    ("train.mode=both", "one of supervised, alternating"),
    ("optim.group_lr.decoder=1", "valid keys under 'optim.group_lr'"),
    ("train.amp=maybe", "true or false"),
    ("seed=null", "null is not allowed"),
    ("data.input_size=[0, 32]", "input_size"),
    ("data.batch_size=0", "batch_size must be >= 1"),
    ("optim.lr", "KEY=VALUE"),
    ("train.mode=alternating", "at least two data.train"),
])
def test_bad_values_name_the_key(override, pattern):
    with pytest.raises(SynergyError, match=pattern):
        load_config(None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(SynergyError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(SynergyError, match="not valid YAML"):
        load_config(_write(tmp_path / "x.yaml", "a: [1,\n"))
    with pytest.raises(SynergyError, match="mapping"):
        load_config(_write(tmp_path / "y.yaml", "- 1\n- 2\n"))
    (tmp_path / "last.pt").write_bytes(b"PK\x03\x04\xff\xfe binary")
    with pytest.raises(SynergyError, match="last.pt is not valid YAML"):
        load_config(tmp_path / "last.pt")


def test_dump_round_trips(tmp_path):
    config = load_config(None, ["optim.lr=0.02", "data.train=[{type: synthetic}]"])
    path = _write(tmp_path / "resolved.yaml", dump_config(config))
    assert load_config(path) == config


def test_parse_override_and_describe():
    assert parse_override("a.b=1e-3") == (["a", "b"], "1e-3")
    assert parse_override("x=[1, 2]") == (["x"], [1, 2])
    text = describe_keys()
    assert "optim.lr = 0.001" in text and "schedule.name = 'poly' [poly|step|cosine|constant]" \
        in text


def test_bundled_train_configs_resolve():
    files = sorted((ROOT / "config").glob("train_*.yaml"))
    for file in files:
        config = load_config(file)
        assert config["data"]["train"], f"{file.name} has no training data"


def test_loss_mapping_is_replaced_whole_model_mapping_merged(tmp_path):
    _write(tmp_path / "base.yaml", "model: {encoder: resnet18, sharing: lateral}\n"
                                   "loss: {depth_attention: 1, focal: 1, joint_gradient: 1}\n")
    leaf = _write(tmp_path / "leaf.yaml", "base: base.yaml\nmodel: {sharing: cascaded}\n"
                                          "loss: {l2: 1, cross_entropy: 1}\n")
    config = load_config(leaf)
    assert config["model"] == {"encoder": "resnet18", "sharing": "cascaded"}
    assert config["loss"] == {"l2": 1, "cross_entropy": 1}
    config = load_config(leaf, ["loss.focal=0.5", "model={encoder: resnet34}"])
    assert config["loss"] == {"l2": 1, "cross_entropy": 1, "focal": 0.5}
    assert config["model"] == {"encoder": "resnet34"}
    assert load_config(leaf, ["loss={l2: 2}"])["loss"] == {"l2": 2}
    # the former name of the depth-gradient term resolves to the current one
    assert load_config(tmp_path / "base.yaml")["loss"] == {
        "depth_attention": 1, "focal": 1, "depth_gradient": 1}


def test_bundled_experiment_configs_extend_one_base():
    from synergy_ros.learning.losses import TABLE8_CONFIGS
    from synergy_ros.network import SHARING_MODES

    base = load_config(ROOT / "config" / "train_nyu40.yaml")
    for name, weights in TABLE8_CONFIGS.items():
        config = load_config(ROOT / "config" / f"train_loss_{name}.yaml")
        assert config["loss"] == weights
        assert {k: v for k, v in config.items() if k not in ("loss", "name")} == \
            {k: v for k, v in base.items() if k not in ("loss", "name")}
    for sharing in SHARING_MODES:
        if sharing == "lateral":
            assert base["model"]["sharing"] == "lateral"
            continue
        config = load_config(ROOT / "config" / f"train_variant_{sharing}.yaml")
        assert config["model"] == {**base["model"], "sharing": sharing}
        assert config["data"] == base["data"] and config["loss"] == base["loss"]


def test_outdoor_config_is_the_papers_protocol():
    config = load_config(ROOT / "config" / "train_outdoor_weak.yaml")
    assert config["train"]["mode"] == "alternating"
    assert config["data"]["input_size"] == [256, 512]
    assert config["optim"]["lr"] == pytest.approx(1e-4)
    assert config["optim"]["group_lr"]["semantic_head"] == pytest.approx(1e-2)
    assert config["model"]["num_classes"] == 21 and config["data"]["labels"] == "cityscapes21"
    assert config["init"]["replace_semantic_head"] is True
    assert [s["type"] for s in config["data"]["train"]] == ["kitti_stereo", "cityscapes"]
    assert "mat_path" not in config["data"]["val"]  # dataset specs replace, never merge
