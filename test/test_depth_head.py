"""The depth head (issue 17 item 1): unbounded softplus by default, sigmoid for old files."""
import warnings
from pathlib import Path

import pytest
import torch

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import ModelMeta, save_model_file
from synergy_ros.learning.config import load_config
from synergy_ros.learning.trainer import Trainer
from synergy_ros.network import NetworkConfig, build_network
from synergy_ros.runtime.torch_graph import DeployGraph, build_from_model_file

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "models" / "synergy_demo_r18.pt"
TINY = ["data.input_size=[32, 32]", "data.batch_size=2", "data.num_workers=0",
        "data.train=[{type: synthetic, num_samples: 4}]", "data.val=null",
        "train.progress=false", "threads=1"]


@pytest.fixture(autouse=True)
def _keep_thread_count():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _slope(depth_head: str, depth_m: float) -> float:
    """d depth / d raw output (m per unit) of a 0-10 m head where it outputs ``depth_m``."""
    model = build_network({"encoder": "resnet18", "depth_head": depth_head})
    lo, hi = -50.0, 50.0
    for _ in range(200):  # bisect the raw output that gives depth_m
        mid = 0.5 * (lo + hi)
        if float(model._depth_activation(torch.tensor(mid))) < depth_m:
            lo = mid
        else:
            hi = mid
    raw = torch.tensor(0.5 * (lo + hi), requires_grad=True)
    model._depth_activation(raw).backward()
    return float(raw.grad)


def test_new_configs_default_to_the_softplus_head():
    assert NetworkConfig().depth_head == "softplus"
    with pytest.raises(SynergyError, match="depth_head='relu'.*softplus, sigmoid"):
        NetworkConfig(depth_head="relu")


def test_softplus_slope_does_not_collapse_at_far_range():
    # sigmoid 0-10 m: 2.5 m per unit at 5 m, ~0.9 at 9 m, ~0.1 at 9.9 m (the numbers)
    assert _slope("sigmoid", 5.0) == pytest.approx(2.5, rel=1e-3)
    assert _slope("sigmoid", 9.9) < 0.11
    for depth in (5.0, 9.0, 9.9, 30.0):
        assert _slope("softplus", depth) > 0.99


def test_untrained_softplus_output_sits_mid_range_and_is_clamped_only_on_export():
    torch.manual_seed(0)
    model = build_network({"encoder": "resnet18", "num_classes": 3, "max_depth": 10.0}).eval()
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert 3.0 < float(model(image).depth.median()) < 7.0
        model.depth_head.bias.fill_(40.0)  # a network that learned to predict far
        raw = model(image).depth
        deployed, _ = DeployGraph(model)(image)
    assert float(raw.min()) > 10.0, "training must see the unclamped depth"
    assert float(deployed.max()) == pytest.approx(10.0)
    outdoor = build_network({"encoder": "resnet18", "max_depth": 80.0}).eval()
    with torch.no_grad():
        assert 30.0 < float(outdoor(image).depth.median()) < 50.0


def test_old_model_files_load_with_the_sigmoid_head(tmp_path):
    net, meta = build_from_model_file(DEMO_MODEL)  # written before depth_head existed
    assert "depth_head" not in torch.load(DEMO_MODEL, weights_only=True)["meta"]["network"]
    assert net.config.depth_head == "sigmoid" and meta.network["depth_head"] == "sigmoid"
    with torch.no_grad():
        depth, _ = DeployGraph(net)(torch.randn(1, 3, 96, 128))
    assert 0 < float(depth.min()) and float(depth.max()) < meta.max_depth
    # a file written now records its head and keeps it
    model = build_network({"encoder": "resnet18", "num_classes": 2})
    new = ModelMeta(network=model.config.to_dict(), class_names=["a", "b"],
                    palette=[(0, 0, 0), (1, 1, 1)])
    save_model_file(tmp_path / "new.pt", model.state_dict(), new)
    assert build_from_model_file(tmp_path / "new.pt")[0].config.depth_head == "softplus"


def test_init_checkpoint_checks_the_depth_head_and_warns_on_a_sigmoid_range_change(tmp_path):
    demo = str(ROOT / "config" / "train_synthetic_demo.yaml")
    init = f"init.checkpoint={DEMO_MODEL}"
    with pytest.raises(SynergyError, match="depth_head='sigmoid'.*model.depth_head=sigmoid"):
        Trainer(load_config(demo, TINY + [init]), tmp_path / "a")
    with pytest.warns(UserWarning, match="scaled by ~8"):
        Trainer(load_config(demo, TINY + [init, "model.depth_head=sigmoid",
                                          "model.max_depth=80"]), tmp_path / "b")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(load_config(demo, TINY + [init, "model.depth_head=sigmoid"]), tmp_path / "c")
